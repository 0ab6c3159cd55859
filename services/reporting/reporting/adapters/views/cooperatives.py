"""Cooperatives: the directory entries, the list with health levels, one cooperative's own page."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import figures, orm
from reporting.adapters.views.scope import in_scope
from reporting.adapters.views.series import sales_series
from reporting.domain.needs import OPEN_STATUSES, seconds_to_hours
from reporting.domain.periods import local_date
from reporting.domain.scope import Scope
from reporting.domain.stock import quantity_out

d = orm.known_cooperatives


async def cooperative_rows(
    session: AsyncSession,
    scope: Scope,
    *,
    kecamatan_code: str | None = None,
    level: str | None = None,
    q: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    h = orm.cooperative_health
    where = in_scope(scope, d.c.kecamatan_code, d.c.id)
    if kecamatan_code:
        where.append(d.c.kecamatan_code == kecamatan_code)
    if level:
        where.append(h.c.level == level)
    if q:
        where.append(func.lower(d.c.name).contains(q.lower(), autoescape=True))
    joined = d.outerjoin(h, h.c.cooperative_id == d.c.id)
    total = int((await session.execute(select(func.count()).select_from(joined).where(*where))).scalar_one())
    rows = await session.execute(
        select(
            d.c.id.label("cooperative_id"),
            d.c.name,
            d.c.kelurahan_code,
            d.c.kelurahan_name,
            d.c.kecamatan_code,
            d.c.status,
            d.c.member_count,
            h.c.score,
            h.c.level,
            h.c.computed_at.label("health_computed_at"),
        )
        .select_from(joined)
        .where(*where)
        .order_by(d.c.kecamatan_code, d.c.name, d.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [dict(r._mapping) for r in rows.all()], total


async def cooperative_detail(
    session: AsyncSession,
    coop: Any,
    health: dict[str, Any],
    *,
    now: datetime,
    tz: tzinfo,
    names: dict[str, str],
    weeks: int = 12,
) -> dict[str, Any]:
    """Everything reporting knows about one cooperative, for its own page."""
    coop_id = coop.id
    facts = (
        await session.execute(
            select(orm.cooperative_facts).where(orm.cooperative_facts.c.cooperative_id == coop_id)
        )
    ).first()
    s = orm.stock_items
    stock = []
    for row in (
        await session.execute(select(s).where(s.c.cooperative_id == coop_id).order_by(s.c.commodity))
    ).all():
        status = "stalled" if row.stalled else "stockout" if row.stockout else "low" if row.low else "ok"
        stock.append(
            {
                "commodity": row.commodity,
                "unit": row.unit,
                "on_hand": quantity_out(row.on_hand_milli),
                "last_sale_at": row.last_sale_at,
                "status": status,
                "stalled_value": row.stalled_value if row.stalled else 0,
                "stalled_since": row.stalled_since,
            }
        )
    n = orm.needs
    need_counts = (
        await session.execute(
            select(
                func.sum(case((n.c.status.in_(OPEN_STATUSES), 1), else_=0)),
                func.sum(case((n.c.status == "open", 1), else_=0)),
                func.count(n.c.response_seconds),
            ).where(n.c.cooperative_id == coop_id)
        )
    ).one()
    median = (await figures.response_medians(session, None, [n.c.cooperative_id == coop_id]))[None]
    today = local_date(now, tz)
    daily = orm.coop_members_daily

    async def joined_since(days: int) -> int:
        value = (
            await session.execute(
                select(func.sum(daily.c.members_joined)).where(
                    daily.c.cooperative_id == coop_id,
                    daily.c.day > today - timedelta(days=days),
                    daily.c.day <= today,
                )
            )
        ).scalar()
        return int(value or 0)

    t = orm.coop_trainings
    trainings = [
        dict(r._mapping)
        for r in (
            await session.execute(
                select(t.c.training_id, t.c.title, t.c.topic, t.c.completed_at)
                .where(t.c.cooperative_id == coop_id)
                .order_by(t.c.completed_at.desc())
            )
        ).all()
    ]
    r = orm.monthly_reports
    reports = [
        {
            "period": row.period,
            "submitted_at": row.submitted_at,
            "due_date": row.due_date,
            "on_time": row.on_time,
            "omzet": row.omzet,
        }
        for row in (
            await session.execute(
                select(r).where(r.c.cooperative_id == coop_id).order_by(r.c.period.desc()).limit(12)
            )
        ).all()
    ]
    p = orm.price_violations
    violations = int(
        (
            await session.execute(
                select(func.count()).where(
                    p.c.cooperative_id == coop_id, p.c.occurred_at > now - timedelta(days=90)
                )
            )
        ).scalar_one()
    )
    series = await sales_series(session, weeks=weeks, now=now, tz=tz, scope=Scope(cooperative_id=coop_id))
    return {
        "cooperative": {
            "id": coop.id,
            "name": coop.name,
            "kelurahan_code": coop.kelurahan_code,
            "kelurahan_name": coop.kelurahan_name,
            "kecamatan_code": coop.kecamatan_code,
            "kecamatan_name": names.get(coop.kecamatan_code, coop.kecamatan_code),
            "status": coop.status,
            "member_count": coop.member_count,
            "registered_at": facts.registered_at if facts else None,
        },
        "health": health,
        "stock": stock,
        "sales_weekly": series["weeks"],
        "needs": {
            "open": int(need_counts[0] or 0),
            "unanswered": int(need_counts[1] or 0),
            "responded": int(need_counts[2] or 0),
            "median_response_hours": seconds_to_hours(median),
        },
        "members": {
            "count": coop.member_count,
            "joined_30d": await joined_since(30),
            "joined_90d": await joined_since(90),
        },
        "trainings": trainings,
        "reports": reports,
        "price_violations_90d": violations,
        "as_of": now,
    }
