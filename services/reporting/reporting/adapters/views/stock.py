"""Stalled stock (stok macet), largest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.views.scope import in_scope
from reporting.domain.scope import Scope
from reporting.domain.stock import days_since_sale_now, quantity_out

d = orm.known_cooperatives


def _stalled_query(scope: Scope, kecamatan_code: str | None, commodity: str | None) -> tuple[Any, list[Any]]:
    s = orm.stock_items
    where = [s.c.stalled, *in_scope(scope, s.c.kecamatan_code, s.c.cooperative_id)]
    if kecamatan_code:
        where.append(s.c.kecamatan_code == kecamatan_code)
    if commodity:
        where.append(s.c.commodity == commodity)
    return s.outerjoin(d, d.c.id == s.c.cooperative_id), where


async def stalled_items(
    session: AsyncSession,
    scope: Scope,
    *,
    now: datetime,
    kecamatan_code: str | None = None,
    commodity: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    s = orm.stock_items
    joined, where = _stalled_query(scope, kecamatan_code, commodity)
    total = int((await session.execute(select(func.count()).select_from(s).where(*where))).scalar_one())
    rows = await session.execute(
        select(s, d.c.name.label("cooperative_name"), d.c.kelurahan_code)
        .select_from(joined)
        .where(*where)
        .order_by(s.c.stalled_value.desc(), s.c.cooperative_id, s.c.commodity)
        .limit(limit)
        .offset(offset)
    )
    items = []
    for row in rows.all():
        detected_at = row.stalled_changed_at or row.stalled_since or now
        items.append(
            {
                "cooperative_id": row.cooperative_id,
                "cooperative_name": row.cooperative_name,
                "kecamatan_code": row.kecamatan_code,
                "kelurahan_code": row.kelurahan_code,
                "commodity": row.commodity,
                "on_hand": quantity_out(row.stalled_on_hand_milli),
                "unit": row.unit,
                "days_since_sale": days_since_sale_now(row.stalled_days_since_sale or 0, detected_at, now),
                "last_sale_at": row.stalled_last_sale_at,
                "value": int(row.stalled_value),
                "since": row.stalled_since,
            }
        )
    return items, total
