"""Queries of the potentials mapped per kelurahan (with the kelurahan's kecamatan and cooperative)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import orm
from registry.adapters.rows import as_utc


def _potentials_query() -> Any:
    p = orm.potentials
    return (
        select(
            p,
            orm.kelurahan.c.kecamatan_code,
            orm.cooperatives.c.id.label("cooperative_id"),
        )
        .join(orm.kelurahan, orm.kelurahan.c.code == p.c.kelurahan_code)
        .outerjoin(orm.cooperatives, orm.cooperatives.c.kelurahan_code == p.c.kelurahan_code)
    )


def _potential_out(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["created_at"] = as_utc(out["created_at"])
    return out


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(orm.potentials).values(**values))


async def of_kelurahan(session: AsyncSession, code: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        _potentials_query()
        .where(orm.potentials.c.kelurahan_code == code)
        .order_by(orm.potentials.c.priority, orm.potentials.c.created_at)
    )
    return [_potential_out(r) for r in rows]


async def search(
    session: AsyncSession,
    *,
    kelurahan_code: str | None,
    kecamatan_scope: Sequence[str] | None,
    kecamatan_code: str | None,
    sector: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """One page of potentials across kelurahan and their total. `kelurahan_code`: only this one (a
    manager's own); `kecamatan_scope`: only these kecamatan (an officer's)."""
    query = _potentials_query()
    if kelurahan_code is not None:
        query = query.where(orm.potentials.c.kelurahan_code == kelurahan_code)
    if kecamatan_scope is not None:
        query = query.where(orm.kelurahan.c.kecamatan_code.in_(kecamatan_scope))
    if kecamatan_code:
        query = query.where(orm.kelurahan.c.kecamatan_code == kecamatan_code)
    if sector:
        query = query.where(func.lower(orm.potentials.c.sector) == sector.lower())
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.execute(
        query.order_by(orm.potentials.c.kelurahan_code, orm.potentials.c.priority, orm.potentials.c.id)
        .limit(limit)
        .offset(offset)
    )
    return {"items": [_potential_out(r) for r in rows], "total": total}
