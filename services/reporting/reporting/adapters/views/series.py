"""Weekly sales and stalled value, for the charts."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.views.scope import in_scope
from reporting.domain.periods import local_date, local_midnight, week_start
from reporting.domain.scope import Scope
from reporting.domain.stock import quantity_out

d = orm.known_cooperatives


async def sales_series(
    session: AsyncSession,
    *,
    weeks: int,
    now: datetime,
    tz: tzinfo,
    scope: Scope,
    kecamatan_code: str | None = None,
    commodity: str | None = None,
) -> dict[str, Any]:
    """Weekly sales (quantity, value, transactions) and the stalled value at each week's end."""
    this_week = week_start(local_date(now, tz))
    starts = [this_week - timedelta(weeks=i) for i in range(weeks - 1, -1, -1)]
    first = starts[0]
    if scope.cooperative_id is not None:
        t = orm.coop_sales_weekly
        where = [t.c.cooperative_id == scope.cooperative_id, t.c.week_start >= first]
        if commodity:
            where.append(t.c.commodity == commodity)
    else:
        t = orm.sales_weekly
        where = [t.c.week_start >= first, t.c.commodity == (commodity or orm.ALL)]
        if kecamatan_code:
            where.append(t.c.scope == kecamatan_code)
        elif scope.kecamatan is not None:
            where.append(t.c.scope.in_(scope.kecamatan))
        else:
            where.append(t.c.scope == orm.ALL)
    sums: dict[date, tuple[int, int, int]] = {
        row[0]: (int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))
        for row in await session.execute(
            select(
                t.c.week_start, func.sum(t.c.quantity_milli), func.sum(t.c.value), func.sum(t.c.transactions)
            )
            .where(*where)
            .group_by(t.c.week_start)
        )
    }
    e = orm.stalled_episodes
    episode_where = in_scope(scope, e.c.kecamatan_code, e.c.cooperative_id)
    if kecamatan_code:
        episode_where.append(e.c.kecamatan_code == kecamatan_code)
    if commodity:
        episode_where.append(e.c.commodity == commodity)
    result = []
    for start in starts:
        end = min(local_midnight(start + timedelta(days=7), tz), now)
        stalled = (
            await session.execute(
                select(func.sum(e.c.value)).where(
                    *episode_where, e.c.started_at < end, or_(e.c.ended_at.is_(None), e.c.ended_at >= end)
                )
            )
        ).scalar()
        quantity, value, transactions = sums.get(start, (0, 0, 0))
        result.append(
            {
                "week_start": start,
                "quantity": quantity_out(quantity),
                "value": value,
                "sales": value,
                "transactions": transactions,
                "stalled_value": int(stalled or 0),
            }
        )
    return {
        "kecamatan_code": kecamatan_code,
        "commodity": commodity,
        "cooperative_id": scope.cooperative_id,
        "weeks": result,
    }
