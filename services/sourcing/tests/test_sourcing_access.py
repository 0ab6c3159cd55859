"""Access rules on every route: no token → 401; a coop_manager touching another cooperative's need, order
or proposal → 404 reading, 403 writing; an officer out of scope likewise; a supplier sees and answers only
what is addressed to it; a supplier or manager never does staff work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from kkmp_shared import clock
from kkmp_shared.events.contracts import StockStalled
from sourcing_testkit import Service

pytestmark = pytest.mark.integration


@dataclass
class World:
    mine: Any  # the cooperative whose need, order and proposal these are (kecamatan 35.78.14)
    taker: Any
    other: Any  # a cooperative with nothing to do with them (kecamatan 35.78.15)
    need: dict[str, Any]
    supplier: dict[str, Any]
    rival: dict[str, Any]
    order: dict[str, Any]
    proposal_id: str
    taker_need: dict[str, Any]


async def build_world(svc: Service) -> World:
    c = svc.commodity("garam")
    mine = await svc.cooperative("35.78.14.1002")
    taker = await svc.cooperative("35.78.14.1006")
    other = await svc.cooperative("35.78.15.1001")
    offer = {"commodity": c, "unit_price": 7000, "capacity_per_week": 500, "lead_time_days": 1}
    supplier = await svc.supplier_with(offers=[offer])
    rival = await svc.supplier_with(offers=[])
    need = await svc.need(mine.cooperative_id, commodity=c, quantity=50)
    placed = await svc.client.post(
        "/orders",
        json={"need_id": need["id"], "supplier_id": supplier["id"], "quantity": 20},
        headers=svc.admin,
    )
    assert placed.status_code == 201, placed.text
    taker_need = await svc.need(taker.cooperative_id, commodity=c, quantity=10)
    now = clock.now()
    await svc.publish(
        StockStalled(
            cooperative_id=mine.cooperative_id,
            kelurahan_code=mine.kelurahan_code,
            kecamatan_code=mine.kecamatan_code,
            commodity=c,
            on_hand=Decimal(30),
            unit="kg",
            days_since_sale=70,
            value=210000,
            detected_at=now - timedelta(minutes=1),
        )
    )
    [event] = await svc.probe.wait_for("redistribution.proposed.v1", lambda e: e.data["commodity"] == c)
    return World(
        mine, taker, other, need, supplier, rival, placed.json(), event.data["proposal_id"], taker_need
    )


def status_of(response: Any, expected: int) -> None:
    assert response.status_code == expected, response.text
    if expected >= 400:
        body = response.json()["error"]
        assert body["code"] and body["message"]


async def test_every_route_refuses_a_missing_or_bad_token(service: Service) -> None:
    svc = service
    checked = 0
    for method, path in sorted(api_routes(svc.app)):
        if path.startswith(("/health", "/metrics", "/asyncapi")):
            continue
        concrete = path.replace("{supplier_id}", "x").replace("{need_id}", "x").replace("{proposal_id}", "x")
        concrete = concrete.replace("{order_id}", "x")
        status_of(await svc.client.request(method, concrete, json={}), 401)
        status_of(
            await svc.client.request(method, concrete, json={}, headers={"Authorization": "Bearer junk"}), 401
        )
        checked += 1
    assert checked == 28


async def test_a_manager_reaches_only_its_own_cooperative(service: Service) -> None:
    svc = service
    w = await build_world(svc)
    stranger = svc.manager(w.other.cooperative_id)
    owner = svc.manager(w.mine.cooperative_id)
    need, order, proposal = w.need["id"], w.order["id"], w.proposal_id
    reads = [f"/needs/{need}", f"/needs/{need}/comments", f"/orders/{order}", f"/redistributions/{proposal}"]
    for path in reads:
        status_of(await svc.client.get(path, headers=stranger), 404)
        status_of(await svc.client.get(path, headers=owner), 200)
    status_of(
        await svc.client.get("/needs", params={"cooperative_id": w.mine.cooperative_id}, headers=stranger),
        404,
    )
    for listing in ("/needs", "/orders", "/redistributions", "/stalled-items"):
        items = (await svc.client.get(listing, headers=stranger)).json()["items"]
        assert items == [], listing
    writes = [
        ("POST", f"/needs/{need}/status", {"status": "acknowledged"}),
        ("POST", f"/needs/{need}/comments", {"text": "hai"}),
        ("POST", f"/needs/{need}/match", None),
        ("POST", f"/orders/{order}/confirm", None),
        ("POST", f"/orders/{order}/deliver", None),
        ("POST", f"/orders/{order}/cancel", None),
        ("POST", f"/redistributions/{proposal}/accept", None),
        ("POST", f"/redistributions/{proposal}/decline", None),
        ("POST", "/needs", {"cooperative_id": w.mine.cooperative_id, "kind": "other", "description": "x"}),
    ]
    for method, path, body in writes:
        status_of(await svc.client.request(method, path, json=body, headers=stranger), 403)
    # Its own cooperative's manager still does no staff work.
    staff_only = [
        ("POST", f"/needs/{need}/status", {"status": "acknowledged"}),
        ("POST", f"/needs/{need}/match", None),
        ("POST", f"/orders/{order}/confirm", None),
        ("POST", f"/orders/{order}/deliver", None),
        ("POST", f"/orders/{order}/cancel", None),
        ("POST", "/orders", {"need_id": need, "supplier_id": w.supplier["id"], "quantity": 1}),
        ("POST", "/orders/pooled", {"need_ids": [need, need + "x"], "supplier_id": w.supplier["id"]}),
        ("POST", "/suppliers", {"name": "Toko Saya"}),
        ("POST", "/suppliers/batch", {"suppliers": [{"name": "Toko Saya"}]}),
        ("PATCH", f"/suppliers/{w.supplier['id']}", {"name": "Toko Saya"}),
        ("PUT", f"/suppliers/{w.supplier['id']}/offers", {"offers": []}),
        ("GET", "/needs/stats", None),
        ("GET", "/needs/pooling", None),
    ]
    for method, path, body in staff_only:
        status_of(await svc.client.request(method, path, json=body, headers=owner), 403)
    # The owner answers for its own side of the proposal only.
    status_of(
        await svc.client.post(f"/redistributions/{proposal}/accept", json={"side": "to"}, headers=owner), 403
    )
    status_of(await svc.client.post(f"/redistributions/{proposal}/accept", headers=owner), 200)


async def test_an_officer_acts_within_its_kecamatan(service: Service) -> None:
    svc = service
    w = await build_world(svc)
    outside = svc.headers("officer", kecamatan_codes=["35.78.15"])
    inside = svc.headers("officer", kecamatan_codes=["35.78.14"])
    need, order, proposal = w.need["id"], w.order["id"], w.proposal_id
    for path in (f"/needs/{need}", f"/orders/{order}", f"/redistributions/{proposal}"):
        status_of(await svc.client.get(path, headers=outside), 404)
        status_of(await svc.client.get(path, headers=inside), 200)
    for method, path, body in [
        ("POST", f"/needs/{need}/status", {"status": "acknowledged"}),
        ("POST", f"/needs/{need}/comments", {"text": "x"}),
        ("POST", f"/orders/{order}/confirm", None),
        ("POST", f"/orders/{order}/cancel", None),
        ("POST", f"/redistributions/{proposal}/accept", None),
        ("POST", "/orders", {"need_id": need, "supplier_id": w.supplier["id"], "quantity": 1}),
        ("POST", "/needs", {"cooperative_id": w.mine.cooperative_id, "kind": "other", "description": "x"}),
    ]:
        status_of(await svc.client.request(method, path, json=body, headers=outside), 403)
    status_of(
        await svc.client.get("/needs/stats", params={"kecamatan_code": "35.78.14"}, headers=outside), 403
    )
    listed = (await svc.client.get("/needs", params={"kecamatan_code": "35.78.14"}, headers=outside)).json()
    assert listed["items"] == []
    # Placing the order took the need in progress; the officer in scope closes it.
    status_of(
        await svc.client.post(f"/needs/{need}/status", json={"status": "resolved"}, headers=inside), 200
    )
    status_of(await svc.client.post(f"/needs/{need}/comments", json={"text": "Selesai"}, headers=inside), 201)
    # An officer answers for both sides of a proposal it oversees.
    both = await svc.client.post(f"/redistributions/{proposal}/accept", json={"side": "both"}, headers=inside)
    status_of(both, 200)
    assert both.json()["status"] == "accepted"


async def test_a_supplier_sees_and_answers_only_what_is_addressed_to_it(service: Service) -> None:
    svc = service
    w = await build_world(svc)
    own, rival = svc.supplier(w.supplier["id"]), svc.supplier(w.rival["id"])
    need, order = w.need["id"], w.order["id"]
    detail = await svc.client.get(f"/needs/{need}", headers=own)
    status_of(detail, 200)
    assert [m["supplier_id"] for m in detail.json()["matches"]] == [w.supplier["id"]]
    status_of(await svc.client.get(f"/orders/{order}", headers=own), 200)
    for path in (
        f"/needs/{need}",
        f"/orders/{order}",
        f"/redistributions/{w.proposal_id}",
        f"/suppliers/{w.supplier['id']}",
    ):
        status_of(await svc.client.get(path, headers=rival), 404)
    assert (await svc.client.get("/needs", headers=rival)).json()["items"] == []
    # Both needs for its commodity were matched to it; nothing else is addressed to it.
    addressed = {n["id"] for n in (await svc.client.get("/needs", headers=own)).json()["items"]}
    assert addressed == {need, w.taker_need["id"]}
    assert [s["id"] for s in (await svc.client.get("/suppliers", headers=rival)).json()["items"]] == [
        w.rival["id"]
    ]
    assert (await svc.client.get("/orders", headers=rival)).json()["items"] == []
    for method, path, body in [
        ("POST", f"/orders/{order}/confirm", None),
        ("POST", f"/orders/{order}/deliver", None),
        ("POST", f"/orders/{order}/cancel", None),
        ("PUT", f"/suppliers/{w.supplier['id']}/offers", {"offers": []}),
        ("POST", f"/needs/{need}/comments", {"text": "x"}),
        ("POST", f"/redistributions/{w.proposal_id}/accept", None),
        ("POST", f"/needs/{need}/status", {"status": "acknowledged"}),
        ("PATCH", f"/suppliers/{w.rival['id']}", {"name": "Nama Baru"}),
    ]:
        status_of(await svc.client.request(method, path, json=body, headers=rival), 403)
    status_of(await svc.client.post(f"/needs/{need}/comments", json={"text": "Stok siap"}, headers=own), 201)
    status_of(await svc.client.post(f"/orders/{order}/confirm", headers=own), 200)


async def test_every_sourcing_route_is_covered_by_these_access_tests(service: Service) -> None:
    """Adding a route without deciding (and testing) who may use it fails here."""
    covered = {
        ("POST", "/suppliers"), ("POST", "/suppliers/batch"), ("GET", "/suppliers"),
        ("GET", "/suppliers/{supplier_id}"), ("PATCH", "/suppliers/{supplier_id}"),
        ("PUT", "/suppliers/{supplier_id}/offers"),
        ("POST", "/needs"), ("POST", "/needs/batch"), ("GET", "/needs"), ("GET", "/needs/stats"),
        ("GET", "/needs/pooling"), ("GET", "/needs/{need_id}"), ("POST", "/needs/{need_id}/status"),
        ("POST", "/needs/{need_id}/match"), ("GET", "/needs/{need_id}/comments"),
        ("POST", "/needs/{need_id}/comments"),
        ("GET", "/redistributions"), ("GET", "/redistributions/{proposal_id}"),
        ("POST", "/redistributions/{proposal_id}/accept"), ("POST", "/redistributions/{proposal_id}/decline"),
        ("GET", "/stalled-items"),
        ("POST", "/orders"), ("POST", "/orders/pooled"), ("GET", "/orders"), ("GET", "/orders/{order_id}"),
        ("POST", "/orders/{order_id}/confirm"), ("POST", "/orders/{order_id}/deliver"),
        ("POST", "/orders/{order_id}/cancel"),
        ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics"), ("GET", "/asyncapi.json"),
    }  # fmt: skip
    assert api_routes(service.app) == covered


def api_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path template) the app serves, as its OpenAPI document lists them."""
    return {
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    }
