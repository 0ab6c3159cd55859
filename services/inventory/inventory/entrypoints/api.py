"""The inventory's HTTP routes: thin adapters over the service layer.

Access: a coop_manager sees and changes only its own cooperative (404 reading another's, 403 writing
it); officers act within their kecamatan (all of the city when they have none); admins everywhere;
suppliers see the catalogue only; services (machine to machine) read, record and run detection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from kkmp_shared import clock
from kkmp_shared.app import OutboxDep, ReadSessionDep, SessionDep
from kkmp_shared.auth import (
    AdminPrincipal,
    CurrentPrincipal,
    Principal,
    ensure_can_read,
    ensure_can_write,
    require_roles,
)
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import forbidden, not_found
from kkmp_shared.http import ERRORS, IdPath
from kkmp_shared.pagination import PageDep
from kkmp_shared.timeutil import as_utc
from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import orm, repository
from inventory.adapters.stock_cache import StockReadCache
from inventory.domain.detection import (
    average_daily_sales,
    classify_stock,
    days_of_cover,
    days_unmoved,
    sales_window,
    status_of,
)
from inventory.domain.ledger import MovementDraft, StockState
from inventory.entrypoints import schemas
from inventory.service_layer import catalogue as catalogue_service
from inventory.service_layer import idempotency
from inventory.service_layer.detection import run_detection
from inventory.service_layer.movements import MovementOrder, movement_out, record_movements

DetectionPrincipal = Annotated[Principal, require_roles("admin", "officer", "service")]
CityPrincipal = Annotated[Principal, require_roles("admin", "officer", "service")]
CooperativeId = IdPath
CommodityPath = Annotated[str, Path(max_length=40, pattern=schemas.NO_CONTROL)]
CommodityQuery = Annotated[str | None, Query(max_length=40, pattern=schemas.NO_CONTROL)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Same key, same body → the first result again, and no second effect.",
    ),
]
Status = Literal["ok", "low", "stockout", "stalled"]
Episode = Literal["low", "stockout", "stalled"]

# Every route documents the error format with the statuses it may answer (the contract's list).

commodities = APIRouter(tags=["commodities"], responses=ERRORS)
ledger = APIRouter(tags=["stock ledger"], responses=ERRORS)
stock = APIRouter(tags=["stock"], responses=ERRORS)
detection = APIRouter(tags=["detection"], responses=ERRORS)


def _now() -> datetime:
    return clock.now()


def _who(principal: Principal) -> str:
    return principal.username or principal.sub


async def readable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> KnownCooperative:
    coop = await repository.directory.get(session, cooperative_id)
    if coop is None or principal.role == "supplier":
        raise not_found("cooperative")
    ensure_can_read(principal, coop.id, coop.kecamatan_code)
    return coop


async def writable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> KnownCooperative:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot change a cooperative's stock.")
    coop = await repository.directory.get(session, cooperative_id)
    if coop is None:
        if principal.role == "coop_manager" and principal.cooperative_id != cooperative_id:
            raise forbidden("You may only change your own cooperative's data.")
        raise not_found("cooperative")
    ensure_can_write(principal, coop.id, coop.kecamatan_code)
    return coop


# --- commodities ------------------------------------------------------------------------------------


@commodities.get("/commodities", response_model=list[schemas.CommodityOut], summary="The commodity catalogue")
async def list_commodities(
    session: ReadSessionDep, _: CurrentPrincipal, include_inactive: bool = False
) -> Any:
    now = _now()
    catalogue = await repository.cached_catalogue(session)
    return [
        catalogue_service.commodity_out(info, now)
        for info in catalogue.values()
        if info.active or include_inactive
    ]


@commodities.get("/commodities/{code}", response_model=schemas.CommodityOut, responses=ERRORS)
async def get_commodity(code: CommodityPath, session: ReadSessionDep, _: CurrentPrincipal) -> Any:
    return catalogue_service.commodity_out(await catalogue_service.get_commodity(session, code), _now())


@commodities.post(
    "/commodities",
    response_model=schemas.CommodityOut,
    status_code=201,
    summary="Add a commodity (admin)",
    responses={**ERRORS, 409: {"model": schemas.ErrorOut, "description": "The code exists"}},
)
async def create_commodity(data: schemas.CommodityIn, session: SessionDep, principal: AdminPrincipal) -> Any:
    now = _now()
    info = await catalogue_service.create_commodity(session, principal, data, now)
    return catalogue_service.commodity_out(info, now)


@commodities.patch(
    "/commodities/{code}",
    response_model=schemas.CommodityOut,
    summary="Change a commodity's name, thresholds or ceiling (admin); a ceiling change keeps the old one",
    responses=ERRORS,
)
async def update_commodity(
    code: CommodityPath,
    data: schemas.CommodityUpdate,
    session: SessionDep,
    principal: AdminPrincipal,
) -> Any:
    now = _now()
    info = await catalogue_service.update_commodity(session, principal, code, data, now)
    return catalogue_service.commodity_out(info, now)


@commodities.get(
    "/commodities/{code}/ceilings",
    response_model=list[schemas.CeilingOut],
    summary="The ceiling's history (HET/HAP), oldest first",
    responses=ERRORS,
)
async def list_ceilings(code: CommodityPath, session: ReadSessionDep, _: CurrentPrincipal) -> Any:
    now = _now()
    info = await catalogue_service.get_commodity(session, code)
    current = info.ceiling_at(now)
    return [catalogue_service.ceiling_out(p, now, current) for p in info.ceilings]


@commodities.post(
    "/commodities/{code}/ceilings",
    response_model=schemas.CommodityOut,
    status_code=201,
    summary="Set a ceiling from a date on (admin); earlier ceilings stay in the history",
    responses=ERRORS,
)
async def add_ceiling(
    code: CommodityPath,
    data: schemas.CeilingIn,
    session: SessionDep,
    principal: AdminPrincipal,
) -> Any:
    now = _now()
    info = await catalogue_service.add_ceiling(session, principal, code, data, now)
    return catalogue_service.commodity_out(info, now)


# --- ledger -----------------------------------------------------------------------------------------


def _draft(item: schemas.MovementIn, now: datetime) -> MovementDraft:
    return MovementDraft(
        commodity=item.commodity,
        kind=item.kind,
        quantity=abs(item.quantity),
        occurred_at=item.occurred_at or now,
        unit_price=item.unit_price,
        reference=item.reference,
        reason=item.reason,
        note=item.note,
        decrease=item.decrease,
    )


async def _replay(
    session: AsyncSession, scope: str, key: str | None, request: BaseModel, now: datetime
) -> JSONResponse | None:
    if key is None:
        return None
    payload = request.model_dump(mode="json")
    stored = await idempotency.claim(session, scope, key, idempotency.request_hash(payload), now)
    if stored is None:
        return None
    await session.rollback()
    status, body = stored
    return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})


@ledger.post(
    "/cooperatives/{cooperative_id}/movements",
    response_model=schemas.MovementOut,
    status_code=201,
    summary="Record one movement (receipt, sale, adjustment, transfer in/out, spoilage)",
    responses={
        **ERRORS,
        409: {"description": "insufficient_stock, duplicate_reference or idempotency_key_reused"},
    },
)
async def post_movement(
    cooperative_id: CooperativeId,
    data: schemas.MovementIn,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    coop = await writable_cooperative(session, principal, cooperative_id)
    now = _now()
    scope = f"movement:{coop.id}"
    replay = await _replay(session, scope, idempotency_key, data, now)
    if replay is not None:
        return replay
    [recorded] = await record_movements(
        session, outbox, [MovementOrder(coop, _draft(data, now))], recorded_by=_who(principal), now=now
    )
    body = schemas.MovementOut.model_validate(recorded).model_dump(mode="json")
    if idempotency_key is not None:
        await idempotency.remember(session, scope, idempotency_key, 201, body)
    await session.commit()
    return JSONResponse(body, status_code=201)


@ledger.post(
    "/cooperatives/{cooperative_id}/movements/batch",
    response_model=schemas.MovementBatchOut,
    status_code=201,
    summary="Record up to 1,000 movements in order, all or none (a shop's end-of-day sync)",
    responses={
        **ERRORS,
        409: {
            "model": schemas.ErrorOut,
            "description": "insufficient_stock or duplicate_reference: nothing applied",
        },
    },
)
async def post_movement_batch(
    cooperative_id: CooperativeId,
    data: schemas.MovementBatchIn,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    coop = await writable_cooperative(session, principal, cooperative_id)
    now = _now()
    scope = f"batch:{coop.id}"
    replay = await _replay(session, scope, idempotency_key, data, now)
    if replay is not None:
        return replay
    batch_id = str(uuid.uuid4())
    orders = [MovementOrder(coop, _draft(item, now), index=i) for i, item in enumerate(data.movements)]
    recorded = await record_movements(
        session, outbox, orders, recorded_by=_who(principal), batch_id=batch_id, now=now
    )
    body = schemas.MovementBatchOut(
        batch_id=batch_id,
        count=len(recorded),
        movements=[schemas.MovementOut.model_validate(r) for r in recorded],
    ).model_dump(mode="json")
    if idempotency_key is not None:
        await idempotency.remember(session, scope, idempotency_key, 201, body)
    await session.commit()
    # orjson: a batch answers up to a thousand movements, and Starlette's stdlib encoding of them
    # showed in the ingest's profile.
    return Response(orjson.dumps(body), status_code=201, media_type="application/json")


@ledger.get(
    "/cooperatives/{cooperative_id}/movements",
    response_model=schemas.MovementPage,
    summary="The cooperative's ledger, newest first, paged and filtered",
    responses=ERRORS,
)
async def list_movements(
    cooperative_id: CooperativeId,
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    commodity: CommodityQuery = None,
    kind: Annotated[
        Literal["receipt", "sale", "adjustment", "transfer_in", "transfer_out", "spoilage"] | None, Query()
    ] = None,
    since: Annotated[schemas.IsoDateTime | None, Query(description="occurred_at at or after")] = None,
    until: Annotated[schemas.IsoDateTime | None, Query(description="occurred_at before")] = None,
    reference: Annotated[str | None, Query(max_length=100, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    coop = await readable_cooperative(session, principal, cooperative_id)
    m, c = orm.movements, orm.commodities
    conditions = [m.c.cooperative_id == coop.id]
    if commodity:
        conditions.append(m.c.commodity == commodity)
    if kind:
        conditions.append(m.c.kind == kind)
    if since:
        conditions.append(m.c.occurred_at >= as_utc(since))
    if until:
        conditions.append(m.c.occurred_at < as_utc(until))
    if reference:
        conditions.append(m.c.reference == reference)
    total = (await session.execute(select(func.count()).select_from(m).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(m, c.c.unit)
        .join(c, c.c.code == m.c.commodity)
        .where(*conditions)
        .order_by(m.c.occurred_at.desc(), m.c.seq.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    return {"items": [movement_out(r, r.unit) for r in rows], "total": int(total)}


@ledger.get(
    "/cooperatives/{cooperative_id}/movements/{movement_id}",
    response_model=schemas.MovementOut,
    responses=ERRORS,
)
async def get_movement(
    cooperative_id: CooperativeId,
    movement_id: Annotated[str, Path(max_length=64, pattern=schemas.NO_CONTROL)],
    session: ReadSessionDep,
    principal: CurrentPrincipal,
) -> Any:
    coop = await readable_cooperative(session, principal, cooperative_id)
    m, c = orm.movements, orm.commodities
    row = (
        await session.execute(
            select(m, c.c.unit)
            .join(c, c.c.code == m.c.commodity)
            .where(m.c.cooperative_id == coop.id, m.c.id == movement_id)
        )
    ).first()
    if row is None:
        raise not_found("movement")
    return movement_out(row, row.unit)


# --- stock ------------------------------------------------------------------------------------------


def _stock_line(
    state: StockState, info: repository.CommodityInfo, sold: Decimal, now: datetime, status: str
) -> dict[str, Any]:
    ceiling = info.ceiling_at(now)
    cover = days_of_cover(state.on_hand, sold)
    return {
        "commodity": info.code,
        "name": info.name,
        "unit": info.unit,
        "on_hand": state.on_hand,
        "last_sale_at": state.last_sale_at,
        "avg_daily_sales": average_daily_sales(sold).quantize(Decimal("0.001")),
        "days_of_cover": cover.quantize(Decimal("0.01")) if cover is not None else None,
        "status": status,
        "unmoved_since": state.stall_clock_at,
        "days_since_sale": days_unmoved(state.stall_clock_at, now) if state.stall_clock_at else None,
        "unit_cost": state.unit_cost,
        "value": state.stock_value,
        "price_ceiling": ceiling.price_ceiling if ceiling else None,
        "episode": state.condition,
        "episode_since": state.condition_since,
    }


def _quantity_as_number(value: Any) -> float:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def stock_lines_body(lines: list[dict[str, Any]]) -> bytes:
    """Stock lines written as `schemas.StockLine` writes them (quantities as JSON numbers, UTC times
    ending in Z), without validating lines this module has just built: on the platform's most read page
    that validation and serialization cost more than the query."""
    return orjson.dumps(lines, default=_quantity_as_number, option=orjson.OPT_UTC_Z)


def stock_lines_json(lines: list[dict[str, Any]]) -> Response:
    return Response(stock_lines_body(lines), media_type="application/json")


# The most read page; repeated reads are answered by `inventory.entrypoints.fast_stock` from the copy
# this route stores.
STOCK_PAGE = "/cooperatives/{cooperative_id}/stock"


@stock.get(
    STOCK_PAGE,
    response_model=list[schemas.StockLine],
    summary="Stock on hand per commodity, with last sale, 28-day average, days of cover and status now",
    responses=ERRORS,
)
async def cooperative_stock(
    request: Request,
    cooperative_id: CooperativeId,
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    commodity: CommodityQuery = None,
    status: Annotated[Status | None, Query()] = None,
) -> Any:
    cache: StockReadCache = request.app.state.stock_cache
    ticket = cache.ticket()
    now = _now()
    coop, states, sold, last_day = await stock_of(session, cooperative_id, now, commodity)
    if coop is None or principal.role == "supplier":
        raise not_found("cooperative")
    ensure_can_read(principal, coop.id, coop.kecamatan_code)
    catalogue = await repository.cached_catalogue(session)
    if commodity is None:  # all of its items: what `fast_stock` answers from
        cache.store(ticket, coop, states, sold, last_day)
    return stock_lines_json(stock_lines(states, catalogue, sold, now, status))


async def stock_of(
    session: AsyncSession, cooperative_id: str, now: datetime, commodity: str | None = None
) -> tuple[KnownCooperative | None, list[StockState], dict[tuple[str, str], Decimal], date]:
    """What the stock page is computed from: the cooperative (None if unknown), its items (or the one
    commodity's) and their sales over the 28-day window ending on the last day returned."""
    first_day, last_day = sales_window(now)
    coop, states = await repository.cooperative_stock(session, cooperative_id, commodity)
    if coop is None:
        return None, [], {}, last_day
    return coop, states, await repository.sold_in_window(session, states, first_day, last_day), last_day


def stock_lines(
    states: Iterable[StockState],
    catalogue: dict[str, repository.CommodityInfo],
    sold: Mapping[tuple[str, str], Decimal],
    now: datetime,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The stock page's lines at `now` (those with this status, when given)."""
    lines = []
    for state in states:
        info = catalogue[state.commodity]
        key = (state.cooperative_id, state.commodity)
        current = status_of(
            classify_stock(state.on_hand, state.stall_clock_at, sold[key], now, info.thresholds)
        )
        if status is None or status == current:
            lines.append(_stock_line(state, info, sold[key], now, current))
    return lines


@stock.get(
    "/cooperatives/{cooperative_id}/valuation",
    response_model=schemas.Valuation,
    summary="What the stock on hand is worth at average cost",
    responses=ERRORS,
)
async def valuation(
    cooperative_id: CooperativeId, session: ReadSessionDep, principal: CurrentPrincipal
) -> Any:
    coop = await readable_cooperative(session, principal, cooperative_id)
    states = await repository.stock_rows(session, coop.id)
    catalogue = await repository.cached_catalogue(session)
    items = [
        {
            "commodity": s.commodity,
            "unit": catalogue[s.commodity].unit,
            "on_hand": s.on_hand,
            "unit_cost": s.unit_cost if s.on_hand > 0 else None,
            "value": s.stock_value,
        }
        for s in states
        if s.on_hand > 0
    ]
    return {"cooperative_id": coop.id, "total_value": sum(i["value"] for i in items), "items": items}


@stock.get(
    "/stock",
    response_model=schemas.CityStockPage,
    summary="Stock lines across cooperatives in scope (officer, admin, service), by announced episode",
    responses=ERRORS,
)
async def city_stock(
    session: ReadSessionDep,
    principal: CityPrincipal,
    page: PageDep,
    episode: Annotated[Episode | None, Query(description="Only items in this announced episode")] = None,
    commodity: CommodityQuery = None,
    kecamatan_code: Annotated[str | None, Query(max_length=20, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    s, k = orm.stock_items, orm.known_cooperatives
    conditions: list[ColumnElement[bool]] = []
    scope = principal.kecamatan_filter()
    if scope is not None:
        conditions.append(k.c.kecamatan_code.in_(scope))
    if kecamatan_code:
        conditions.append(k.c.kecamatan_code == kecamatan_code)
    if episode:
        conditions.append(s.c.condition == episode)
    if commodity:
        conditions.append(s.c.commodity == commodity)
    base = (
        select(s, k.c.kelurahan_code, k.c.kecamatan_code)
        .join(k, k.c.id == s.c.cooperative_id)
        .where(*conditions)
    )
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = list(
        await session.execute(
            base.order_by(s.c.condition_since.desc().nulls_last(), s.c.cooperative_id, s.c.commodity)
            .limit(page.limit)
            .offset(page.offset)
        )
    )
    now = _now()
    catalogue = await repository.cached_catalogue(session)
    first_day, last_day = sales_window(now)
    states = [repository.state_from_row(r) for r in rows]
    sold = await repository.sold_in_window(session, states, first_day, last_day)
    items = []
    for r, state in zip(rows, states, strict=True):
        key = (r.cooperative_id, r.commodity)
        line = _stock_line(state, catalogue[r.commodity], sold[key], now, status_of(state.condition))
        items.append(
            {
                **line,
                "cooperative_id": r.cooperative_id,
                "kelurahan_code": r.kelurahan_code,
                "kecamatan_code": r.kecamatan_code,
            }
        )
    return {"items": items, "total": int(total)}


# --- detection --------------------------------------------------------------------------------------


@detection.post(
    "/detections/run",
    response_model=schemas.DetectionRunOut,
    summary="Run detection now (officer, admin, service): counts of what it found and announced",
    responses=ERRORS,
)
async def run_detection_now(
    request: Request,
    principal: DetectionPrincipal,
    data: Annotated[schemas.DetectionRunIn | None, Body()] = None,
) -> Any:
    app = request.app
    result = await run_detection(
        app.state.db,
        app.state.outbox,
        as_of=data.as_of if data else None,
        trigger="api",
        kecamatan_codes=principal.kecamatan_filter(),
        requested_by=_who(principal),
        wait=True,
        local_lock=app.state.scan_lock,
    )
    assert result is not None  # a waiting run always runs
    return result


@detection.get(
    "/detections",
    response_model=list[schemas.DetectionRunRecord],
    summary="Recent detection runs, newest first",
    responses=ERRORS,
)
async def list_detection_runs(session: ReadSessionDep, _: DetectionPrincipal, page: PageDep) -> Any:
    d = orm.detection_runs
    rows = await session.execute(select(d).order_by(d.c.id.desc()).limit(page.limit).offset(page.offset))
    return [
        {**dict(r._mapping), "as_of": repository.aware(r.as_of), "started_at": repository.aware(r.started_at)}
        for r in rows
    ]


ROUTERS = [commodities, ledger, stock, detection]
