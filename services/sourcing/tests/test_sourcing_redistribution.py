"""Redistribution of stalled stock, driven by inventory's events on the real broker (as inventory's relay
would publish them), on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from kkmp_shared import clock
from kkmp_shared.events.contracts import (
    MemberJoined,
    StockLow,
    StockRecovered,
    StockStalled,
    StockStockout,
)
from kkmp_testkit.wait import eventually
from sourcing.adapters import orm
from sourcing_testkit import Service, q

pytestmark = [pytest.mark.integration, pytest.mark.clock]

R = orm.redistributions


def stalled(
    coop, commodity: str, on_hand: int = 50, unit: str = "kg", unit_cost: int = 12000
) -> StockStalled:  # type: ignore[no-untyped-def]
    now = clock.now()
    return StockStalled(
        cooperative_id=coop.cooperative_id,
        kelurahan_code=coop.kelurahan_code,
        kecamatan_code=coop.kecamatan_code,
        commodity=commodity,
        on_hand=Decimal(on_hand),
        unit=unit,
        last_sale_at=now - timedelta(days=20),
        days_since_sale=20,
        value=on_hand * unit_cost,
        unit_cost=unit_cost,
        detected_at=now,
    )


def low(coop, commodity: str, on_hand: str, avg: str) -> StockLow:  # type: ignore[no-untyped-def]
    return StockLow(
        cooperative_id=coop.cooperative_id,
        kelurahan_code=coop.kelurahan_code,
        kecamatan_code=coop.kecamatan_code,
        commodity=commodity,
        on_hand=Decimal(on_hand),
        unit="kg",
        avg_daily_sales=Decimal(avg),
        days_of_cover=Decimal(on_hand) / Decimal(avg),
        detected_at=clock.now(),
    )


async def proposals(svc: Service, commodity: str) -> list:  # type: ignore[type-arg]
    return await svc.rows(R, R.c.commodity == commodity)


async def item_status(svc: Service, cooperative_id: str, commodity: str) -> str | None:
    rows = await svc.rows(
        orm.stalled_items,
        orm.stalled_items.c.cooperative_id == cooperative_id,
        orm.stalled_items.c.commodity == commodity,
    )
    return rows[0].status if rows else None


async def test_stalled_stock_is_proposed_to_the_nearest_cooperative_that_needs_it(service: Service) -> None:
    svc = service
    c = svc.commodity("beras_medium")
    source = await svc.cooperative("35.78.01.1001")  # Karang Pilang
    near = await svc.cooperative("35.78.01.1002")  # Kebraon, next door: an open supply need
    far = await svc.cooperative("35.78.03.1005")  # Wonorejo (Rungkut), across the city: stock ran out
    idle = await svc.cooperative("35.78.01.1003")  # needs nothing
    need = await svc.need(near.cooperative_id, commodity=c, quantity=30)
    await svc.publish(
        StockStockout(
            cooperative_id=far.cooperative_id,
            kelurahan_code=far.kelurahan_code,
            kecamatan_code=far.kecamatan_code,
            commodity=c,
            unit="kg",
            detected_at=clock.now(),
        )
    )
    await eventually(
        lambda: svc.rows(orm.stock_conditions, orm.stock_conditions.c.cooperative_id == far.cooperative_id)
    )
    event = await svc.publish(stalled(source, c, on_hand=50))
    proposed = await svc.probe.wait_for(
        "redistribution.proposed.v1", lambda e: e.data["commodity"] == c, count=2, timeout=15
    )
    assert [e.data["to_cooperative_id"] for e in proposed] == [near.cooperative_id, far.cooperative_id]
    first, second = proposed
    assert (
        first.data["from_cooperative_id"] == source.cooperative_id and first.subject == source.cooperative_id
    )
    assert q(first.data["quantity"]) == 30  # what the need asks, not more
    assert q(second.data["quantity"]) == 20  # the rest goes to the cooperative whose shelf is empty
    assert first.data["distance_km"] < second.data["distance_km"]
    assert first.data["to_kelurahan_code"] == "35.78.01.1002" and "kebutuhan" in first.data["reason"]

    listed = await svc.client.get("/redistributions", params={"commodity": c}, headers=svc.admin)
    items = listed.json()["items"]
    assert {(p["to_cooperative_id"], p["status"]) for p in items} == {
        (near.cooperative_id, "proposed"),
        (far.cooperative_id, "proposed"),
    }
    by_taker = {p["to_cooperative_id"]: p for p in items}
    assert by_taker[near.cooperative_id]["need_id"] == need["id"]
    assert (
        by_taker[near.cooperative_id]["reason"] == "open_need"
        and by_taker[far.cooperative_id]["reason"] == "stockout"
    )
    assert all(p["from_cooperative_id"] == source.cooperative_id and p["unit_cost"] == 12000 for p in items)
    assert idle.cooperative_id not in by_taker
    # Each side's manager sees the proposal; a third cooperative does not.
    mine = await svc.client.get(
        "/redistributions", params={"commodity": c}, headers=svc.manager(near.cooperative_id)
    )
    assert [p["to_cooperative_id"] for p in mine.json()["items"]] == [near.cooperative_id]
    theirs = await svc.client.get(
        "/redistributions", params={"commodity": c}, headers=svc.manager(idle.cooperative_id)
    )
    assert theirs.json()["items"] == []
    assert await item_status(svc, source.cooperative_id, c) == "proposed"
    assert event.id


async def test_no_taker_is_recorded_with_suggestions(service: Service) -> None:
    svc = service
    c = svc.commodity("tepung_terigu")
    source = await svc.cooperative("35.78.07.1001")
    await svc.publish(
        MemberJoined(
            cooperative_id=source.cooperative_id,
            kelurahan_code=source.kelurahan_code,
            kecamatan_code=source.kecamatan_code,
            member_id=str(uuid.uuid4()),
            kind="umkm",
            sector="Kue basah",
            products=["lemper", "donat"],
            member_count=1,
            joined_at=clock.now(),
        )
    )
    await eventually(
        lambda: svc.rows(orm.umkm_members, orm.umkm_members.c.cooperative_id == source.cooperative_id)
    )
    await svc.publish(stalled(source, c, on_hand=40, unit_cost=11000))
    await eventually(lambda: item_status(svc, source.cooperative_id, c), timeout=15)
    assert await proposals(svc, c) == []
    response = await svc.client.get(
        "/stalled-items",
        params={"cooperative_id": source.cooperative_id},
        headers=svc.manager(source.cooperative_id),
    )
    [item] = response.json()["items"]
    assert item["status"] == "no_taker" and item["commodity"] == c and q(item["on_hand"]) == 40
    assert item["value"] == 440000 and q(item["allocated_quantity"]) == 0
    codes = [s["code"] for s in item["suggestions"]]
    assert codes == ["sell_to_umkm_members", "promotion", "return_to_supplier"]
    assert "Kue basah" in item["suggestions"][0]["text"]
    other = await svc.client.get(
        "/stalled-items",
        params={"cooperative_id": source.cooperative_id},
        headers=svc.manager("someone-else"),
    )
    assert other.json()["items"] == []

    # A cooperative that needs the commodity later is offered the stalled stock then.
    taker = await svc.cooperative("35.78.07.1002")
    need = await svc.need(taker.cooperative_id, commodity=c, quantity=25)
    [event] = await svc.probe.wait_for("redistribution.proposed.v1", lambda e: e.data["commodity"] == c)
    assert event.data["to_cooperative_id"] == taker.cooperative_id and q(event.data["quantity"]) == 25
    assert (await proposals(svc, c))[0].need_id == need["id"]
    assert await item_status(svc, source.cooperative_id, c) == "proposed"


async def test_the_same_stall_delivered_twice_makes_one_proposal(service: Service) -> None:
    svc = service
    c = svc.commodity("telur")
    source = await svc.cooperative("35.78.08.1001")
    taker = await svc.cooperative("35.78.08.1002")
    await svc.publish(low(taker, c, on_hand="4", avg="2"))
    await eventually(
        lambda: svc.rows(orm.stock_conditions, orm.stock_conditions.c.cooperative_id == taker.cooperative_id)
    )
    data = stalled(source, c, on_hand=60)
    event_id = str(uuid.uuid4())
    await svc.publish(data, event_id=event_id)
    await svc.publish(data, event_id=event_id)  # a redelivery: the inbox absorbs it
    # The same episode announced again under a new id must not duplicate the proposal either.
    await svc.publish(data)
    runner = svc.app.state.runner
    await eventually(lambda: runner.stats["duplicates"] >= 1, timeout=15)
    await svc.probe.wait_for("redistribution.proposed.v1", lambda e: e.data["commodity"] == c)

    async def settled() -> bool:
        items = await svc.rows(orm.stalled_items, orm.stalled_items.c.commodity == c)
        return len(items) == 1 and items[0].updated_at > items[0].detected_at

    await eventually(settled, timeout=15)
    rows = await proposals(svc, c)
    assert len(rows) == 1
    # A low shelf needs 14 days of its sales less what it has: 14 × 2 − 4 = 24.
    assert rows[0].to_cooperative_id == taker.cooperative_id and q(rows[0].quantity) == 24
    # Stock stalling in a second cooperative is not offered to the shelf already being refilled.
    second_source = await svc.cooperative("35.78.08.1003")
    await svc.publish(stalled(second_source, c, on_hand=40))
    await eventually(lambda: item_status(svc, second_source.cooperative_id, c), timeout=15)
    assert await item_status(svc, second_source.cooperative_id, c) == "no_taker"
    assert len(await proposals(svc, c)) == 1
    assert len(svc.probe.of_type("redistribution.proposed.v1")) == len(
        {e.data["proposal_id"] for e in svc.probe.of_type("redistribution.proposed.v1")}
    )


async def test_both_managers_accept_and_inventory_is_told_to_move_the_stock(service: Service) -> None:
    svc = service
    c = svc.commodity("lpg_3kg")
    source = await svc.cooperative("35.78.09.1001")
    taker = await svc.cooperative("35.78.09.1002")
    outsider = await svc.cooperative("35.78.09.1003")
    await svc.need(taker.cooperative_id, commodity=c, quantity=20)
    await svc.publish(stalled(source, c, on_hand=30, unit="tabung", unit_cost=16000))
    [proposed] = await svc.probe.wait_for("redistribution.proposed.v1", lambda e: e.data["commodity"] == c)
    proposal_id = proposed.data["proposal_id"]
    path = f"/redistributions/{proposal_id}"

    error_codes = {
        "outsider": await svc.client.post(f"{path}/accept", headers=svc.manager(outsider.cooperative_id)),
        "supplier": await svc.client.post(f"{path}/accept", headers=svc.supplier("s-1")),
        "scoped officer": await svc.client.post(
            f"{path}/accept", headers=svc.headers("officer", kecamatan_codes=["35.78.01"])
        ),
    }
    assert {k: r.status_code for k, r in error_codes.items()} == {k: 403 for k in error_codes}
    assert (await svc.client.get(path, headers=svc.manager(outsider.cooperative_id))).status_code == 404

    first = await svc.client.post(
        f"{path}/accept", json={"note": "Siap kirim"}, headers=svc.manager(source.cooperative_id)
    )
    assert first.status_code == 200 and first.json()["status"] == "proposed"
    assert first.json()["from_side"]["decision"] == "accepted" and first.json()["to_side"]["decision"] is None
    twice = await svc.client.post(f"{path}/accept", headers=svc.manager(source.cooperative_id))
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_answered"
    assert svc.probe.of_type("redistribution.accepted.v1") == [] or all(
        e.data["proposal_id"] != proposal_id for e in svc.probe.of_type("redistribution.accepted.v1")
    )
    second = await svc.client.post(f"{path}/accept", headers=svc.manager(taker.cooperative_id))
    assert second.status_code == 200 and second.json()["status"] == "accepted"
    [accepted] = await svc.probe.wait_for(
        "redistribution.accepted.v1", lambda e: e.data["proposal_id"] == proposal_id
    )
    data = accepted.data
    # What inventory needs to record transfer_out at the source and transfer_in at the taker.
    assert (
        data["from_cooperative_id"] == source.cooperative_id
        and data["to_cooperative_id"] == taker.cooperative_id
    )
    assert data["cooperative_id"] == source.cooperative_id and data["kecamatan_code"] == source.kecamatan_code
    assert (
        data["to_kelurahan_code"] == taker.kelurahan_code
        and data["to_kecamatan_code"] == taker.kecamatan_code
    )
    assert q(data["quantity"]) == 20 and data["unit"] == "tabung" and data["unit_cost"] == 16000
    again = await svc.client.post(f"{path}/decline", headers=svc.admin)
    assert again.status_code == 409
    assert await item_status(svc, source.cooperative_id, c) == "redistributed"
    # The transfer out ends the stall (inventory says so): the item keeps its outcome.
    await svc.publish(
        StockRecovered(
            cooperative_id=source.cooperative_id,
            kelurahan_code=source.kelurahan_code,
            kecamatan_code=source.kecamatan_code,
            commodity=c,
            condition="stalled",
            on_hand=Decimal(10),
            unit="tabung",
            detected_at=clock.now(),
        )
    )

    async def closed() -> bool:
        rows = await svc.rows(orm.stalled_items, orm.stalled_items.c.commodity == c)
        return rows[0].active_key is None and rows[0].status == "redistributed"

    await eventually(closed, timeout=15)


async def test_a_decline_offers_the_stock_to_the_next_cooperative(service: Service) -> None:
    svc = service
    c = svc.commodity("minyakita")
    source = await svc.cooperative("35.78.10.1001")
    first_taker = await svc.cooperative("35.78.10.1002")
    first_need = await svc.need(first_taker.cooperative_id, commodity=c, quantity=40)
    await svc.publish(stalled(source, c, on_hand=40, unit="liter"))
    [proposed] = await svc.probe.wait_for("redistribution.proposed.v1", lambda e: e.data["commodity"] == c)
    # A second cooperative runs low meanwhile; it was not there when the stock was offered.
    second_taker = await svc.cooperative("35.78.10.1003")
    await svc.publish(low(second_taker, c, on_hand="2", avg="1"))
    await eventually(
        lambda: svc.rows(
            orm.stock_conditions, orm.stock_conditions.c.cooperative_id == second_taker.cooperative_id
        )
    )
    response = await svc.client.post(
        f"/redistributions/{proposed.data['proposal_id']}/decline",
        json={"side": "to", "note": "Sudah dapat dari Bulog"},
        headers=svc.officer,
    )
    assert response.status_code == 200 and response.json()["status"] == "declined"
    assert response.json()["to_side"]["note"] == "Sudah dapat dari Bulog"
    events = await svc.probe.wait_for(
        "redistribution.proposed.v1", lambda e: e.data["commodity"] == c, count=2
    )
    assert events[1].data["to_cooperative_id"] == second_taker.cooperative_id
    assert q(events[1].data["quantity"]) == 12  # 14 days × 1 − 2 on hand
    # The first need is dropped and the low shelf recovers: a new stall elsewhere finds no taker.
    response = await svc.client.post(
        f"/needs/{first_need['id']}/status", json={"status": "rejected"}, headers=svc.officer
    )
    assert response.status_code == 200
    await svc.publish(
        StockRecovered(
            cooperative_id=second_taker.cooperative_id,
            kelurahan_code=second_taker.kelurahan_code,
            kecamatan_code=second_taker.kecamatan_code,
            commodity=c,
            condition="low",
            on_hand=Decimal(30),
            unit="liter",
            detected_at=clock.now(),
        )
    )

    async def recovered() -> bool:
        rows = await svc.rows(
            orm.stock_conditions, orm.stock_conditions.c.cooperative_id == second_taker.cooperative_id
        )
        return rows == []

    await eventually(recovered, timeout=15)
    other_source = await svc.cooperative("35.78.10.1004")
    await svc.publish(stalled(other_source, c, on_hand=10, unit="liter"))
    await eventually(lambda: item_status(svc, other_source.cooperative_id, c), timeout=15)
    assert await item_status(svc, other_source.cooperative_id, c) == "no_taker"
