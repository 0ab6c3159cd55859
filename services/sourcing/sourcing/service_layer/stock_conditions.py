"""Inventory's stock conditions as sourcing keeps them: low and empty shelves (who needs what) and
stalled items (stok macet: who has too much), each offered onwards as it arrives.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from kkmp_shared.events.contracts import StockLow, StockRecovered, StockStalled, StockStockout
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import members
from sourcing.adapters import redistribution as rows
from sourcing.domain.redistribution import member_uses, stalled_suggestions
from sourcing.service_layer.common import Context, new_id, now
from sourcing.service_layer.proposals import offer_stalled_to, propose, propose_for_item


async def on_stock_low(uow: UnitOfWork, ctx: Context, data: StockLow) -> None:
    await rows.save_condition(
        uow.session,
        {
            "cooperative_id": data.cooperative_id,
            "commodity": data.commodity,
            "condition": "low",
            "kelurahan_code": data.kelurahan_code,
            "kecamatan_code": data.kecamatan_code,
            "on_hand": data.on_hand,
            "avg_daily_sales": data.avg_daily_sales,
            "days_of_cover": data.days_of_cover,
            "detected_at": data.detected_at,
        },
    )
    await offer_stalled_to(uow, ctx, data.commodity, data.cooperative_id)


async def on_stock_stockout(uow: UnitOfWork, ctx: Context, data: StockStockout) -> None:
    # The event has no sales rate; one known from an earlier low-stock episode sizes the need.
    avg = await rows.low_stock_sales_rate(uow.session, data.cooperative_id, data.commodity)
    await rows.save_condition(
        uow.session,
        {
            "cooperative_id": data.cooperative_id,
            "commodity": data.commodity,
            "condition": "stockout",
            "kelurahan_code": data.kelurahan_code,
            "kecamatan_code": data.kecamatan_code,
            "on_hand": Decimal(0),
            "avg_daily_sales": avg,
            "days_of_cover": Decimal(0),
            "detected_at": data.detected_at,
        },
    )
    await offer_stalled_to(uow, ctx, data.commodity, data.cooperative_id)


async def on_stock_recovered(uow: UnitOfWork, data: StockRecovered) -> None:
    session = uow.session
    if data.condition in ("low", "stockout"):
        await rows.clear_condition(session, data.cooperative_id, data.commodity, data.condition)
        return
    item = await rows.active_stalled_item(session, data.cooperative_id, data.commodity)
    if item is None:
        return
    # Offers the remaining stock can no longer cover are withdrawn; the others stand.
    await rows.withdraw_offers_beyond(session, item.id, data.on_hand, now())
    accepted = await rows.count_proposals(session, item.id, ("accepted",))
    await rows.change_stalled_item(
        session,
        item.id,
        {
            "status": "redistributed" if accepted else "recovered",
            "active_key": None,
            "on_hand": data.on_hand,
            "recovered_at": data.detected_at,
            "updated_at": now(),
        },
    )


async def on_stock_stalled(uow: UnitOfWork, ctx: Context, event: CloudEvent, data: StockStalled) -> None:
    """Record the stalled item (one active episode per cooperative and commodity) and propose it."""
    session = uow.session
    commodity = ctx.commodity(data.commodity, data.unit)
    suggestions = [s.__dict__ for s in await _suggestions(session, ctx, data)]
    existing = await rows.active_stalled_item(session, data.cooperative_id, data.commodity)
    values = {
        "kelurahan_code": data.kelurahan_code,
        "kecamatan_code": data.kecamatan_code,
        "unit": data.unit or commodity.unit,
        "on_hand": data.on_hand,
        "unit_cost": data.unit_cost,
        "value": data.value,
        "last_sale_at": data.last_sale_at,
        "days_since_sale": data.days_since_sale,
        "suggestions": suggestions,
        "updated_at": now(),
    }
    if existing is not None:
        # The same episode announced again (another event id): refresh it, never duplicate proposals.
        await rows.change_stalled_item(session, existing.id, values)
        await propose_for_item(uow, ctx, existing.id)
        return
    item = SimpleNamespace(
        id=new_id(), cooperative_id=data.cooperative_id, commodity=data.commodity, status="no_taker", **values
    )
    await rows.add_stalled_item(
        session,
        {
            "event_id": event.id,
            "active_key": rows.active_key(data.cooperative_id, data.commodity),
            "detected_at": data.detected_at,
            **vars(item),
        },
    )
    # A new episode has no offers yet: nothing to read back, and its status follows from what is made
    # here (what refresh_item_status would count).
    if await propose(uow, ctx, item, offered=[]):
        await rows.change_stalled_item(session, item.id, {"status": "proposed"})


async def _suggestions(session: AsyncSession, ctx: Context, data: StockStalled) -> list[Any]:
    commodity = ctx.commodity(data.commodity, data.unit)
    users = [
        (m.sector or ", ".join(m.products or [])) or "UMKM"
        for m in await members.umkm_members_of(session, data.cooperative_id)
        if member_uses(data.commodity, m.sector, m.products or [])
    ]
    last_supplier = await rows.last_supplier_delivering(session, data.cooperative_id, data.commodity)
    return stalled_suggestions(
        commodity, data.on_hand, data.days_since_sale, umkm_users=users, last_supplier=last_supplier
    )
