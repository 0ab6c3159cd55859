"""UMKM members as sourcing hears of them from the registry: who could use a cooperative's stalled stock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm
from sourcing.adapters.sql import upsert

M = orm.umkm_members


async def save_umkm_member(
    session: AsyncSession,
    *,
    member_id: str,
    cooperative_id: str,
    sector: str | None,
    products: list[str],
    joined_at: datetime,
) -> None:
    await upsert(
        session,
        M,
        {
            "member_id": member_id,
            "cooperative_id": cooperative_id,
            "sector": sector,
            "products": products,
            "joined_at": joined_at,
        },
        keys=("member_id",),
        update=("cooperative_id", "sector", "products"),
    )


async def umkm_members_of(session: AsyncSession, cooperative_id: str) -> list[Any]:
    """Sector and products of each UMKM member of the cooperative."""
    query = select(M.c.sector, M.c.products).where(M.c.cooperative_id == cooperative_id)
    return list((await session.execute(query)).all())
