"""Read use cases: what each screen shows, from the read views in `adapters/views`.

Most screens are one view, used as it is (re-exported here); the pages that combine several (a
cooperative's own page, the exports, the monthly PDF) are put together here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import not_found
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters.directory import directory, known_cooperatives
from reporting.adapters.pdf import MonthlyReportData
from reporting.adapters.views import cooperatives, exports, needs, reports, stock
from reporting.adapters.views.cooperatives import cooperative_rows
from reporting.adapters.views.dashboard import kecamatan_rows, summary
from reporting.adapters.views.needs import response_times
from reporting.adapters.views.prices import price_violations
from reporting.adapters.views.reports import report_rows
from reporting.adapters.views.series import sales_series
from reporting.adapters.views.stock import stalled_items
from reporting.domain import visits
from reporting.domain.periods import Period
from reporting.domain.scope import Scope
from reporting.service_layer import reports as monthly
from reporting.service_layer.context import ReportingContext
from reporting.service_layer.refresh import factors_json

__all__ = [
    "cooperative_health",
    "cooperative_page",
    "cooperative_rows",
    "export_rows",
    "find_cooperative",
    "known_cooperatives",
    "monthly_report",
    "price_violations",
    "report_rows",
    "response_times",
    "sales_series",
    "stalled_items",
    "summary",
    "visit_list",
]


async def find_cooperative(session: AsyncSession, cooperative_id: str) -> KnownCooperative | None:
    return await directory.get(session, cooperative_id)


async def cooperative_health(
    session: AsyncSession, ctx: ReportingContext, cooperative_id: str, now: datetime
) -> dict[str, Any]:
    """Computed from the read model as it is now, so the answer never lags the events."""
    assessed = await ctx.refresher.assess(session, [cooperative_id], now)
    if cooperative_id not in assessed:
        raise not_found("cooperative")
    _coop, assessment = assessed[cooperative_id]
    return {
        "cooperative_id": cooperative_id,
        "score": assessment.score,
        "level": assessment.level,
        "factors": factors_json(assessment),
        "computed_at": now,
    }


async def cooperative_page(
    session: AsyncSession, ctx: ReportingContext, coop: KnownCooperative, now: datetime
) -> dict[str, Any]:
    """Everything reporting knows about one cooperative, its health fresh."""
    health = await cooperative_health(session, ctx, coop.id, now)
    return await cooperatives.cooperative_detail(session, coop, health, now=now, tz=ctx.tz, names=ctx.names)


async def visit_list(
    session: AsyncSession, scope: Scope, names: dict[str, str], period: Period, limit: int = 200
) -> list[dict[str, Any]]:
    """Cooperatives needing a visit, worst health first, with the reasons spelled out."""
    rows = await exports.cooperative_export_rows(session, scope, names, period)
    unanswered = await exports.unanswered_needs(session, scope)
    return visits.visit_list(rows, unanswered, period, limit)


async def export_rows(
    session: AsyncSession,
    ctx: ReportingContext,
    name: str,
    scope: Scope,
    *,
    now: datetime,
    kecamatan_code: str | None,
    period: str | None,
    need_status: str | None,
) -> list[dict[str, Any]]:
    """The rows of one export (cooperatives, stalled, needs or reports), with kecamatan names."""
    names = ctx.names
    if name == "cooperatives":
        chosen = Period.parse(period) if period else ctx.current_period()
        return await exports.cooperative_export_rows(
            session, scope, names, chosen, kecamatan_code=kecamatan_code
        )
    if name == "stalled":
        rows, _ = await stock.stalled_items(
            session, scope, now=now, kecamatan_code=kecamatan_code, limit=1_000_000
        )
    elif name == "needs":
        rows = await needs.need_rows(session, scope, status=need_status, kecamatan_code=kecamatan_code)
    else:
        rows, _ = await reports.report_rows(session, scope, period=period, kecamatan_code=kecamatan_code)
    return [
        {**row, "kecamatan_name": names.get(row["kecamatan_code"], row["kecamatan_code"])} for row in rows
    ]


async def monthly_report(
    session: AsyncSession, ctx: ReportingContext, scope: list[str] | None, chosen: Period, now: datetime
) -> MonthlyReportData:
    """The department's monthly PDF: summary, per-kecamatan table, charts, cooperatives to visit."""
    names, current = ctx.names, str(ctx.current_period())
    return MonthlyReportData(
        area="Kota Surabaya" if scope is None else "Wilayah " + ", ".join(names.get(c, c) for c in scope),
        period=str(chosen),
        due_date=ctx.due.due_date(chosen),
        generated_at=now,
        summary=await summary(session, scope, ctx.as_of(), current),
        rates=await monthly.rates(session, ctx.rules, chosen, scope, names),
        kecamatan=await kecamatan_rows(session, scope, names, current),
        weekly=(await sales_series(session, weeks=12, now=now, tz=ctx.tz, scope=Scope(kecamatan=scope)))[
            "weeks"
        ],
        visits=await visit_list(session, Scope(kecamatan=scope), names, chosen),
    )
