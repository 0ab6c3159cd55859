"""Reporting's HTTP routes: thin adapters over the queries and the service layer.

Who sees what:
- city and kecamatan aggregates (`/dashboard/*`, `/kecamatan`, `/reports/rates`, `/needs/response-times`,
  the monthly PDF): admin, officer (limited to its kecamatan), service;
- lists with cooperative rows (`/stalled`, `/price-violations`, `/cooperatives`, `/reports`, exports):
  the same, and a cooperative's manager for its own cooperative's rows only;
- one cooperative (`/cooperatives/{id}`, `/health`, `/reports`): whoever may read it (404 otherwise);
- `/public/*`: anyone, aggregates only;
- suppliers: nothing here is addressed to a supplier (403).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from kkmp_shared import clock
from kkmp_shared.app import SessionDep, UowDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal, Principal, ensure_can_read
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import forbidden, not_found
from pydantic import AfterValidator

from reporting.adapters import exports as export_files
from reporting.adapters.pdf import render_monthly_report
from reporting.domain.periods import PERIOD_PATTERN, Period, local_date
from reporting.domain.scope import Scope
from reporting.entrypoints import schemas
from reporting.service_layer import commands, queries, reports
from reporting.service_layer.context import ReportingContext
from reporting.service_layer.rebuild import rebuild


class FastJSON(JSONResponse):
    """orjson rendering for the big lists (thousands of kecamatan or cooperatives at national scale);
    UTC timestamps end in "Z" as pydantic writes them elsewhere."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def _context(request: Request) -> ReportingContext:
    return request.app.state.reporting


ContextDep = Annotated[ReportingContext, Depends(_context)]
KecamatanCode = Annotated[
    str | None, Query(max_length=20, pattern=r"^[0-9.]+$", description="Kecamatan code")
]
Commodity = Annotated[str | None, Query(max_length=50, pattern=r"^[a-z0-9_]+$", description="Commodity code")]
CooperativeId = Annotated[str, Path(min_length=1, max_length=64, pattern=schemas.NO_CONTROL)]
CooperativeQuery = Annotated[str | None, Query(max_length=64, pattern=schemas.NO_CONTROL)]
PeriodQuery = Annotated[str | None, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")]
# Over-long pages are clamped, not refused (the contract); 5,000 rows is this service's page maximum.
MAX_LIST_PAGE = 5000
Limit = Annotated[
    int,
    Query(ge=1, description=f"Page size; clamped to {MAX_LIST_PAGE}"),
    AfterValidator(lambda limit: min(limit, MAX_LIST_PAGE)),
]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]

AGGREGATE_ROLES = ("admin", "officer", "service")
RUNNER_ROLES = ("admin", "officer", "service")


def aggregate_scope(principal: Principal, kecamatan_code: str | None = None) -> list[str] | None:
    """The kecamatan an aggregate may cover (None: the whole city); 403 for other roles."""
    if principal.role not in AGGREGATE_ROLES:
        raise forbidden("These figures are for Dinkopdag staff; see /public/* for the public figures.")
    _check_filter(principal, kecamatan_code)
    return principal.kecamatan_filter()


def list_scope(principal: Principal, kecamatan_code: str | None = None) -> Scope:
    """Rows a list may show: a manager its own cooperative's, an officer its area's, else all."""
    if principal.role == "coop_manager":
        if not principal.cooperative_id:
            raise forbidden("This account is not linked to a cooperative.")
        return Scope(cooperative_id=principal.cooperative_id)
    if principal.role not in AGGREGATE_ROLES:
        raise forbidden("Nothing here is addressed to a supplier.")
    _check_filter(principal, kecamatan_code)
    return Scope(kecamatan=principal.kecamatan_filter())


def _check_filter(principal: Principal, kecamatan_code: str | None) -> None:
    if kecamatan_code and principal.role == "officer" and not principal.covers_kecamatan(kecamatan_code):
        raise forbidden("That kecamatan is outside your area.")


async def readable_cooperative(session: Any, principal: Principal, cooperative_id: str) -> KnownCooperative:
    coop = await queries.find_cooperative(session, cooperative_id)
    if coop is None:
        raise not_found("cooperative")
    ensure_can_read(principal, coop.id, coop.kecamatan_code)
    return coop


def _naive_as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- dashboards ---------------------------------------------------------------------------------

# Every route documents the error format with the statuses it may answer (the contract's list).
ERRORS = schemas.error_responses(*schemas.COMMON_ERRORS)
dashboards = APIRouter(tags=["dashboards"], responses=ERRORS)


@dashboards.get("/dashboard/summary", response_model=schemas.SummaryOut, summary="City (or area) figures")
async def dashboard_summary(session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal) -> Any:
    scope = aggregate_scope(principal)
    return await queries.summary(session, scope, ctx.as_of(), str(ctx.current_period()))


@dashboards.get(
    "/kecamatan", response_model=list[schemas.KecamatanOut], summary="The same figures per kecamatan"
)
async def per_kecamatan(session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal) -> Any:
    scope = aggregate_scope(principal)
    return await _kecamatan_response(session, ctx, scope)


async def _kecamatan_response(
    session: Any, ctx: ReportingContext, scope: list[str] | None, headers: dict[str, str] | None = None
) -> Response:
    """The per-kecamatan list (thousands of rows at national scale, re-rendered only where the
    refresher changed them); `X-As-Of` says when the figures were last brought up to date."""
    body = await ctx.kecamatan_list.body(session, scope, ctx.names, str(ctx.current_period()))
    as_of = ctx.as_of().isoformat().replace("+00:00", "Z")
    return Response(body, media_type="application/json", headers={**(headers or {}), "X-As-Of": as_of})


async def _series(
    session: Any,
    ctx: ContextDep,
    principal: Principal,
    weeks: int,
    kecamatan_code: str | None,
    commodity: str | None,
    cooperative_id: str | None,
) -> dict[str, Any]:
    if cooperative_id or principal.role == "coop_manager":
        target = cooperative_id or principal.cooperative_id
        if target is None:
            raise forbidden("This account is not linked to a cooperative.")
        await readable_cooperative(session, principal, target)
        scope = Scope(cooperative_id=target)
    else:
        scope = Scope(kecamatan=aggregate_scope(principal, kecamatan_code))
    return await queries.sales_series(
        session,
        weeks=weeks,
        now=clock.now(),
        tz=ctx.tz,
        scope=scope,
        kecamatan_code=kecamatan_code,
        commodity=commodity,
    )


@dashboards.get(
    "/timeseries/sales",
    response_model=schemas.TimeseriesOut,
    summary="Weekly sales (volume, value, transactions) and stalled value, for charts",
)
async def timeseries_sales(
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    commodity: Commodity = None,
    cooperative_id: CooperativeQuery = None,
    weeks: Annotated[int, Query(ge=1, le=104)] = 12,
) -> Any:
    return await _series(session, ctx, principal, weeks, kecamatan_code, commodity, cooperative_id)


@dashboards.get(
    "/dashboard/timeseries", response_model=schemas.TimeseriesOut, summary="Alias of /timeseries/sales"
)
async def dashboard_timeseries(
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    commodity: Commodity = None,
    cooperative_id: CooperativeQuery = None,
    weeks: Annotated[int, Query(ge=1, le=104)] = 12,
) -> Any:
    return await _series(session, ctx, principal, weeks, kecamatan_code, commodity, cooperative_id)


@dashboards.get(
    "/stalled", response_model=list[schemas.StalledOut], summary="Stalled stock (stok macet), largest first"
)
async def stalled(
    session: SessionDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    commodity: Commodity = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> Any:
    scope = list_scope(principal, kecamatan_code)
    items, total = await queries.stalled_items(
        session,
        scope,
        now=clock.now(),
        kecamatan_code=kecamatan_code,
        commodity=commodity,
        limit=limit,
        offset=offset,
    )
    return FastJSON(items, headers={"X-Total-Count": str(total)})


@dashboards.get(
    "/needs/response-times", response_model=schemas.ResponseTimesOut, summary="How fast needs were answered"
)
async def needs_response_times(
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    kind: Literal["supply", "capital", "training", "other"] | None = None,
    since: Annotated[schemas.IsoDateTime | None, Query(description="Needs submitted from")] = None,
    until: Annotated[schemas.IsoDateTime | None, Query(description="Needs submitted before")] = None,
) -> Any:
    scope = aggregate_scope(principal, kecamatan_code)
    return await queries.response_times(
        session,
        Scope(kecamatan=scope),
        ctx.names,
        kecamatan_code=kecamatan_code,
        kind=kind,
        since=_naive_as_utc(since),
        until=_naive_as_utc(until),
    )


@dashboards.get(
    "/price-violations",
    response_model=schemas.PriceViolationPage,
    summary="Sales above the price ceiling (HET/HAP), newest first",
)
async def list_price_violations(
    session: SessionDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    commodity: Commodity = None,
    since: schemas.IsoDateTime | None = None,
    until: schemas.IsoDateTime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Any:
    scope = list_scope(principal, kecamatan_code)
    items, total, excess = await queries.price_violations(
        session,
        scope,
        kecamatan_code=kecamatan_code,
        commodity=commodity,
        since=_naive_as_utc(since),
        until=_naive_as_utc(until),
        limit=limit,
        offset=offset,
    )
    return {"items": items, "total": total, "total_excess_value": excess}


# --- cooperatives -------------------------------------------------------------------------------

cooperatives = APIRouter(tags=["cooperatives"], responses=ERRORS)


@cooperatives.get(
    "/cooperatives", response_model=schemas.CooperativePage, summary="Cooperatives with their health level"
)
async def list_cooperatives(
    session: SessionDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    level: Literal["aktif", "kurang_aktif", "tidak_aktif"] | None = None,
    q: Annotated[str | None, Query(max_length=100, pattern=schemas.NO_CONTROL)] = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> Any:
    scope = list_scope(principal, kecamatan_code)
    items, total = await queries.cooperative_rows(
        session, scope, kecamatan_code=kecamatan_code, level=level, q=q, limit=limit, offset=offset
    )
    return FastJSON({"items": items, "total": total})


@cooperatives.get("/cooperatives/{cooperative_id}", summary="One cooperative's figures (its own dashboard)")
async def cooperative_figures(
    cooperative_id: CooperativeId, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    coop = await readable_cooperative(session, principal, cooperative_id)
    return FastJSON(await queries.cooperative_page(session, ctx, coop, clock.now()))


@cooperatives.get(
    "/cooperatives/{cooperative_id}/health",
    response_model=schemas.HealthOut,
    summary="Health score 0-100, level and every factor with its weight and note",
)
async def cooperative_health(
    cooperative_id: CooperativeId, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    coop = await readable_cooperative(session, principal, cooperative_id)
    return await queries.cooperative_health(session, ctx, coop.id, clock.now())


# --- monthly reports ----------------------------------------------------------------------------

monthly = APIRouter(tags=["monthly reports"], responses=ERRORS)


@monthly.post(
    "/cooperatives/{cooperative_id}/reports",
    response_model=schemas.ReportOut,
    status_code=status.HTTP_201_CREATED,
    summary="Submit a monthly report (laporan bulanan): the cooperative's manager, or staff",
    responses={409: {"model": schemas.ErrorOut, "description": "A report for this period exists"}},
)
async def submit_report(
    cooperative_id: CooperativeId,
    data: schemas.ReportIn,
    uow: UowDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
) -> Any:
    command = commands.SubmitReport(cooperative_id=cooperative_id, **data.model_dump())
    return reports.report_out(await reports.submit_report(uow, principal, ctx.rules, command))


@monthly.get(
    "/cooperatives/{cooperative_id}/reports",
    response_model=list[schemas.ReportOut],
    summary="A cooperative's monthly reports, newest period first",
)
async def cooperative_reports(
    cooperative_id: CooperativeId, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    coop = await readable_cooperative(session, principal, cooperative_id)
    rows, _total = await queries.report_rows(session, Scope(cooperative_id=coop.id))
    return [reports.report_out(row) for row in rows]


@monthly.get("/reports", response_model=schemas.ReportPage, summary="Monthly reports in scope")
async def list_reports(
    session: SessionDep,
    principal: CurrentPrincipal,
    period: PeriodQuery = None,
    kecamatan_code: KecamatanCode = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> Any:
    scope = list_scope(principal, kecamatan_code)
    rows, total = await queries.report_rows(
        session, scope, period=period, kecamatan_code=kecamatan_code, limit=limit, offset=offset
    )
    return {"items": [reports.report_out(row) for row in rows], "total": total}


@monthly.post(
    "/reports/batch",
    response_model=schemas.ReportBatchOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record up to 1,000 reports at once, all or none (admin: imports and demo seeds)",
)
async def submit_report_batch(
    data: schemas.ReportBatchIn, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    batch = [commands.SubmitReport(**item.model_dump()) for item in data.reports]
    rows = await reports.submit_report_batch(uow, principal, ctx.rules, batch)
    return {"created": len(rows), "items": [reports.report_out(row) for row in rows]}


@monthly.get(
    "/reports/rates",
    response_model=schemas.RatesOut,
    summary="Completeness and on-time rate of monthly reports per kecamatan and city (DHIS2-style)",
)
async def report_rates(
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    period: PeriodQuery = None,
    kecamatan_code: KecamatanCode = None,
) -> Any:
    scope = aggregate_scope(principal, kecamatan_code)
    if kecamatan_code:
        scope = [kecamatan_code]
    chosen = Period.parse(period) if period else ctx.current_period()
    return await reports.rates(session, ctx.rules, chosen, scope, ctx.names)


@monthly.post(
    "/reports/overdue/run",
    response_model=schemas.OverdueRunOut,
    summary="Announce report.overdue.v1 for every report whose due date has passed (once each)",
)
async def run_overdue(
    uow: UowDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    data: schemas.OverdueRunIn | None = None,
) -> Any:
    if principal.role not in RUNNER_ROLES:
        raise forbidden("Overdue detection is run by Dinkopdag staff.")
    as_of = (data.as_of if data and data.as_of else clock.now()).astimezone(UTC)
    return await reports.announce_overdue(uow, ctx.rules, as_of, ctx.settings.overdue_lookback_periods)


# --- exports ------------------------------------------------------------------------------------

exports = APIRouter(tags=["exports"], responses=ERRORS)

EXPORT_COLUMNS: dict[str, list[str]] = {
    "cooperatives": [
        "cooperative_id",
        "name",
        "kelurahan_code",
        "kelurahan_name",
        "kecamatan_code",
        "kecamatan_name",
        "status",
        "member_count",
        "health_score",
        "health_level",
        "stalled_items",
        "stalled_value",
        "needs_open",
        "report_period",
        "report_status",
    ],
    "stalled": [
        "cooperative_id",
        "cooperative_name",
        "kecamatan_code",
        "kecamatan_name",
        "kelurahan_code",
        "commodity",
        "on_hand",
        "unit",
        "days_since_sale",
        "last_sale_at",
        "value",
        "since",
    ],
    "needs": [
        "need_id",
        "cooperative_id",
        "cooperative_name",
        "kecamatan_code",
        "kecamatan_name",
        "kind",
        "commodity",
        "status",
        "submitted_at",
        "first_response_at",
        "response_hours",
        "closed_at",
        "description",
    ],
    "reports": [
        "id",
        "cooperative_id",
        "cooperative_name",
        "kecamatan_code",
        "kecamatan_name",
        "period",
        "omzet",
        "transactions",
        "members",
        "simpanan",
        "submitted_at",
        "due_date",
        "on_time",
        "notes",
    ],
}
ExportName = Annotated[str, Path(max_length=40, description="cooperatives, stalled, needs or reports")]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


async def _export(
    fmt: str,
    name: ExportName,
    session: Any,
    ctx: ReportingContext,
    principal: Principal,
    kecamatan_code: str | None,
    period: str | None,
    need_status: str | None,
) -> Response:
    if name not in EXPORT_COLUMNS:
        raise not_found("export")
    scope = list_scope(principal, kecamatan_code)
    rows = await queries.export_rows(
        session,
        ctx,
        name,
        scope,
        now=clock.now(),
        kecamatan_code=kecamatan_code,
        period=period,
        need_status=need_status,
    )
    columns = EXPORT_COLUMNS[name]
    stamp = local_date(clock.now(), ctx.tz).isoformat()
    body = export_files.to_csv(columns, rows) if fmt == "csv" else export_files.to_xlsx(name, columns, rows)
    return Response(
        body,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="kkmp-{name}-{stamp}.{fmt}"'},
    )


NeedStatusQuery = Annotated[
    Literal["open", "acknowledged", "in_progress", "resolved", "rejected"] | None, Query(alias="status")
]


@exports.get(
    "/exports/monthly-report.pdf",
    summary="The department's monthly PDF: summary, per-kecamatan table, charts, cooperatives to visit",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def monthly_report_pdf(
    session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal, period: PeriodQuery = None
) -> Response:
    scope = aggregate_scope(principal)
    chosen = Period.parse(period) if period else ctx.current_period()
    data = await queries.monthly_report(session, ctx, scope, chosen, clock.now())
    return Response(
        render_monthly_report(data),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="kkmp-laporan-bulanan-{chosen}.pdf"'},
    )


@exports.get("/exports/monthly.pdf", include_in_schema=False)
async def monthly_report_pdf_alias(
    session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal, period: PeriodQuery = None
) -> Response:
    return await monthly_report_pdf(session, ctx, principal, period)


@exports.get(
    "/exports/{name}.csv",
    response_class=Response,
    summary="A list as CSV",
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_csv(
    name: ExportName,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    period: PeriodQuery = None,
    need_status: NeedStatusQuery = None,
) -> Response:
    return await _export("csv", name, session, ctx, principal, kecamatan_code, period, need_status)


@exports.get(
    "/exports/{name}.xlsx",
    response_class=Response,
    summary="A list as XLSX",
    responses={200: {"content": {MEDIA["xlsx"]: {}}}},
)
async def export_xlsx(
    name: ExportName,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    kecamatan_code: KecamatanCode = None,
    period: PeriodQuery = None,
    need_status: NeedStatusQuery = None,
) -> Response:
    return await _export("xlsx", name, session, ctx, principal, kecamatan_code, period, need_status)


# --- public transparency view -------------------------------------------------------------------

public = APIRouter(tags=["public"], responses=ERRORS)
PUBLIC_CACHE = {"Cache-Control": "public, max-age=60"}


@public.get(
    "/public/summary", response_model=schemas.SummaryOut, summary="City figures, no login (aggregates only)"
)
async def public_summary(session: SessionDep, ctx: ContextDep) -> Any:
    body = await queries.summary(session, None, ctx.as_of(), str(ctx.current_period()))
    return FastJSON(body, headers=PUBLIC_CACHE)


@public.get(
    "/public/kecamatan", response_model=list[schemas.KecamatanOut], summary="Per-kecamatan figures, no login"
)
async def public_kecamatan(session: SessionDep, ctx: ContextDep) -> Any:
    return await _kecamatan_response(session, ctx, None, PUBLIC_CACHE)


# --- operations ---------------------------------------------------------------------------------

admin = APIRouter(tags=["operations"], responses=ERRORS)


@admin.post(
    "/admin/rebuild", response_model=schemas.RebuildOut, summary="Rebuild the read model from the event store"
)
async def admin_rebuild(ctx: ContextDep, _: AdminPrincipal) -> Any:
    result = await rebuild(ctx.projector, ctx.refresher)
    return result.__dict__


@admin.post(
    "/admin/health/recompute",
    response_model=schemas.RecomputeOut,
    summary="Recompute every cooperative's health now (and announce level changes)",
)
async def admin_recompute(ctx: ContextDep, principal: CurrentPrincipal) -> Any:
    if principal.role not in RUNNER_ROLES:
        raise forbidden("Recomputing health is for Dinkopdag staff.")
    result = await ctx.refresher.recompute_all_health()
    return {
        "cooperatives": result.cooperatives,
        "level_changes": result.level_changes,
        "kecamatan": result.kecamatan,
    }


ROUTERS = [dashboards, cooperatives, monthly, exports, public, admin]
