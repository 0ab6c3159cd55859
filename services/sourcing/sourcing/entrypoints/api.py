"""Sourcing's HTTP routes: thin adapters over the service layer. Each request is one transaction:
the route commits once the use case has staged its rows and events, so a refused request leaves
nothing behind.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from kkmp_shared.app import SessionDep
from kkmp_shared.auth import CurrentPrincipal
from kkmp_shared.http import ERRORS, FilterQuery, IdPath
from kkmp_shared.pagination import PageDep

from sourcing.entrypoints import schemas
from sourcing.service_layer import needs as need_cases
from sourcing.service_layer import orders as order_cases
from sourcing.service_layer import redistribution as redistribution_cases
from sourcing.service_layer import suppliers as supplier_cases
from sourcing.service_layer.common import Context


def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(_context)]
# Every route documents the error format with the statuses it may answer (the contract's list).
# Ids in the path: a control character (NUL above all, which PostgreSQL cannot even compare) is bad
# input (422); any other unknown id is a 404.

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
    data: schemas.SupplierCreate, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    supplier_id = await supplier_cases.create_supplier(session, ctx, principal, data)
    await session.commit()
    return await supplier_cases.get_supplier(session, ctx, principal, supplier_id)


@suppliers.post(
    "/suppliers/batch",
    response_model=schemas.BatchCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Register up to 500 suppliers at once, all or none (admin, officer)",
)
async def create_suppliers(
    data: schemas.SupplierBatch, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    ids = await supplier_cases.create_batch(session, ctx, principal, data)
    await session.commit()
    return {"created": len(ids), "ids": ids}


@suppliers.get("/suppliers", response_model=schemas.SupplierList, summary="Suppliers, with offers and record")
async def list_suppliers(
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    page: PageDep,
    commodity: FilterQuery = None,
    kecamatan_code: FilterQuery = None,
    kind: FilterQuery = None,
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
    supplier_id: IdPath, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    return await supplier_cases.get_supplier(session, ctx, principal, supplier_id)


@suppliers.patch(
    "/suppliers/{supplier_id}", response_model=schemas.SupplierOut, summary="Change a supplier (staff)"
)
async def patch_supplier(
    supplier_id: IdPath,
    data: schemas.SupplierUpdate,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
) -> Any:
    await supplier_cases.update_supplier(session, ctx, principal, supplier_id, data)
    await session.commit()
    return await supplier_cases.get_supplier(session, ctx, principal, supplier_id)


@suppliers.put(
    "/suppliers/{supplier_id}/offers",
    response_model=schemas.SupplierOut,
    summary="Replace a supplier's offers (staff, or the supplier itself)",
)
async def put_offers(
    supplier_id: IdPath,
    data: schemas.OffersIn,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
) -> Any:
    await supplier_cases.replace_offers(session, ctx, principal, supplier_id, data)
    await session.commit()
    return await supplier_cases.get_supplier(session, ctx, principal, supplier_id)


# --- needs --------------------------------------------------------------------------------------


@needs.post(
    "/needs",
    response_model=schemas.NeedDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Post a need (kebutuhan/kendala); a supply need is matched to suppliers at once",
)
async def submit_need(
    data: schemas.NeedCreate, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    need_id = await need_cases.submit_need(session, ctx, principal, data)
    await session.commit()
    return await need_cases.need_detail(session, principal, need_id)


@needs.post(
    "/needs/batch",
    response_model=schemas.BatchCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Post up to 500 needs at once, all or none",
)
async def submit_needs(
    data: schemas.NeedBatch, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    ids = [await need_cases.submit_need(session, ctx, principal, item) for item in data.needs]
    await session.commit()
    return {"created": len(ids), "ids": ids}


@needs.get("/needs", response_model=schemas.NeedList, summary="Needs in the caller's scope, newest first")
async def list_needs(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    status_: Annotated[
        Literal["open", "acknowledged", "in_progress", "resolved", "rejected"] | None, Query(alias="status")
    ] = None,
    cooperative_id: FilterQuery = None,
    kind: Annotated[Literal["supply", "capital", "training", "other"] | None, Query()] = None,
    commodity: FilterQuery = None,
    kecamatan_code: FilterQuery = None,
) -> Any:
    return await need_cases.list_needs(
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
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    kecamatan_code: FilterQuery = None,
    kind: Annotated[Literal["supply", "capital", "training", "other"] | None, Query()] = None,
    since: schemas.IsoDateTime | None = None,
    until: schemas.IsoDateTime | None = None,
    group_by: Annotated[Literal["kecamatan"] | None, Query()] = None,
) -> Any:
    return await need_cases.stats(
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
    session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal, commodity: FilterQuery = None
) -> Any:
    return await need_cases.pooling_candidates(session, ctx, principal, commodity)


@needs.get(
    "/needs/{need_id}", response_model=schemas.NeedDetail, summary="A need, its ranked suppliers, history"
)
async def get_need(need_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await need_cases.need_detail(session, principal, need_id)


@needs.post(
    "/needs/{need_id}/status",
    response_model=schemas.NeedDetail,
    summary="Move a need along open → acknowledged → in_progress → resolved | rejected (officer, admin)",
)
async def change_need_status(
    need_id: IdPath,
    data: schemas.NeedStatusIn,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
) -> Any:
    await need_cases.change_status(
        session,
        ctx,
        principal,
        need_id,
        data.status,
        note=data.note,
        assigned_to=data.assigned_to,
        changed_at=data.changed_at,
    )
    await session.commit()
    return await need_cases.need_detail(session, principal, need_id)


@needs.post(
    "/needs/{need_id}/match", response_model=schemas.NeedDetail, summary="Rank suppliers again (staff)"
)
async def rematch_need(
    need_id: IdPath, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    await need_cases.rematch(session, ctx, principal, need_id)
    await session.commit()
    return await need_cases.need_detail(session, principal, need_id)


@needs.get("/needs/{need_id}/comments", response_model=list[schemas.CommentOut])
async def list_comments(need_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    await need_cases.readable_need(session, principal, need_id)
    return await need_cases.list_comments(session, need_id)


@needs.post(
    "/needs/{need_id}/comments",
    response_model=schemas.CommentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Comment on a need (its cooperative, staff in scope, a supplier it is addressed to)",
)
async def add_comment(
    need_id: IdPath, data: schemas.CommentIn, session: SessionDep, principal: CurrentPrincipal
) -> Any:
    comment = await need_cases.add_comment(session, principal, need_id, data.text)
    await session.commit()
    return comment


# --- redistribution -----------------------------------------------------------------------------


@redistributions.get(
    "/redistributions",
    response_model=schemas.RedistributionList,
    summary="Proposals to move stalled stock to cooperatives that need it, newest first",
)
async def list_redistributions(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    commodity: FilterQuery = None,
    status_: Annotated[
        Literal["proposed", "accepted", "declined", "withdrawn"] | None, Query(alias="status")
    ] = None,
    cooperative_id: FilterQuery = None,
) -> Any:
    return await redistribution_cases.list_proposals(
        session,
        principal,
        commodity=commodity,
        status=status_,
        cooperative_id=cooperative_id,
        limit=page.limit,
        offset=page.offset,
    )


@redistributions.get("/redistributions/{proposal_id}", response_model=schemas.RedistributionOut)
async def get_redistribution(proposal_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await redistribution_cases.get_proposal(session, principal, proposal_id)


@redistributions.post(
    "/redistributions/{proposal_id}/accept",
    response_model=schemas.RedistributionOut,
    summary="Accept for your side (managers of both cooperatives, or an officer for the sides in scope)",
)
async def accept_redistribution(
    proposal_id: IdPath,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    data: schemas.DecisionIn | None = None,
) -> Any:
    result = await redistribution_cases.decide(
        session, ctx, principal, proposal_id, "accept", data or schemas.DecisionIn()
    )
    await session.commit()
    return result


@redistributions.post(
    "/redistributions/{proposal_id}/decline",
    response_model=schemas.RedistributionOut,
    summary="Decline (either side ends the proposal; the stock is offered to the next cooperative)",
)
async def decline_redistribution(
    proposal_id: IdPath,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    data: schemas.DecisionIn | None = None,
) -> Any:
    result = await redistribution_cases.decide(
        session, ctx, principal, proposal_id, "decline", data or schemas.DecisionIn()
    )
    await session.commit()
    return result


@redistributions.get(
    "/stalled-items",
    response_model=schemas.StalledItemList,
    summary="Stalled stock as sourcing knows it: proposed, redistributed, or no taker (with suggestions)",
)
async def list_stalled_items(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    status_: Annotated[
        Literal["no_taker", "proposed", "redistributed", "recovered"] | None, Query(alias="status")
    ] = None,
    commodity: FilterQuery = None,
    cooperative_id: FilterQuery = None,
) -> Any:
    return await redistribution_cases.list_stalled(
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
    data: schemas.OrderCreate, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    order_id = await order_cases.place_order(session, ctx, principal, data)
    await session.commit()
    return await order_cases.get_order(session, principal, order_id)


@orders.post(
    "/orders/pooled",
    response_model=schemas.OrderOut,
    status_code=status.HTTP_201_CREATED,
    summary="One order for several cooperatives' needs of one commodity (officer, admin)",
)
async def place_pooled_order(
    data: schemas.PooledOrderCreate, session: SessionDep, ctx: ContextDep, principal: CurrentPrincipal
) -> Any:
    order_id = await order_cases.place_pooled_order(session, ctx, principal, data)
    await session.commit()
    return await order_cases.get_order(session, principal, order_id)


@orders.get("/orders", response_model=schemas.OrderList, summary="Orders in the caller's scope, newest first")
async def list_orders(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    need_id: FilterQuery = None,
    status_: Annotated[
        Literal["placed", "confirmed", "partially_delivered", "delivered", "cancelled"] | None,
        Query(alias="status"),
    ] = None,
    supplier_id: FilterQuery = None,
    cooperative_id: FilterQuery = None,
) -> Any:
    return await order_cases.list_orders(
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
async def get_order(order_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await order_cases.get_order(session, principal, order_id)


@orders.post(
    "/orders/{order_id}/confirm",
    response_model=schemas.OrderOut,
    summary="The supplier confirms the order (or staff on its behalf)",
)
async def confirm_order(
    order_id: IdPath, session: SessionDep, principal: CurrentPrincipal, data: schemas.ConfirmIn | None = None
) -> Any:
    await order_cases.confirm(session, principal, order_id, data or schemas.ConfirmIn())
    await session.commit()
    return await order_cases.get_order(session, principal, order_id)


@orders.post(
    "/orders/{order_id}/deliver",
    response_model=schemas.OrderOut,
    summary="Record a delivery, whole or partial; one order.delivered.v1 per receiving cooperative",
)
async def deliver_order(
    order_id: IdPath,
    session: SessionDep,
    ctx: ContextDep,
    principal: CurrentPrincipal,
    data: schemas.DeliverIn | None = None,
) -> Any:
    await order_cases.deliver(session, ctx, principal, order_id, data or schemas.DeliverIn())
    await session.commit()
    return await order_cases.get_order(session, principal, order_id)


@orders.post(
    "/orders/{order_id}/cancel",
    response_model=schemas.OrderOut,
    summary="Cancel an open order (staff; the supplier may decline one it has not confirmed)",
)
async def cancel_order(
    order_id: IdPath, session: SessionDep, principal: CurrentPrincipal, data: schemas.CancelIn | None = None
) -> Any:
    await order_cases.cancel(session, principal, order_id, data or schemas.CancelIn())
    await session.commit()
    return await order_cases.get_order(session, principal, order_id)


ROUTERS = [suppliers, needs, redistributions, orders]
