"""The read side's SQL: the ledger's pages, the city's stock lines and the detection runs, as rows.

What the stock page of one cooperative reads is in `repository` (`cooperative_stock`, `sold_in_window`):
the fast path of that page shares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import orm


@dataclass(frozen=True)
class MovementFilter:
    cooperative_id: str
    commodity: str | None = None
    kind: str | None = None
    since: datetime | None = None  # occurred_at at or after (UTC)
    until: datetime | None = None  # occurred_at before (UTC)
    reference: str | None = None


@dataclass(frozen=True)
class CityStockFilter:
    kecamatan_scope: list[str] | None  # the principal's kecamatan; None: all of the city
    kecamatan_code: str | None = None
    episode: str | None = None
    commodity: str | None = None


async def movements_page(
    session: AsyncSession, where: MovementFilter, limit: int, offset: int
) -> tuple[list[Any], int]:
    """Ledger rows (with their commodity's unit), newest first, and how many match in all."""
    m, c = orm.movements, orm.commodities
    conditions = [m.c.cooperative_id == where.cooperative_id]
    if where.commodity:
        conditions.append(m.c.commodity == where.commodity)
    if where.kind:
        conditions.append(m.c.kind == where.kind)
    if where.since:
        conditions.append(m.c.occurred_at >= where.since)
    if where.until:
        conditions.append(m.c.occurred_at < where.until)
    if where.reference:
        conditions.append(m.c.reference == where.reference)
    total = (await session.execute(select(func.count()).select_from(m).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(m, c.c.unit)
        .join(c, c.c.code == m.c.commodity)
        .where(*conditions)
        .order_by(m.c.occurred_at.desc(), m.c.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


async def movement(session: AsyncSession, cooperative_id: str, movement_id: str) -> Any | None:
    m, c = orm.movements, orm.commodities
    found = await session.execute(
        select(m, c.c.unit)
        .join(c, c.c.code == m.c.commodity)
        .where(m.c.cooperative_id == cooperative_id, m.c.id == movement_id)
    )
    return found.first()


async def city_stock_page(
    session: AsyncSession, where: CityStockFilter, limit: int, offset: int
) -> tuple[list[Any], int]:
    """Stock item rows with their cooperative's kelurahan and kecamatan, the latest episodes first."""
    s, k = orm.stock_items, orm.known_cooperatives
    conditions: list[ColumnElement[bool]] = []
    if where.kecamatan_scope is not None:
        conditions.append(k.c.kecamatan_code.in_(where.kecamatan_scope))
    if where.kecamatan_code:
        conditions.append(k.c.kecamatan_code == where.kecamatan_code)
    if where.episode:
        conditions.append(s.c.condition == where.episode)
    if where.commodity:
        conditions.append(s.c.commodity == where.commodity)
    base = (
        select(s, k.c.kelurahan_code, k.c.kecamatan_code)
        .join(k, k.c.id == s.c.cooperative_id)
        .where(*conditions)
    )
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = await session.execute(
        base.order_by(s.c.condition_since.desc().nulls_last(), s.c.cooperative_id, s.c.commodity)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


async def detection_runs(session: AsyncSession, limit: int, offset: int) -> list[Any]:
    d = orm.detection_runs
    return list(await session.execute(select(d).order_by(d.c.id.desc()).limit(limit).offset(offset)))
