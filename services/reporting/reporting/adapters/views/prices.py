"""Sales above the price ceiling (HET/HAP)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.views.scope import in_scope
from reporting.domain.scope import Scope
from reporting.domain.stock import quantity_out

d = orm.known_cooperatives


async def price_violations(
    session: AsyncSession,
    scope: Scope,
    *,
    kecamatan_code: str | None = None,
    commodity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int, int]:
    p = orm.price_violations
    where = in_scope(scope, p.c.kecamatan_code, p.c.cooperative_id)
    if kecamatan_code:
        where.append(p.c.kecamatan_code == kecamatan_code)
    if commodity:
        where.append(p.c.commodity == commodity)
    if since:
        where.append(p.c.occurred_at >= since)
    if until:
        where.append(p.c.occurred_at < until)
    total, excess_milli = (
        await session.execute(select(func.count(), func.sum(p.c.excess * p.c.quantity_milli)).where(*where))
    ).one()
    rows = await session.execute(
        select(p, d.c.name.label("cooperative_name"))
        .select_from(p.outerjoin(d, d.c.id == p.c.cooperative_id))
        .where(*where)
        .order_by(p.c.occurred_at.desc(), p.c.movement_id)
        .limit(limit)
        .offset(offset)
    )
    items = [
        {
            "movement_id": row.movement_id,
            "cooperative_id": row.cooperative_id,
            "cooperative_name": row.cooperative_name,
            "kecamatan_code": row.kecamatan_code,
            "commodity": row.commodity,
            "unit": row.unit,
            "quantity": quantity_out(row.quantity_milli),
            "unit_price": row.unit_price,
            "price_ceiling": row.price_ceiling,
            "excess": row.excess,
            "occurred_at": row.occurred_at,
        }
        for row in rows.all()
    ]
    # The rupiah charged above the ceiling: excess per unit × quantity (kept in thousandths).
    return items, int(total), round(int(excess_milli or 0) / 1000)
