"""What the supplier ranking reads and writes: offers, open commitments, track records, cooperatives'
positions, and the ranking kept on each need."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Float, and_, case, cast, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm
from sourcing.domain.geo import Point
from sourcing.domain.matching import Performance
from sourcing.domain.orders import OPEN_ORDER_STATUSES


async def supplier_performance(
    session: AsyncSession, supplier_ids: Iterable[str] | None = None
) -> dict[str, Performance]:
    """Each supplier's record: finished orders, how many on time, and the sum of their fill ratios.

    Orders the supplier itself cancelled count as unfilled; those Dinkopdag cancelled do not count.
    """
    o = orm.orders
    judged = or_(
        o.c.status == "delivered", and_(o.c.status == "cancelled", o.c.cancelled_by_role == "supplier")
    )
    query = (
        select(
            o.c.supplier_id,
            func.count().label("orders"),
            func.sum(case((o.c.delivered_on_time.is_(True), 1), else_=0)).label("on_time"),
            func.sum(cast(o.c.delivered_quantity, Float) / cast(o.c.quantity, Float)).label("fill"),
        )
        .where(judged)
        .group_by(o.c.supplier_id)
    )
    if supplier_ids is not None:
        query = query.where(o.c.supplier_id.in_(list(supplier_ids)))
    return {
        r.supplier_id: Performance(int(r.orders), int(r.on_time or 0), float(r.fill or 0.0))
        for r in await session.execute(query)
    }


async def open_commitments(session: AsyncSession, commodity: str) -> dict[str, Any]:
    """What each supplier still owes on open orders of this commodity."""
    o, line = orm.orders, orm.order_lines
    rows = await session.execute(
        select(o.c.supplier_id, func.sum(line.c.quantity - line.c.delivered_quantity).label("owed"))
        .join(line, line.c.order_id == o.c.id)
        .where(o.c.commodity == commodity, o.c.status.in_(OPEN_ORDER_STATUSES))
        .group_by(o.c.supplier_id)
    )
    return {r.supplier_id: r.owed for r in rows}


async def active_offers(session: AsyncSession, commodity: str) -> list[Any]:
    """Offers of the commodity by active suppliers, with the supplier's name, kind and area."""
    s, f = orm.suppliers, orm.offers
    query = (
        select(f, s.c.name, s.c.kind, s.c.lat, s.c.lon, s.c.service_kecamatan_codes)
        .join(s, s.c.id == f.c.supplier_id)
        .where(f.c.commodity == commodity, s.c.active.is_(True))
    )
    return list((await session.execute(query)).all())


async def cooperative_position(session: AsyncSession, cooperative_id: str) -> Point | None:
    """The registry's point for the cooperative, when it gave one."""
    k = orm.cooperatives
    row = (await session.execute(select(k.c.lat, k.c.lon).where(k.c.id == cooperative_id))).first()
    if row is not None and row.lat is not None and row.lon is not None:
        return Point(row.lat, row.lon)
    return None


async def cooperative_positions(session: AsyncSession, cooperative_ids: Iterable[str]) -> dict[str, Point]:
    k = orm.cooperatives
    query = select(k.c.id, k.c.lat, k.c.lon).where(
        k.c.id.in_(set(cooperative_ids)), k.c.lat.is_not(None), k.c.lon.is_not(None)
    )
    return {r.id: Point(r.lat, r.lon) for r in await session.execute(query)}


async def cooperative_kelurahan(session: AsyncSession, cooperative_id: str) -> str | None:
    k = orm.cooperatives
    row = (await session.execute(select(k.c.kelurahan_code).where(k.c.id == cooperative_id))).first()
    return row.kelurahan_code if row else None


async def ranking(session: AsyncSession, need_id: str) -> list[dict[str, Any]]:
    """The ranking kept on the need, best first."""
    m = orm.need_matches
    rows = await session.execute(select(m).where(m.c.need_id == need_id).order_by(m.c.rank))
    return [dict(r._mapping) for r in rows]


async def keep_ranking(
    session: AsyncSession,
    need_id: str,
    rows: list[dict[str, Any]],
    split: dict[str, Any] | None,
    at: datetime,
) -> None:
    """Replace the need's ranking and proposed split."""
    await session.execute(delete(orm.need_matches).where(orm.need_matches.c.need_id == need_id))
    if rows:
        await session.execute(insert(orm.need_matches), rows)
    await session.execute(
        update(orm.needs).where(orm.needs.c.id == need_id).values(split=split, matched_at=at)
    )
