"""Placing orders with suppliers: for one need or a pooled set of needs, within the supplier's capacity
by the date needed, at the price the quantity reaches. What follows an order is in `fulfilment`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import conflict, not_found, unprocessable
from kkmp_shared.events.contracts import OrderPlaced
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import needs as need_rows
from sourcing.adapters import orders as order_rows
from sourcing.domain.matching import capacity_by, due_date, unit_price_for
from sourcing.service_layer import needs as need_cases
from sourcing.service_layer.commands import (
    PlaceOrder,
    PlacePooledOrder,
)
from sourcing.service_layer.common import (
    Context,
    check_backdating,
    check_whole_units,
    local_date,
    new_id,
    require_staff,
    require_staff_for,
)
from sourcing.service_layer.matching import offers_for
from sourcing.service_layer.need_views import remaining_quantity


async def _supplier_and_offer(session: AsyncSession, ctx: Context, supplier_id: str, commodity: str) -> Any:
    supplier = await order_rows.supplier(session, supplier_id)
    if supplier is None:
        raise unprocessable("supplier_id", f"Unknown supplier {supplier_id!r}.", "unknown_supplier")
    if not supplier.active:
        raise conflict("supplier_inactive", f"{supplier.name} is no longer active.")
    offers = [o for o in await offers_for(session, ctx, commodity) if o.supplier_id == supplier_id]
    if not offers:
        raise unprocessable(
            "supplier_id", f"{supplier.name} does not offer {commodity}.", "commodity_not_offered"
        )
    await order_rows.lock_offer(session, supplier_id, commodity)
    return supplier, offers[0]


def _check_capacity(
    offer: Any, quantity: Decimal, needed_by: Any, placed_on: Any, horizon: int, unit: str
) -> None:
    days = (needed_by - placed_on).days if needed_by is not None else horizon
    available = capacity_by(offer.capacity_per_week, offer.lead_time_days, days, offer.committed)
    if quantity > available:
        raise conflict(
            "beyond_capacity",
            f"{offer.supplier_name} can deliver at most {available.normalize():f} {unit} by then "
            f"(capacity {offer.capacity_per_week.normalize():f} {unit}/week, "
            f"lead time {offer.lead_time_days} days, "
            f"{offer.committed.normalize():f} {unit} already on order).",
            {"available": float(available), "requested": float(quantity)},
        )
    if quantity < offer.min_order:
        raise unprocessable(
            "quantity",
            f"{offer.supplier_name}'s minimum order is {offer.min_order.normalize():f} {unit}; "
            "pool this need with others to reach it.",
            "below_minimum_order",
        )


async def _active_supply_need(session: AsyncSession, need_id: str, field: str) -> Any:
    need = await need_rows.get_with_orders(session, need_id)
    if need is None:
        raise not_found("need")
    if need.kind != "supply":
        raise unprocessable(field, "Only a supply need can be ordered.", "not_a_supply_need")
    if need.status in ("resolved", "rejected"):
        raise conflict("need_closed", f"The need is already {need.status}.")
    return need


async def _take_on(uow: UnitOfWork, principal: Principal, need: Any, at: datetime, note: str) -> None:
    """Placing an order is working on the need: an open or acknowledged need moves to in_progress."""
    if need.status in ("open", "acknowledged"):
        await need_cases.change_status(
            uow, principal, need.id, "in_progress", note=note, changed_at=at, check_scope=False
        )


async def place_order(uow: UnitOfWork, ctx: Context, principal: Principal, data: PlaceOrder) -> str:
    session = uow.session
    require_staff(principal)
    need = await _active_supply_need(session, data.need_id, "need_id")
    require_staff_for(principal, [need.kecamatan_code])
    placed_at = check_backdating(principal, "placed_at", data.placed_at, earliest=need.submitted_at)
    supplier, offer = await _supplier_and_offer(session, ctx, data.supplier_id, need.commodity)
    check_whole_units(ctx.reference.commodity(need.commodity), "quantity", data.quantity)
    remaining = remaining_quantity(need)
    if data.quantity > remaining:
        raise conflict(
            "exceeds_need",
            f"Only {remaining.normalize():f} {need.unit} of this need is still to be ordered.",
            {"remaining": float(remaining)},
        )
    placed_on = local_date(placed_at)
    _check_capacity(
        offer, data.quantity, need.needed_by, placed_on, ctx.settings.default_horizon_days, need.unit
    )
    unit_price = data.unit_price or unit_price_for(offer, data.quantity)
    order_id = new_id()
    await order_rows.add(
        session,
        dict(
            id=order_id,
            supplier_id=supplier.id,
            commodity=need.commodity,
            unit=need.unit,
            quantity=data.quantity,
            delivered_quantity=Decimal(0),
            unit_price=unit_price,
            pooled=False,
            status="placed",
            note=data.note,
            lead_time_days=offer.lead_time_days,
            due_on=due_date(need.needed_by, placed_on, offer.lead_time_days),
            placed_at=placed_at,
            placed_by=principal.sub,
        ),
    )
    await _add_line(
        uow,
        order_id,
        need,
        data.quantity,
        supplier.id,
        unit_price,
        placed_at,
        pooled=False,
        total=data.quantity,
    )
    await _take_on(uow, principal, need, placed_at, f"Pesanan ke {supplier.name} ditempatkan.")
    return order_id


async def _add_line(
    uow: UnitOfWork,
    order_id: str,
    need: Any,
    quantity: Decimal,
    supplier_id: str,
    unit_price: int,
    placed_at: datetime,
    *,
    pooled: bool,
    total: Decimal,
) -> None:
    await order_rows.add_line(
        uow.session,
        dict(
            id=new_id(),
            order_id=order_id,
            need_id=need.id,
            cooperative_id=need.cooperative_id,
            kelurahan_code=need.kelurahan_code,
            kecamatan_code=need.kecamatan_code,
            quantity=quantity,
            delivered_quantity=Decimal(0),
        ),
    )
    await uow.publish(
        OrderPlaced(
            cooperative_id=need.cooperative_id,
            kelurahan_code=need.kelurahan_code,
            kecamatan_code=need.kecamatan_code,
            order_id=order_id,
            need_id=need.id,
            supplier_id=supplier_id,
            commodity=need.commodity,
            quantity=quantity,
            unit_price=unit_price,
            placed_at=placed_at,
            pooled=pooled,
            total_quantity=total,
        ),
    )


async def place_pooled_order(
    uow: UnitOfWork, ctx: Context, principal: Principal, data: PlacePooledOrder
) -> str:
    """One order for several cooperatives' open needs of one commodity, at the price the total reaches."""
    session = uow.session
    require_staff(principal)
    if len(set(data.need_ids)) != len(data.need_ids):
        raise unprocessable("need_ids", "A need appears twice in the pool.", "duplicate_need")
    pool = [await _active_supply_need(session, need_id, "need_ids") for need_id in data.need_ids]
    require_staff_for(principal, [n.kecamatan_code for n in pool])
    commodities = {n.commodity for n in pool}
    if len(commodities) != 1:
        raise unprocessable("need_ids", "Pooled needs must all be for one commodity.", "mixed_commodities")
    if len({n.cooperative_id for n in pool}) != len(pool):
        raise unprocessable(
            "need_ids",
            "One need per cooperative in a pool: deliveries are split by cooperative.",
            "duplicate_cooperative",
        )
    commodity = commodities.pop()
    placed_at = check_backdating(
        principal, "placed_at", data.placed_at, earliest=max(n.submitted_at for n in pool)
    )
    supplier, offer = await _supplier_and_offer(session, ctx, data.supplier_id, commodity)
    quantities = {n.id: remaining_quantity(n) for n in pool}
    if empty := [need_id for need_id, q in quantities.items() if q <= 0]:
        raise conflict("exceeds_need", "Some needs are already fully ordered.", {"need_ids": empty})
    total = sum(quantities.values(), Decimal(0))
    placed_on = local_date(placed_at)
    earliest = min((n.needed_by for n in pool if n.needed_by is not None), default=None)
    unit = pool[0].unit
    _check_capacity(offer, total, earliest, placed_on, ctx.settings.default_horizon_days, unit)
    unit_price = data.unit_price or unit_price_for(offer, total)
    order_id = new_id()
    await order_rows.add(
        session,
        dict(
            id=order_id,
            supplier_id=supplier.id,
            commodity=commodity,
            unit=unit,
            quantity=total,
            delivered_quantity=Decimal(0),
            unit_price=unit_price,
            pooled=True,
            status="placed",
            note=data.note,
            lead_time_days=offer.lead_time_days,
            due_on=due_date(earliest, placed_on, offer.lead_time_days),
            placed_at=placed_at,
            placed_by=principal.sub,
        ),
    )
    for need in pool:
        await _add_line(
            uow,
            order_id,
            need,
            quantities[need.id],
            supplier.id,
            unit_price,
            placed_at,
            pooled=True,
            total=total,
        )
        await _take_on(uow, principal, need, placed_at, f"Pesanan gabungan ke {supplier.name} ditempatkan.")
    return order_id
