"""Cooperatives known from the registry's events (`known_cooperatives`), as messages name them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.templates import CooperativeName


async def names(session: AsyncSession, ids: Iterable[str]) -> dict[str, CooperativeName]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    t = orm.known_cooperatives
    rows = await session.execute(select(t.c.id, t.c.name, t.c.kelurahan_name).where(t.c.id.in_(wanted)))
    return {row.id: CooperativeName(row.name, row.kelurahan_name) for row in rows}
