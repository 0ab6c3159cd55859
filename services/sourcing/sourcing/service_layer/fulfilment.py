"""An order after it is placed: the supplier confirms it, delivers it (in parts if need be), or it is
cancelled. Each delivery to a cooperative is announced as `order.delivered.v1`, which inventory records
as a receipt: no call to inventory. A need whose goods have all arrived is resolved.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import conflict, forbidden, not_found, unprocessable
from kkmp_shared.events.contracts import OrderDelivered
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import needs as need_rows
from sourcing.adapters import orders as order_rows
from sourcing.domain.orders import IllegalOrderChange, LineOwed, check_order_change, split_delivery
from sourcing.service_layer import needs as need_cases
from sourcing.service_layer.commands import CancelOrder, ConfirmOrder, RecordDelivery
from sourcing.service_layer.common import (
    CLOCK_SKEW,
    Context,
    check_backdating,
    check_whole_units,
    dec,
    local_date,
    new_id,
    now,
    require_staff_for,
)


async def _load(session: AsyncSession, order_id: str) -> Any:
    row = await order_rows.get(session, order_id)
    if row is None:
        raise not_found("order")
    return row


async def _may_act(
    session: AsyncSession, principal: Principal, order: Any, *, supplier_may: bool = True
) -> None:
    """The order's own supplier, or an officer over every cooperative in it, or an administrator."""
    if principal.role == "supplier":
        if not supplier_may or principal.supplier_id != order.supplier_id:
            raise forbidden("This order is not addressed to you.")
        return
    require_staff_for(
        principal, [line.kecamatan_code for line in await order_rows.lines_of(session, [order.id])]
    )


def _change(order: Any, new: str) -> None:
    try:
        check_order_change(order.status, new)
    except IllegalOrderChange as exc:
        raise conflict("illegal_order_change", str(exc), {"from": exc.old, "to": exc.new}) from exc


async def confirm(uow: UnitOfWork, principal: Principal, order_id: str, data: ConfirmOrder) -> None:
    session = uow.session
    order = await _load(session, order_id)
    await _may_act(session, principal, order)
    _change(order, "confirmed")
    at = check_backdating(principal, "confirmed_at", data.confirmed_at, earliest=order.placed_at)
    changes = {"status": "confirmed", "confirmed_at": at, "confirmed_by": principal.sub}
    if not await order_rows.change_if_status(
        session, order_id, "placed", {**changes, "note": data.note or order.note}
    ):
        raise conflict("illegal_order_change", "The order changed meanwhile; reload it.")


async def cancel(uow: UnitOfWork, principal: Principal, order_id: str, data: CancelOrder) -> None:
    """Staff cancel an open order; its supplier may decline one it has not confirmed yet."""
    session = uow.session
    order = await _load(session, order_id)
    await _may_act(session, principal, order)
    if principal.role == "supplier" and order.status != "placed":
        raise conflict("illegal_order_change", "A confirmed order can only be cancelled by Dinkopdag.")
    _change(order, "cancelled")
    cancelled = {
        "status": "cancelled",
        "cancelled_at": now(),
        "cancelled_by": principal.sub,
        "cancelled_by_role": principal.role,
        "cancel_reason": data.reason,
    }
    if not await order_rows.change_if_status(session, order_id, order.status, cancelled):
        raise conflict("illegal_order_change", "The order changed meanwhile; reload it.")


async def deliver(
    uow: UnitOfWork, ctx: Context, principal: Principal, order_id: str, data: RecordDelivery
) -> None:
    """Record a (partial) delivery: one receipt per receiving cooperative, announced for inventory."""
    session = uow.session
    order = await _load(session, order_id)
    await _may_act(session, principal, order)
    if order.status == "placed":
        raise conflict("illegal_order_change", "The supplier must confirm the order before delivering it.")
    _change(order, "delivered")
    current = now()
    at = data.delivered_at or current
    if at.tzinfo is None:
        raise unprocessable("delivered_at", "delivered_at must carry a time zone.")
    if at > current + CLOCK_SKEW or at < order.placed_at:
        raise unprocessable("delivered_at", "delivered_at must lie between the order's placement and now.")
    at = min(at, current)
    lines = await order_rows.lines_of(session, [order_id])
    owed = {line.cooperative_id: line for line in lines}
    remaining_total = sum((dec(line.quantity) - dec(line.delivered_quantity) for line in lines), Decimal(0))
    commodity = ctx.commodity(order.commodity, order.unit)
    for i, alloc in enumerate(data.allocations or []):
        check_whole_units(commodity, f"allocations.{i}.quantity", alloc.quantity)
    check_whole_units(commodity, "quantity", data.quantity)
    if data.allocations:
        shares: list[tuple[Any, Decimal]] = []
        for i, alloc in enumerate(data.allocations):
            line = owed.get(alloc.cooperative_id)
            if line is None:
                raise unprocessable(
                    f"allocations.{i}.cooperative_id",
                    "This cooperative is not part of the order.",
                    "not_in_order",
                )
            shares.append((line, alloc.quantity))
        if len({line.id for line, _ in shares}) != len(shares):
            raise unprocessable(
                "allocations", "A cooperative appears twice in the allocations.", "duplicate_cooperative"
            )
        if data.quantity is not None and data.quantity != sum((q for _, q in shares), Decimal(0)):
            raise unprocessable("quantity", "quantity must equal the sum of the allocations.")
    else:
        quantity = data.quantity if data.quantity is not None else remaining_total
        if quantity > remaining_total:
            raise conflict(
                "exceeds_order",
                f"Only {remaining_total.normalize():f} {order.unit} of this order is still to be delivered.",
                {"remaining": float(remaining_total)},
            )
        by_id = {line.id: line for line in lines}
        owed_lines = [
            LineOwed(line.id, line.cooperative_id, dec(line.quantity) - dec(line.delivered_quantity))
            for line in lines
        ]
        shares = [(by_id[line_id], q) for line_id, q in split_delivery(owed_lines, quantity, commodity)]
    if not shares:
        raise conflict("exceeds_order", "Nothing of this order is left to deliver.")
    delivered_total = Decimal(0)
    for line, quantity in shares:
        left = dec(line.quantity) - dec(line.delivered_quantity)
        if quantity > left:
            raise conflict(
                "exceeds_order",
                f"Only {left.normalize():f} {order.unit} is still owed to cooperative {line.cooperative_id}.",
                {"cooperative_id": line.cooperative_id, "remaining": float(left)},
            )
        if not await order_rows.deliver_on_line(session, line.id, quantity):
            raise conflict("exceeds_order", "The order was delivered meanwhile; reload it.")
        complete = quantity == left
        delivery_id = new_id()
        await order_rows.add_delivery(
            session,
            dict(
                id=delivery_id,
                order_id=order_id,
                line_id=line.id,
                cooperative_id=line.cooperative_id,
                quantity=quantity,
                complete=complete,
                delivered_at=at,
                recorded_by=principal.sub,
            ),
        )
        await uow.publish(
            OrderDelivered(
                cooperative_id=line.cooperative_id,
                kelurahan_code=line.kelurahan_code,
                kecamatan_code=line.kecamatan_code,
                order_id=order_id,
                delivery_id=delivery_id,
                need_id=line.need_id,
                supplier_id=order.supplier_id,
                commodity=order.commodity,
                quantity=quantity,
                unit_price=order.unit_price,
                delivered_at=at,
                complete=complete,
            ),
        )
        delivered_total += quantity
        if complete and line.need_id:
            await _resolve_if_delivered(uow, principal, line.need_id, at, order.supplier_name)
    done = dec(order.delivered_quantity) + delivered_total >= dec(order.quantity)
    values: dict[str, Any] = {"status": "delivered" if done else "partially_delivered"}
    if done:
        values["delivered_at"] = at
        values["delivered_on_time"] = local_date(at) <= order.due_on
    await order_rows.record_delivered(session, order_id, delivered_total, values)


async def _resolve_if_delivered(
    uow: UnitOfWork, principal: Principal, need_id: str, at: datetime, supplier: str
) -> None:
    """A supply need being worked on is resolved once everything it asked for has arrived."""
    need = await need_rows.get(uow.session, need_id)
    if need is None or need.status != "in_progress":
        return
    received = await order_rows.received_for_need(uow.session, need_id)
    if dec(received) >= dec(need.quantity):
        at = max(at, need.status_changed_at)
        await need_cases.change_status(
            uow,
            principal,
            need_id,
            "resolved",
            note=f"Diterima lengkap dari {supplier}.",
            changed_at=at,
            check_scope=False,
        )
