"""The inventory's HTTP routes: each parses the request, builds a command (or a query's filter), calls
one use case and shapes its answer. Writes run in the route's unit of work (`UowDep`), reads in a read
session (`ReadSessionDep`).

Access: a coop_manager sees and changes only its own cooperative (404 reading another's, 403 writing
it); officers act within their kecamatan (all of the city when they have none); admins everywhere;
suppliers see the catalogue only; services (machine to machine) read, record and run detection.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from kkmp_shared import clock
from kkmp_shared.app import ReadSessionDep, UowDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal, Principal, require_roles
from kkmp_shared.bootstrap import Platform
from kkmp_shared.http import ERRORS, IdPath
from kkmp_shared.pagination import PageDep
from pydantic import BaseModel

from inventory.adapters.queries import CityStockFilter, MovementFilter
from inventory.adapters.stock_cache import StockReadCache
from inventory.domain.ledger import MovementDraft, utc
from inventory.entrypoints import schemas
from inventory.service_layer import catalogue as catalogue_service
from inventory.service_layer import commands, views
from inventory.service_layer.detection import run_detection
from inventory.service_layer.idempotency import request_hash
from inventory.service_layer.movements import Answer, Recorded, record_movements

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


# The dependencies bootstrap built (`state=` of create_service_app). Async: a plain `def` dependency
# would run in a worker thread.
async def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def _scan_lock(request: Request) -> asyncio.Lock:
    lock: asyncio.Lock = request.app.state.scan_lock
    return lock


PlatformDep = Annotated[Platform, Depends(_platform)]
ScanLockDep = Annotated[asyncio.Lock, Depends(_scan_lock)]


# --- commodities ------------------------------------------------------------------------------------


@commodities.get("/commodities", response_model=list[schemas.CommodityOut], summary="The commodity catalogue")
async def list_commodities(
    session: ReadSessionDep, _: CurrentPrincipal, include_inactive: bool = False
) -> Any:
    now = _now()
    catalogue = await catalogue_service.catalogue(session)
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
async def create_commodity(data: schemas.CommodityIn, uow: UowDep, principal: AdminPrincipal) -> Any:
    command = commands.AddCommodity(**data.model_dump(), recorded_by=_who(principal))
    info = await catalogue_service.add_commodity(uow, command)
    return catalogue_service.commodity_out(info, _now())


@commodities.patch(
    "/commodities/{code}",
    response_model=schemas.CommodityOut,
    summary="Change a commodity's name, thresholds or ceiling (admin); a ceiling change keeps the old one",
    responses=ERRORS,
)
async def update_commodity(
    code: CommodityPath, data: schemas.CommodityUpdate, uow: UowDep, principal: AdminPrincipal
) -> Any:
    command = commands.ChangeCommodity(code, data.model_dump(exclude_unset=True), recorded_by=_who(principal))
    info = await catalogue_service.change_commodity(uow, command)
    return catalogue_service.commodity_out(info, _now())


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
    code: CommodityPath, data: schemas.CeilingIn, uow: UowDep, principal: AdminPrincipal
) -> Any:
    command = commands.SetCeiling(code, **data.model_dump(), recorded_by=_who(principal))
    info = await catalogue_service.set_ceiling(uow, command)
    return catalogue_service.commodity_out(info, _now())


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


def _idempotency(key: str | None, request: BaseModel) -> commands.IdempotencyKey | None:
    if key is None:
        return None
    return commands.IdempotencyKey(key, request_hash(request.model_dump(mode="json")))


def _replayed(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers={"Idempotent-Replayed": "true"})


def _movement_body(recorded: Recorded) -> Any:
    [movement] = recorded.movements
    return schemas.MovementOut.model_validate(movement).model_dump(mode="json")


def _batch_body(recorded: Recorded) -> Any:
    assert recorded.batch_id is not None
    return schemas.MovementBatchOut(
        batch_id=recorded.batch_id,
        count=len(recorded.movements),
        movements=[schemas.MovementOut.model_validate(r) for r in recorded.movements],
    ).model_dump(mode="json")


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
    uow: UowDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    now = _now()
    command = commands.RecordMovements(
        cooperative_id,
        [_draft(data, now)],
        recorded_by=_who(principal),
        now=now,
        idempotency=_idempotency(idempotency_key, data),
    )
    answer = await record_movements(uow, principal, command, present=_movement_body)
    if answer.replayed:
        return _replayed(answer)
    return JSONResponse(answer.body, status_code=answer.status)


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
    uow: UowDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    now = _now()
    command = commands.RecordMovements(
        cooperative_id,
        [_draft(item, now) for item in data.movements],
        recorded_by=_who(principal),
        now=now,
        batch=True,
        idempotency=_idempotency(idempotency_key, data),
    )
    answer = await record_movements(uow, principal, command, present=_batch_body)
    if answer.replayed:
        return _replayed(answer)
    # orjson: a batch answers up to a thousand movements, and Starlette's stdlib encoding of them
    # showed in the ingest's profile.
    return Response(orjson.dumps(answer.body), status_code=answer.status, media_type="application/json")


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
    where = MovementFilter(
        cooperative_id,
        commodity=commodity,
        kind=kind,
        since=utc(since) if since else None,
        until=utc(until) if until else None,
        reference=reference,
    )
    return await views.movements_page(session, principal, where, page.limit, page.offset)


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
    return await views.movement(session, principal, cooperative_id, movement_id)


# --- stock ------------------------------------------------------------------------------------------


def _quantity_as_number(value: Any) -> float:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def stock_lines_body(lines: list[dict[str, Any]]) -> bytes:
    """Stock lines written as `schemas.StockLine` writes them (quantities as JSON numbers, UTC times
    ending in Z), without validating lines `views.stock_lines` has just built: on the platform's most
    read page that validation and serialization cost more than the query."""
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
    # The cache straight from app.state: the most read route takes no dependency it can do without.
    cache: StockReadCache = request.app.state.stock_cache
    lines = await views.stock_page(session, cache, principal, cooperative_id, _now(), commodity, status)
    return stock_lines_json(lines)


@stock.get(
    "/cooperatives/{cooperative_id}/valuation",
    response_model=schemas.Valuation,
    summary="What the stock on hand is worth at average cost",
    responses=ERRORS,
)
async def valuation(
    cooperative_id: CooperativeId, session: ReadSessionDep, principal: CurrentPrincipal
) -> Any:
    return await views.valuation(session, principal, cooperative_id)


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
    where = CityStockFilter(
        principal.kecamatan_filter(), kecamatan_code=kecamatan_code, episode=episode, commodity=commodity
    )
    return await views.city_stock(session, where, page.limit, page.offset, _now())


# --- detection --------------------------------------------------------------------------------------


@detection.post(
    "/detections/run",
    response_model=schemas.DetectionRunOut,
    summary="Run detection now (officer, admin, service): counts of what it found and announced",
    responses=ERRORS,
)
async def run_detection_now(
    principal: DetectionPrincipal,
    platform: PlatformDep,
    scan_lock: ScanLockDep,
    data: Annotated[schemas.DetectionRunIn | None, Body()] = None,
) -> Any:
    command = commands.RunDetection(
        as_of=data.as_of if data else None,
        trigger="api",
        kecamatan_codes=principal.kecamatan_filter(),
        requested_by=_who(principal),
        wait=True,
    )
    result = await run_detection(platform, command, scan_lock=scan_lock)
    assert result is not None  # a waiting run always runs
    return result


@detection.get(
    "/detections",
    response_model=list[schemas.DetectionRunRecord],
    summary="Recent detection runs, newest first",
    responses=ERRORS,
)
async def list_detection_runs(session: ReadSessionDep, _: DetectionPrincipal, page: PageDep) -> Any:
    return await views.detection_runs(session, page.limit, page.offset)


ROUTERS = [commodities, ledger, stock, detection]
