"""From request models to the service layer's commands: the only place that knows both."""

from __future__ import annotations

from typing import Literal

from sourcing.domain.matching import PriceTier
from sourcing.entrypoints import schemas
from sourcing.service_layer import commands


def _offer(offer: schemas.OfferIn) -> commands.OfferTerms:
    return commands.OfferTerms(
        commodity=offer.commodity,
        unit_price=offer.unit_price,
        capacity_per_week=offer.capacity_per_week,
        lead_time_days=offer.lead_time_days,
        min_order=offer.min_order,
        price_tiers=tuple(PriceTier(t.min_quantity, t.unit_price) for t in offer.price_tiers),
    )


def register_supplier(data: schemas.SupplierCreate) -> commands.RegisterSupplier:
    return commands.RegisterSupplier(
        name=data.name,
        kind=data.kind,
        contact=data.contact,
        phone=data.phone,
        email=data.email,
        address=data.address,
        service_kecamatan_codes=tuple(data.service_kecamatan_codes),
        lat=data.lat,
        lon=data.lon,
        offers=tuple(_offer(o) for o in data.offers),
    )


def change_supplier(data: schemas.SupplierUpdate) -> commands.ChangeSupplier:
    return commands.ChangeSupplier(changes=data.model_dump(exclude_unset=True))


def replace_offers(data: schemas.OffersIn) -> commands.ReplaceOffers:
    return commands.ReplaceOffers(offers=tuple(_offer(o) for o in data.offers))


def submit_need(data: schemas.NeedCreate) -> commands.SubmitNeed:
    return commands.SubmitNeed(
        cooperative_id=data.cooperative_id,
        kind=data.kind,
        description=data.description,
        commodity=data.commodity,
        quantity=data.quantity,
        amount=data.amount,
        needed_by=data.needed_by,
        submitted_at=data.submitted_at,
    )


def answer(
    decision: Literal["accept", "decline"], data: schemas.DecisionIn | None
) -> commands.AnswerProposal:
    data = data or schemas.DecisionIn()
    return commands.AnswerProposal(decision=decision, side=data.side, note=data.note)


def place_order(data: schemas.OrderCreate) -> commands.PlaceOrder:
    return commands.PlaceOrder(
        need_id=data.need_id,
        supplier_id=data.supplier_id,
        quantity=data.quantity,
        unit_price=data.unit_price,
        note=data.note,
        placed_at=data.placed_at,
    )


def place_pooled_order(data: schemas.PooledOrderCreate) -> commands.PlacePooledOrder:
    return commands.PlacePooledOrder(
        need_ids=tuple(data.need_ids),
        supplier_id=data.supplier_id,
        unit_price=data.unit_price,
        note=data.note,
        placed_at=data.placed_at,
    )


def confirm_order(data: schemas.ConfirmIn | None) -> commands.ConfirmOrder:
    data = data or schemas.ConfirmIn()
    return commands.ConfirmOrder(note=data.note, confirmed_at=data.confirmed_at)


def record_delivery(data: schemas.DeliverIn | None) -> commands.RecordDelivery:
    data = data or schemas.DeliverIn()
    return commands.RecordDelivery(
        quantity=data.quantity,
        allocations=tuple(commands.Allocation(a.cooperative_id, a.quantity) for a in data.allocations or []),
        delivered_at=data.delivered_at,
    )


def cancel_order(data: schemas.CancelIn | None) -> commands.CancelOrder:
    data = data or schemas.CancelIn()
    return commands.CancelOrder(reason=data.reason)
