"""The inventory's consumers against the real broker and database (SQLite and PostgreSQL): a delivered
order becomes one receipt however often it arrives; an accepted redistribution becomes a transfer out
and a transfer in at the sender's average cost."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from inventory.adapters import orm
from inventory_testkit import KECAMATAN, Inventory
from kkmp_shared import clock
from kkmp_shared.events.contracts import OrderDelivered, RedistributionAccepted
from kkmp_testkit.wait import eventually
from sqlalchemy import func, select

pytestmark = pytest.mark.integration


async def movements(inventory: Inventory, coop: str, **params: Any) -> dict[str, Any]:
    response = await inventory.client.get(
        f"/cooperatives/{coop}/movements", params=params, headers=inventory.headers()
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def inbox_count(inventory: Inventory, queue: str, event_ids: list[str]) -> int:
    async with inventory.app.state.db.session() as session:
        inbox = orm.messaging.inbox
        return int(
            (
                await session.execute(
                    select(func.count()).where(inbox.c.consumer == queue, inbox.c.event_id.in_(event_ids))
                )
            ).scalar_one()
        )


def delivery(coop: str, delivery_id: str, quantity: str = "250", **extra: Any) -> OrderDelivered:
    return OrderDelivered(
        cooperative_id=coop,
        kelurahan_code=extra.pop("kelurahan_code", f"{KECAMATAN[0]}.1001"),
        kecamatan_code=extra.pop("kecamatan_code", KECAMATAN[0]),
        order_id=str(uuid.uuid4()),
        delivery_id=delivery_id,
        supplier_id="bulog",
        commodity="beras_sphp",
        quantity=Decimal(quantity),
        unit_price=11800,
        delivered_at=clock.now() - timedelta(hours=3),
        **extra,
    )


async def test_order_delivered_becomes_one_receipt_however_often_it_arrives(inventory: Inventory) -> None:
    coop = await inventory.register()
    delivery_id = str(uuid.uuid4())
    data = delivery(coop, delivery_id)
    first = await inventory.probe.publish(data, source="/sourcing")
    await inventory.probe.publish(data, source="/sourcing", event_id=first.id)  # a redelivery
    again = await inventory.probe.publish(data, source="/sourcing")  # re-sent under a new event id

    async def both_handled() -> bool:
        return await inbox_count(inventory, "inventory.orders", [first.id, again.id]) == 2

    await eventually(both_handled, timeout=15)
    await eventually(lambda: inventory.app.state.runner.stats["duplicates"] >= 1, timeout=15)
    listed = await movements(inventory, coop, reference=delivery_id)
    assert listed["total"] == 1
    receipt = listed["items"][0]
    assert receipt["kind"] == "receipt" and receipt["quantity"] == 250 and receipt["unit_price"] == 11800
    assert receipt["occurred_at"].startswith(data.delivered_at.strftime("%Y-%m-%dT%H:%M"))
    assert (await inventory.stock(coop))["beras_sphp"]["on_hand"] == 250
    await inventory.probe.wait_for("stock.moved.v1", lambda e: e.data.get("reference") == delivery_id)
    await inventory.settle()
    moved = [e for e in inventory.probe.of_type("stock.moved.v1") if e.data.get("reference") == delivery_id]
    assert len(moved) == 1 and moved[0].data["kind"] == "receipt"


async def test_delivery_for_a_cooperative_not_yet_known_is_kept(inventory: Inventory) -> None:
    coop = str(uuid.uuid4())  # its registration has not reached inventory yet
    delivery_id = str(uuid.uuid4())
    await inventory.probe.publish(delivery(coop, delivery_id, quantity="12.5"), source="/sourcing")

    async def booked() -> bool:
        return (await movements(inventory, coop, reference=delivery_id))["total"] == 1

    await eventually(booked, timeout=15)
    line = (await inventory.stock(coop))["beras_sphp"]
    assert line["on_hand"] == 12.5


async def test_redistribution_moves_stock_at_the_senders_average_cost(inventory: Inventory) -> None:
    sender = await inventory.register(KECAMATAN[0])
    receiver = await inventory.register(KECAMATAN[1])
    await inventory.batch(
        sender,
        [
            {"commodity": "minyakita", "kind": "receipt", "quantity": 6, "unit_price": 14000},
            {"commodity": "minyakita", "kind": "receipt", "quantity": 4, "unit_price": 14500},
        ],
    )
    proposal = str(uuid.uuid4())
    accepted = RedistributionAccepted(
        cooperative_id=sender,
        kelurahan_code=f"{KECAMATAN[0]}.1001",
        kecamatan_code=KECAMATAN[0],
        proposal_id=proposal,
        commodity="minyakita",
        quantity=Decimal("15"),  # more than the sender still has
        unit="liter",
        from_cooperative_id=sender,
        to_cooperative_id=receiver,
        to_kelurahan_code=f"{KECAMATAN[1]}.1001",
        to_kecamatan_code=KECAMATAN[1],
        accepted_at=clock.now() - timedelta(minutes=5),
    )
    await inventory.probe.publish(accepted, source="/sourcing")
    await inventory.probe.publish(accepted, source="/sourcing")  # the same proposal sent twice

    async def transferred() -> dict[str, Any]:
        listed = await movements(inventory, receiver, reference=proposal)
        assert listed["total"] == 1
        return listed["items"][0]

    incoming = await eventually(transferred, timeout=15)
    outgoing = (await movements(inventory, sender, reference=proposal))["items"]
    assert len(outgoing) == 1 and outgoing[0]["kind"] == "transfer_out" and outgoing[0]["quantity"] == 10
    assert "only 10" in outgoing[0]["note"]
    assert incoming["kind"] == "transfer_in" and incoming["quantity"] == 10
    assert incoming["value"] == outgoing[0]["value"] == 6 * 14000 + 4 * 14500
    assert (await inventory.stock(sender))["minyakita"]["on_hand"] == 0
    receiving = (await inventory.stock(receiver))["minyakita"]
    assert receiving["on_hand"] == 10 and receiving["unit_cost"] == 14200
    moved = await inventory.probe.wait_for(
        "stock.moved.v1", lambda e: e.data.get("reference") == proposal, count=2
    )
    assert {e.data["kind"] for e in moved} == {"transfer_out", "transfer_in"}
    # The sender has nothing left: a second proposal records nothing at all.
    empty = accepted.model_copy(update={"proposal_id": str(uuid.uuid4())})
    await inventory.probe.publish(empty, source="/sourcing")
    await eventually(lambda: _runner_idle(inventory), timeout=10)
    assert (await movements(inventory, receiver, reference=empty.proposal_id))["total"] == 0
    assert (await movements(inventory, sender, reference=empty.proposal_id))["total"] == 0


async def _runner_idle(inventory: Inventory) -> bool:
    # Processed means its inbox row committed; wait for the last event we sent.
    async with inventory.app.state.db.session() as session:
        inbox = orm.messaging.inbox
        count = (
            await session.execute(select(func.count()).where(inbox.c.consumer == "inventory.redistributions"))
        ).scalar_one()
    return int(count) >= 3
