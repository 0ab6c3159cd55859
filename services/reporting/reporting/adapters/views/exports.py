"""The rows of the cooperatives export and of the monthly PDF's visit list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.views.scope import in_scope
from reporting.domain.needs import OPEN_STATUSES
from reporting.domain.periods import Period
from reporting.domain.scope import Scope

d = orm.known_cooperatives


async def cooperative_export_rows(
    session: AsyncSession,
    scope: Scope,
    names: dict[str, str],
    period: Period,
    *,
    kecamatan_code: str | None = None,
) -> list[dict[str, Any]]:
    """One row per cooperative with its health and headline figures (grouped subqueries, one pass)."""
    h, s, n, r = orm.cooperative_health, orm.stock_items, orm.needs, orm.monthly_reports
    stalled = (
        select(
            s.c.cooperative_id,
            func.count().label("stalled_items"),
            func.sum(s.c.stalled_value).label("stalled_value"),
        )
        .where(s.c.stalled)
        .group_by(s.c.cooperative_id)
        .subquery()
    )
    open_needs = (
        select(n.c.cooperative_id, func.count().label("needs_open"))
        .where(n.c.status.in_(OPEN_STATUSES))
        .group_by(n.c.cooperative_id)
        .subquery()
    )
    report = select(r.c.cooperative_id, r.c.on_time).where(r.c.period == str(period)).subquery()
    where = in_scope(scope, d.c.kecamatan_code, d.c.id)
    if kecamatan_code:
        where.append(d.c.kecamatan_code == kecamatan_code)
    rows = await session.execute(
        select(
            d.c.id,
            d.c.name,
            d.c.kelurahan_code,
            d.c.kelurahan_name,
            d.c.kecamatan_code,
            d.c.status,
            d.c.member_count,
            h.c.score,
            h.c.level,
            stalled.c.stalled_items,
            stalled.c.stalled_value,
            open_needs.c.needs_open,
            report.c.on_time,
        )
        .select_from(
            d.outerjoin(h, h.c.cooperative_id == d.c.id)
            .outerjoin(stalled, stalled.c.cooperative_id == d.c.id)
            .outerjoin(open_needs, open_needs.c.cooperative_id == d.c.id)
            .outerjoin(report, report.c.cooperative_id == d.c.id)
        )
        .where(*where)
        .order_by(d.c.kecamatan_code, d.c.name, d.c.id)
    )
    out = []
    for row in rows.all():
        report_status = "belum" if row.on_time is None else "tepat_waktu" if row.on_time else "terlambat"
        out.append(
            {
                "cooperative_id": row.id,
                "name": row.name,
                "kelurahan_code": row.kelurahan_code,
                "kelurahan_name": row.kelurahan_name,
                "kecamatan_code": row.kecamatan_code,
                "kecamatan_name": names.get(row.kecamatan_code, row.kecamatan_code),
                "status": row.status,
                "member_count": row.member_count,
                "health_score": row.score,
                "health_level": row.level,
                "stalled_items": int(row.stalled_items or 0),
                "stalled_value": int(row.stalled_value or 0),
                "needs_open": int(row.needs_open or 0),
                "report_period": str(period),
                "report_status": report_status,
            }
        )
    return out


async def unanswered_needs(session: AsyncSession, scope: Scope) -> dict[str, int]:
    """Needs still waiting for a first answer, per cooperative."""
    n = orm.needs
    return {
        row[0]: int(row[1])
        for row in await session.execute(
            select(n.c.cooperative_id, func.count())
            .where(n.c.status == "open", *in_scope(scope, n.c.kecamatan_code, n.c.cooperative_id))
            .group_by(n.c.cooperative_id)
        )
    }
