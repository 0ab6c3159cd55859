"""Orders through the API: placed, confirmed by the supplier, delivered in parts (one order.delivered.v1
per delivery and cooperative), pooled demand split on delivery, and the refusals."""

from __future__ import annotations

import pytest
from sourcing.adapters import orm
from sourcing_testkit import Service, in_days, q

pytestmark = pytest.mark.integration


def offer(
    commodity: str, price: int, *, capacity: int = 1000, lead: int = 2, min_order: int = 0, tiers=()
) -> dict:  # type: ignore[no-untyped-def]
    return {
        "commodity": commodity,
        "unit_price": price,
        "min_order": min_order,
        "capacity_per_week": capacity,
        "lead_time_days": lead,
        "price_tiers": list(tiers),
    }


def error(response, status: int, code: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    if code:
        assert response.json()["error"]["code"] == code, response.text


async def test_order_confirmed_and_delivered_in_parts(service: Service) -> None:
    svc = service
    c = svc.commodity("beras_premium")
    coop = await svc.cooperative("35.78.11.1001")
    supplier = await svc.supplier_with(offers=[offer(c, 14000, capacity=500)])
    need = await svc.need(coop.cooperative_id, commodity=c, quantity=300, needed_by=in_days(7))
    placed = await svc.client.post(
        "/orders",
        json={"need_id": need["id"], "supplier_id": supplier["id"], "quantity": 300},
        headers=svc.officer,
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "placed" and order["unit_price"] == 14000 and order["total_price"] == 4_200_000
    assert order["need_id"] == need["id"] and order["cooperative_id"] == coop.cooperative_id
    [event] = await svc.probe.wait_for("order.placed.v1", lambda e: e.data["order_id"] == order["id"])
    assert (
        event.data["need_id"] == need["id"]
        and q(event.data["quantity"]) == 300
        and event.data["pooled"] is False
    )
    # Ordering is working on the need.
    assert (await svc.client.get(f"/needs/{need['id']}", headers=svc.admin)).json()["status"] == "in_progress"
    path = f"/orders/{order['id']}"
    error(
        await svc.client.post(f"{path}/deliver", json={"quantity": 10}, headers=svc.admin),
        409,
        "illegal_order_change",
    )
    error(await svc.client.post(f"{path}/confirm", headers=svc.supplier("someone-else")), 403)
    confirmed = await svc.client.post(f"{path}/confirm", headers=svc.supplier(supplier["id"]))
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    error(await svc.client.post(f"{path}/confirm", headers=svc.supplier(supplier["id"])), 409)

    partial = await svc.client.post(
        f"{path}/deliver", json={"quantity": 120}, headers=svc.supplier(supplier["id"])
    )
    assert partial.status_code == 200, partial.text
    assert (
        partial.json()["status"] == "partially_delivered" and q(partial.json()["delivered_quantity"]) == 120
    )
    error(
        await svc.client.post(f"{path}/deliver", json={"quantity": 181}, headers=svc.admin),
        409,
        "exceeds_order",
    )
    rest = await svc.client.post(f"{path}/deliver", headers=svc.officer)
    assert rest.status_code == 200 and rest.json()["status"] == "delivered"
    assert rest.json()["delivered_on_time"] is True
    events = await svc.probe.wait_for(
        "order.delivered.v1", lambda e: e.data["order_id"] == order["id"], count=2
    )
    assert [(q(e.data["quantity"]), e.data["complete"]) for e in events] == [(120, False), (180, True)]
    assert len({e.data["delivery_id"] for e in events}) == 2
    first = events[0].data
    assert first["cooperative_id"] == coop.cooperative_id and first["kecamatan_code"] == coop.kecamatan_code
    assert (
        first["supplier_id"] == supplier["id"]
        and first["unit_price"] == 14000
        and first["need_id"] == need["id"]
    )
    # Everything arrived: the need is resolved, and the supplier's record shows one on-time order.
    detail = (await svc.client.get(f"/needs/{need['id']}", headers=svc.manager(coop.cooperative_id))).json()
    assert detail["status"] == "resolved" and q(detail["ordered_quantity"]) == 300
    record = (await svc.client.get(f"/suppliers/{supplier['id']}", headers=svc.admin)).json()["performance"]
    assert record == {"orders": 1, "on_time": 1, "on_time_rate": 1.0, "fill_rate": 1.0}
    error(await svc.client.post(f"{path}/cancel", headers=svc.admin), 409)
    seen = (await svc.client.get(path, headers=svc.manager(coop.cooperative_id))).json()
    assert [q(d["quantity"]) for d in seen["deliveries"]] == [120, 180]


async def test_pooled_order_reaches_a_better_price_and_is_split_on_delivery(service: Service) -> None:
    svc = service
    c = svc.commodity("beras_sphp")
    a = await svc.cooperative("35.78.12.1001")
    b = await svc.cooperative("35.78.12.1002")
    bulog = await svc.supplier_with(
        kind="bulog",
        offers=[
            offer(c, 12000, capacity=5000, min_order=500, tiers=[{"min_quantity": 500, "unit_price": 11500}])
        ],
    )
    need_a = await svc.need(a.cooperative_id, commodity=c, quantity=300)
    need_b = await svc.need(b.cooperative_id, commodity=c, quantity=200)
    # Alone, each is below Bulog's minimum order.
    error(
        await svc.client.post(
            "/orders",
            json={"need_id": need_a["id"], "supplier_id": bulog["id"], "quantity": 300},
            headers=svc.admin,
        ),
        422,
        "below_minimum_order",
    )
    pools = (await svc.client.get("/needs/pooling", params={"commodity": c}, headers=svc.officer)).json()
    [pool] = pools
    assert q(pool["total_quantity"]) == 500 and pool["best_supplier_id"] == bulog["id"]
    assert pool["pooled_unit_price"] == 11500 and pool["saving"] == 500 * 500
    placed = await svc.client.post(
        "/orders/pooled",
        json={"need_ids": [need_a["id"], need_b["id"]], "supplier_id": bulog["id"]},
        headers=svc.officer,
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["pooled"] is True and q(order["quantity"]) == 500 and order["unit_price"] == 11500
    assert (
        sorted(order["need_ids"]) == sorted([need_a["id"], need_b["id"]]) and order["cooperative_id"] is None
    )
    placed_events = await svc.probe.wait_for(
        "order.placed.v1", lambda e: e.data["order_id"] == order["id"], count=2
    )
    assert {e.data["cooperative_id"] for e in placed_events} == {a.cooperative_id, b.cooperative_id}
    # A manager sees only its own share of the pooled order.
    own = (await svc.client.get(f"/orders/{order['id']}", headers=svc.manager(a.cooperative_id))).json()
    assert [line["cooperative_id"] for line in own["lines"]] == [a.cooperative_id]
    path = f"/orders/{order['id']}"
    assert (await svc.client.post(f"{path}/confirm", headers=svc.officer)).status_code == 200
    error(
        await svc.client.post(
            f"{path}/deliver",
            json={"allocations": [{"cooperative_id": "stranger", "quantity": 5}]},
            headers=svc.admin,
        ),
        422,
        "not_in_order",
    )
    error(
        await svc.client.post(
            f"{path}/deliver",
            json={"allocations": [{"cooperative_id": b.cooperative_id, "quantity": 201}]},
            headers=svc.admin,
        ),
        409,
        "exceeds_order",
    )
    first = await svc.client.post(
        f"{path}/deliver",
        json={
            "allocations": [
                {"cooperative_id": a.cooperative_id, "quantity": 300},
                {"cooperative_id": b.cooperative_id, "quantity": 50},
            ]
        },
        headers=svc.supplier(bulog["id"]),
    )
    assert first.status_code == 200 and first.json()["status"] == "partially_delivered"
    events = await svc.probe.wait_for(
        "order.delivered.v1", lambda e: e.data["order_id"] == order["id"], count=2
    )
    assert {(e.data["cooperative_id"], q(e.data["quantity"]), e.data["complete"]) for e in events} == {
        (a.cooperative_id, 300, True),
        (b.cooperative_id, 50, False),
    }
    last = await svc.client.post(f"{path}/deliver", json={"quantity": 150}, headers=svc.supplier(bulog["id"]))
    assert last.status_code == 200 and last.json()["status"] == "delivered"
    events = await svc.probe.wait_for(
        "order.delivered.v1", lambda e: e.data["order_id"] == order["id"], count=3
    )
    assert (events[-1].data["cooperative_id"], q(events[-1].data["quantity"])) == (b.cooperative_id, 150)
    assert len({e.data["delivery_id"] for e in events}) == 3
    assert all(e.data["unit_price"] == 11500 for e in events)


async def test_orders_beyond_capacity_or_need_are_refused_and_leave_nothing(service: Service) -> None:
    svc = service
    c = svc.commodity("kedelai")
    other = svc.commodity("kedelai")
    coop = await svc.cooperative("35.78.13.1001")
    small = await svc.supplier_with(offers=[offer(c, 10500, capacity=100, lead=1)])
    need = await svc.need(coop.cooperative_id, commodity=c, quantity=400, needed_by=in_days(6))
    body = {"need_id": need["id"], "supplier_id": small["id"], "quantity": 150}
    error(await svc.client.post("/orders", json=body, headers=svc.officer), 409, "beyond_capacity")
    error(
        await svc.client.post("/orders", json={**body, "quantity": 401}, headers=svc.officer),
        409,
        "exceeds_need",
    )
    error(await svc.client.post("/orders", json={**body, "quantity": 0}, headers=svc.officer), 422)
    error(
        await svc.client.post("/orders", json={**body, "supplier_id": "nobody"}, headers=svc.officer),
        422,
        "unknown_supplier",
    )
    error(await svc.client.post("/orders", json={**body, "need_id": "nothing"}, headers=svc.officer), 404)
    unrelated = await svc.supplier_with(offers=[offer(other, 9000)])
    error(
        await svc.client.post("/orders", json={**body, "supplier_id": unrelated["id"]}, headers=svc.officer),
        422,
        "commodity_not_offered",
    )
    error(await svc.client.post("/orders", json=body, headers=svc.manager(coop.cooperative_id)), 403)
    error(await svc.client.post("/orders", json=body, headers=svc.supplier(small["id"])), 403)
    error(
        await svc.client.post(
            "/orders", json={**body, "placed_at": "2026-01-01T00:00:00Z"}, headers=svc.officer
        ),
        403,
    )
    assert await svc.rows(orm.orders, orm.orders.c.supplier_id == small["id"]) == []
    assert (await svc.client.get(f"/needs/{need['id']}", headers=svc.admin)).json()["status"] == "open"
    # What it can do passes; the capacity it has committed is then taken.
    ok = await svc.client.post("/orders", json={**body, "quantity": 100}, headers=svc.officer)
    assert ok.status_code == 201
    error(
        await svc.client.post("/orders", json={**body, "quantity": 1}, headers=svc.officer),
        409,
        "beyond_capacity",
    )
    # The supplier declines before confirming; the capacity is free again.
    declined = await svc.client.post(
        f"/orders/{ok.json()['id']}/cancel", json={"reason": "Stok kosong"}, headers=svc.supplier(small["id"])
    )
    assert declined.status_code == 200 and declined.json()["status"] == "cancelled"
    assert (
        await svc.client.post("/orders", json={**body, "quantity": 100}, headers=svc.officer)
    ).status_code == 201
    listed = (
        await svc.client.get("/orders", params={"need_id": need["id"]}, headers=svc.supplier(small["id"]))
    ).json()
    assert [o["status"] for o in listed["items"]] == ["placed", "cancelled"]
    record = (await svc.client.get(f"/suppliers/{small['id']}", headers=svc.admin)).json()["performance"]
    assert record["orders"] == 1 and record["fill_rate"] == 0.0  # declining counts against the supplier
