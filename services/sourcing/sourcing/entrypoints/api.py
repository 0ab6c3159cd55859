"""Sourcing's HTTP routes: thin adapters over the service layer. A write is one unit of work (`UowDep`),
committed after the route answers and before the answer is sent, so a refused request leaves nothing
behind; a read uses a read session.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from kkmp_shared.app import ReadSessionDep, UowDep
from kkmp_shared.auth import CurrentPrincipal
from kkmp_shared.pagination import PageDep

from sourcing.entrypoints import requests as to_command
from sourcing.entrypoints import schemas
from sourcing.service_layer import fulfilment, need_views, order_views, proposals, redistribution_views
from sourcing.service_layer import needs as need_cases
from sourcing.service_layer import orders as order_cases
from sourcing.service_layer import suppliers as supplier_cases
from sourcing.service_layer.common import Context


def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(_context)]
# Every route documents the error format with the statuses it may answer (the contract's list).
ERRORS: dict[int | str, dict[str, Any]] = schemas.error_responses(*schemas.COMMON_ERRORS)
Code = Annotated[str | None, Query(max_length=64, pattern=schemas.NO_CONTROL)]
# Ids in the path: a control character (NUL above all, which PostgreSQL cannot even compare) is bad
# input (422); any other unknown id is a 404.
IdPath = Annotated[str, Path(max_length=64, pattern=schemas.NO_CONTROL)]

suppliers = APIRouter(tags=["suppliers"], responses=ERRORS)
needs = APIRouter(tags=["needs"], responses=ERRORS)
redistributions = APIRouter(tags=["redistribution"], responses=ERRORS)
orders = APIRouter(tags=["orders"], responses=ERRORS)


# --- suppliers ----------------------------------------------------------------------------------


@suppliers.post(
    "/suppliers",
    response_model=schemas.SupplierOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a supplier with its offers (admin, officer)",
)
async def create_supplier(
    data: schemas.SupplierCreate, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    supplier_id = await supplier_cases.create_supplier(
        uow, ctx, principal, to_command.register_supplier(data)
    )
    return await supplier_cases.get_supplier(uow.session, ctx, principal, supplier_id)


@suppliers.post(
    "/suppliers/batch",
    response_model=schemas.BatchCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Register up to 500 suppliers at once, all or none (admin, officer)",
)
async def create_suppliers(
    data: schemas.SupplierBatch, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    batch = [to_command.register_supplier(item) for item in data.suppliers]
    ids = await supplier_cases.create_batch(uow, ctx, principal, batch)
    return {"created": len(ids), "ids": ids}


@suppliers.get("/suppliers", response_model=schemas.SupplierList, summary="Suppliers, with offers and record")
async def list_suppliers(
    session: ReadSessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    page: PageDep,
    commodity: Code = None,
    kecamatan_code: Code = None,
    kind: Code = None,
    q: Annotated[str | None, Query(max_length=100, pattern=schemas.NO_CONTROL)] = None,
    active: bool | None = None,
) -> Any:
    return await supplier_cases.list_suppliers(
        session,
        ctx,
        principal,
        commodity=commodity,
        kecamatan_code=kecamatan_code,
        kind=kind,
        q=q,
        active=active,
        limit=page.limit,
        offset=page.offset,
    )


@suppliers.get("/suppliers/{supplier_id}", response_model=schemas.SupplierOut)
async def get_supplier(
    supplier_id: IdPath, session: ReadSessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    return await supplier_cases.get_supplier(session, ctx, principal, supplier_id)


@suppliers.patch(
    "/suppliers/{supplier_id}", response_model=schemas.SupplierOut, summary="Change a supplier (staff)"
)
async def patch_supplier(
    supplier_id: IdPath,
    data: schemas.SupplierUpdate,
    uow: UowDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
) -> Any:
    await supplier_cases.update_supplier(uow, ctx, principal, supplier_id, to_command.change_supplier(data))
    return await supplier_cases.get_supplier(uow.session, ctx, principal, supplier_id)


@suppliers.put(
    "/suppliers/{supplier_id}/offers",
    response_model=schemas.SupplierOut,
    summary="Replace a supplier's offers (staff, or the supplier itself)",
)
async def put_offers(
    supplier_id: IdPath,
    data: schemas.OffersIn,
    uow: UowDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
) -> Any:
    await supplier_cases.replace_offers(uow, ctx, principal, supplier_id, to_command.replace_offers(data))
    return await supplier_cases.get_supplier(uow.session, ctx, principal, supplier_id)


# --- needs --------------------------------------------------------------------------------------


@needs.post(
    "/needs",
    response_model=schemas.NeedDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Post a need (kebutuhan/kendala); a supply need is matched to suppliers at once",
)
async def submit_need(
    data: schemas.NeedCreate, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    need_id = await need_cases.submit_need(uow, ctx, principal, to_command.submit_need(data))
    return await need_views.need_detail(uow.session, principal, need_id)


@needs.post(
    "/needs/batch",
    response_model=schemas.BatchCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Post up to 500 needs at once, all or none",
)
async def submit_needs(
    data: schemas.NeedBatch, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    batch = [to_command.submit_need(item) for item in data.needs]
    ids = await need_cases.submit_needs(uow, ctx, principal, batch)
    return {"created": len(ids), "ids": ids}


@needs.get("/needs", response_model=schemas.NeedList, summary="Needs in the caller's scope, newest first")
async def list_needs(
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    status_: Annotated[
        Literal["open", "acknowledged", "in_progress", "resolved", "rejected"] | None, Query(alias="status")
    ] = None,
    cooperative_id: Code = None,
    kind: Annotated[Literal["supply", "capital", "training", "other"] | None, Query()] = None,
    commodity: Code = None,
    kecamatan_code: Code = None,
) -> Any:
    return await need_views.list_needs(
        session,
        principal,
        status=status_,
        cooperative_id=cooperative_id,
        kind=kind,
        commodity=commodity,
        kecamatan_code=kecamatan_code,
        limit=page.limit,
        offset=page.offset,
    )


@needs.get(
    "/needs/stats",
    response_model=schemas.NeedStats,
    summary="Response-time figures: open needs, hours to answer and to resolve, share answered in 24 h",
)
async def need_stats(
    session: ReadSessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    kecamatan_code: Code = None,
    kind: Annotated[Literal["supply", "capital", "training", "other"] | None, Query()] = None,
    since: schemas.IsoDateTime | None = None,
    until: schemas.IsoDateTime | None = None,
    group_by: Annotated[Literal["kecamatan"] | None, Query()] = None,
) -> Any:
    return await need_views.stats(
        session,
        ctx,
        principal,
        kecamatan_code=kecamatan_code,
        kind=kind,
        since=since,
        until=until,
        by_kecamatan=group_by == "kecamatan",
    )


@needs.get(
    "/needs/pooling",
    response_model=list[schemas.PoolOut],
    summary="Open supply needs that one pooled order could combine, with the price it would reach (staff)",
)
async def pooling(
    session: ReadSessionDep, ctx: ContextDep, principal: CurrentPrincipal, commodity: Code = None
) -> Any:
    return await need_views.pooling_candidates(session, ctx, principal, commodity)


@needs.get(
    "/needs/{need_id}", response_model=schemas.NeedDetail, summary="A need, its ranked suppliers, history"
)
async def get_need(need_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await need_views.need_detail(session, principal, need_id)


@needs.post(
    "/needs/{need_id}/status",
    response_model=schemas.NeedDetail,
    summary="Move a need along open → acknowledged → in_progress → resolved | rejected (officer, admin)",
)
async def change_need_status(
    need_id: IdPath,
    data: schemas.NeedStatusIn,
    uow: UowDep,
    principal: CurrentPrincipal,
) -> Any:
    await need_cases.change_status(
        uow,
        principal,
        need_id,
        data.status,
        note=data.note,
        assigned_to=data.assigned_to,
        changed_at=data.changed_at,
    )
    return await need_views.need_detail(uow.session, principal, need_id)


@needs.post(
    "/needs/{need_id}/match", response_model=schemas.NeedDetail, summary="Rank suppliers again (staff)"
)
async def rematch_need(need_id: IdPath, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal) -> Any:
    await need_cases.rematch(uow, ctx, principal, need_id)
    return await need_views.need_detail(uow.session, principal, need_id)


@needs.get("/needs/{need_id}/comments", response_model=list[schemas.CommentOut])
async def list_comments(need_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await need_views.list_comments(session, principal, need_id)


@needs.post(
    "/needs/{need_id}/comments",
    response_model=schemas.CommentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Comment on a need (its cooperative, staff in scope, a supplier it is addressed to)",
)
async def add_comment(
    need_id: IdPath, data: schemas.CommentIn, uow: UowDep, principal: CurrentPrincipal
) -> Any:
    return await need_cases.add_comment(uow, principal, need_id, data.text)


# --- redistribution -----------------------------------------------------------------------------


@redistributions.get(
    "/redistributions",
    response_model=schemas.RedistributionList,
    summary="Proposals to move stalled stock to cooperatives that need it, newest first",
)
async def list_redistributions(
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    commodity: Code = None,
    status_: Annotated[
        Literal["proposed", "accepted", "declined", "withdrawn"] | None, Query(alias="status")
    ] = None,
    cooperative_id: Code = None,
) -> Any:
    return await redistribution_views.list_proposals(
        session,
        principal,
        commodity=commodity,
        status=status_,
        cooperative_id=cooperative_id,
        limit=page.limit,
        offset=page.offset,
    )


@redistributions.get("/redistributions/{proposal_id}", response_model=schemas.RedistributionOut)
async def get_redistribution(
    proposal_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal
) -> Any:
    return await redistribution_views.get_proposal(session, principal, proposal_id)


@redistributions.post(
    "/redistributions/{proposal_id}/accept",
    response_model=schemas.RedistributionOut,
    summary="Accept for your side (managers of both cooperatives, or an officer for the sides in scope)",
)
async def accept_redistribution(
    proposal_id: IdPath,
    uow: UowDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    data: schemas.DecisionIn | None = None,
) -> Any:
    await proposals.decide(uow, ctx, principal, proposal_id, to_command.answer("accept", data))
    return await redistribution_views.answered_proposal(uow.session, proposal_id)


@redistributions.post(
    "/redistributions/{proposal_id}/decline",
    response_model=schemas.RedistributionOut,
    summary="Decline (either side ends the proposal; the stock is offered to the next cooperative)",
)
async def decline_redistribution(
    proposal_id: IdPath,
    uow: UowDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    data: schemas.DecisionIn | None = None,
) -> Any:
    await proposals.decide(uow, ctx, principal, proposal_id, to_command.answer("decline", data))
    return await redistribution_views.answered_proposal(uow.session, proposal_id)


@redistributions.get(
    "/stalled-items",
    response_model=schemas.StalledItemList,
    summary="Stalled stock as sourcing knows it: proposed, redistributed, or no taker (with suggestions)",
)
async def list_stalled_items(
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    status_: Annotated[
        Literal["no_taker", "proposed", "redistributed", "recovered"] | None, Query(alias="status")
    ] = None,
    commodity: Code = None,
    cooperative_id: Code = None,
) -> Any:
    return await redistribution_views.list_stalled(
        session,
        principal,
        status=status_,
        commodity=commodity,
        cooperative_id=cooperative_id,
        limit=page.limit,
        offset=page.offset,
    )


# --- orders -------------------------------------------------------------------------------------


@orders.post(
    "/orders",
    response_model=schemas.OrderOut,
    status_code=status.HTTP_201_CREATED,
    summary="Order a need from a supplier (officer, admin)",
)
async def place_order(
    data: schemas.OrderCreate, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    order_id = await order_cases.place_order(uow, ctx, principal, to_command.place_order(data))
    return await order_views.get_order(uow.session, principal, order_id)


@orders.post(
    "/orders/pooled",
    response_model=schemas.OrderOut,
    status_code=status.HTTP_201_CREATED,
    summary="One order for several cooperatives' needs of one commodity (officer, admin)",
)
async def place_pooled_order(
    data: schemas.PooledOrderCreate, uow: UowDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    order_id = await order_cases.place_pooled_order(uow, ctx, principal, to_command.place_pooled_order(data))
    return await order_views.get_order(uow.session, principal, order_id)


@orders.get("/orders", response_model=schemas.OrderList, summary="Orders in the caller's scope, newest first")
async def list_orders(
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    need_id: Code = None,
    status_: Annotated[
        Literal["placed", "confirmed", "partially_delivered", "delivered", "cancelled"] | None,
        Query(alias="status"),
    ] = None,
    supplier_id: Code = None,
    cooperative_id: Code = None,
) -> Any:
    return await order_views.list_orders(
        session,
        principal,
        need_id=need_id,
        status=status_,
        supplier_id=supplier_id,
        cooperative_id=cooperative_id,
        limit=page.limit,
        offset=page.offset,
    )


@orders.get("/orders/{order_id}", response_model=schemas.OrderOut)
async def get_order(order_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await order_views.get_order(session, principal, order_id)


@orders.post(
    "/orders/{order_id}/confirm",
    response_model=schemas.OrderOut,
    summary="The supplier confirms the order (or staff on its behalf)",
)
async def confirm_order(
    order_id: IdPath, uow: UowDep, principal: CurrentPrincipal, data: schemas.ConfirmIn | None = None
) -> Any:
    await fulfilment.confirm(uow, principal, order_id, to_command.confirm_order(data))
    return await order_views.get_order(uow.session, principal, order_id)


@orders.post(
    "/orders/{order_id}/deliver",
    response_model=schemas.OrderOut,
    summary="Record a delivery, whole or partial; one order.delivered.v1 per receiving cooperative",
)
async def deliver_order(
    order_id: IdPath,
    uow: UowDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    data: schemas.DeliverIn | None = None,
) -> Any:
    await fulfilment.deliver(uow, ctx, principal, order_id, to_command.record_delivery(data))
    return await order_views.get_order(uow.session, principal, order_id)


@orders.post(
    "/orders/{order_id}/cancel",
    response_model=schemas.OrderOut,
    summary="Cancel an open order (staff; the supplier may decline one it has not confirmed)",
)
async def cancel_order(
    order_id: IdPath, uow: UowDep, principal: CurrentPrincipal, data: schemas.CancelIn | None = None
) -> Any:
    await fulfilment.cancel(uow, principal, order_id, to_command.cancel_order(data))
    return await order_views.get_order(uow.session, principal, order_id)


ROUTERS = [suppliers, needs, redistributions, orders]
