"""What inventory does with other services' events: a delivered order becomes a receipt, an accepted
redistribution becomes a transfer out of one cooperative and into another.

Each runs in the consumer's unit of work (committed with its inbox row), so a redelivered event has no
second effect; the ledger's unique (cooperative, kind, reference) also absorbs the same delivery or proposal
re-sent under a new event id.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from kkmp_shared import clock
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.events.contracts import OrderDelivered, RedistributionAccepted
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import repository
from inventory.domain.ledger import MovementDraft, rupiah
from inventory.service_layer.movements import MovementOrder, apply_movements

log = logging.getLogger("kkmp.inventory.events")


async def known_or_provisional(
    session: AsyncSession, cooperative_id: str, codes: tuple[str, str] | None
) -> KnownCooperative:
    """The cooperative from the directory; if its registration event has not arrived yet (queues are not
    ordered with each other), a provisional entry from the codes the event carries, which the
    registration then overwrites."""
    known = await repository.directory.get(session, cooperative_id)
    if known is not None:
        return known
    if codes is None:
        # Nothing to place it with: fail, so the message is retried once the registration has arrived.
        raise LookupError(f"cooperative {cooperative_id} is not in the directory")
    kelurahan_code, kecamatan_code = codes
    log.warning(
        "cooperative %s not in the directory yet; adding it provisionally from the event",
        cooperative_id,
        extra={"cooperative_id": cooperative_id},
    )
    await repository.add_provisional_cooperative(session, cooperative_id, kelurahan_code, kecamatan_code)
    known = await repository.directory.get(session, cooperative_id)
    assert known is not None
    return known


async def receive_delivery(uow: UnitOfWork, data: OrderDelivered) -> None:
    """order.delivered.v1 → a receipt of the delivered quantity at the order's unit price."""
    session = uow.session
    if data.quantity <= 0:
        raise ValueError(f"delivery {data.delivery_id} has quantity {data.quantity}")
    coop = await known_or_provisional(
        session, data.cooperative_id, (data.kelurahan_code, data.kecamatan_code)
    )
    if await repository.already_booked(session, coop.id, "receipt", data.delivery_id):
        log.info("delivery %s already received; nothing to do", data.delivery_id)
        return
    draft = MovementDraft(
        commodity=data.commodity,
        kind="receipt",
        quantity=data.quantity,
        occurred_at=data.delivered_at,
        unit_price=data.unit_price,
        reference=data.delivery_id,
        note=f"Order {data.order_id} delivered by supplier {data.supplier_id}",
    )
    await apply_movements(uow, [MovementOrder(coop, draft)], recorded_by="event:order.delivered.v1")


async def transfer_redistribution(uow: UnitOfWork, data: RedistributionAccepted) -> None:
    """redistribution.accepted.v1 → transfer_out at the sender and transfer_in at the receiver, valued at
    the sender's average cost; only what the sender still has moves (and the notes say so)."""
    session = uow.session
    if data.quantity <= 0:
        raise ValueError(f"proposal {data.proposal_id} has quantity {data.quantity}")
    # The event's cooperative fields describe the sending side (the stalled stock's cooperative).
    sender_codes = (
        (data.kelurahan_code, data.kecamatan_code)
        if data.cooperative_id == data.from_cooperative_id
        else None
    )
    sender = await known_or_provisional(session, data.from_cooperative_id, sender_codes)
    receiver = await known_or_provisional(
        session, data.to_cooperative_id, (data.to_kelurahan_code, data.to_kecamatan_code)
    )
    if await repository.already_booked(
        session, sender.id, "transfer_out", data.proposal_id
    ) or await repository.already_booked(session, receiver.id, "transfer_in", data.proposal_id):
        log.info("redistribution %s already recorded; nothing to do", data.proposal_id)
        return
    catalogue = await repository.load_catalogue(session, [data.commodity])
    now = clock.now()
    states = await repository.lock_stock(
        session, [(sender.id, data.commodity), (receiver.id, data.commodity)], now
    )
    available = states[(sender.id, data.commodity)]
    if available.on_hand <= 0:
        log.warning(
            "redistribution %s: %s has no %s left; nothing transferred",
            data.proposal_id,
            sender.id,
            data.commodity,
            extra={"cooperative_id": sender.id},
        )
        return
    quantity = min(data.quantity, available.on_hand)
    unit = catalogue[data.commodity].unit if data.commodity in catalogue else (data.unit or "")
    note = f"Redistribution {data.proposal_id}"
    if quantity < data.quantity:
        note += f": only {quantity} of the {data.quantity} {unit} accepted were on hand, so {quantity} moved"
    # The value leaving the sender at its average cost is the value arriving at the receiver.
    if quantity == available.on_hand:
        value = available.stock_value
    else:
        value = rupiah(Decimal(available.stock_value) * quantity / available.on_hand)
    orders = [
        MovementOrder(
            sender,
            MovementDraft(
                commodity=data.commodity,
                kind="transfer_out",
                quantity=quantity,
                occurred_at=data.accepted_at,
                reference=data.proposal_id,
                note=f"{note} (to {receiver.id})",
            ),
        ),
        MovementOrder(
            receiver,
            MovementDraft(
                commodity=data.commodity,
                kind="transfer_in",
                quantity=quantity,
                occurred_at=data.accepted_at,
                reference=data.proposal_id,
                note=f"{note} (from {sender.id})",
                value_override=value,
            ),
        ),
    ]
    await apply_movements(uow, orders, recorded_by="event:redistribution.accepted.v1", now=now)
