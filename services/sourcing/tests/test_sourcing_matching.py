"""Suppliers and supplier matching through the API, on the real broker and both databases."""

from __future__ import annotations

import pytest
from sourcing.adapters import orm
from sourcing_testkit import KELURAHAN, Service, in_days, q

pytestmark = pytest.mark.integration

HOME = "35.78.01.1001"  # Karang Pilang


def offer(commodity: str, price: int, *, capacity: int = 1000, lead: int = 2, min_order: int = 0) -> dict:
    return {
        "commodity": commodity,
        "unit_price": price,
        "min_order": min_order,
        "capacity_per_week": capacity,
        "lead_time_days": lead,
    }


async def test_ranking_with_reasons_trades_price_distance_and_speed(service: Service) -> None:
    svc = service
    coop = await svc.cooperative(HOME)
    c = svc.commodity("beras_medium")
    home = KELURAHAN[HOME]
    cheap = await svc.supplier_with(lat=-7.25, lon=112.80, offers=[offer(c, 12000, lead=6)], kind="bulog")
    close = await svc.supplier_with(
        lat=float(home["lat"]) + 0.005, lon=float(home["lon"]), offers=[offer(c, 12600, lead=3)]
    )
    fast = await svc.supplier_with(lat=-7.25, lon=112.80, offers=[offer(c, 13000, lead=0)])

    need = await svc.need(coop.cooperative_id, commodity=c, quantity=500, needed_by=in_days(14))
    ranked = [m["supplier_id"] for m in need["matches"]]
    assert ranked == [close["id"], cheap["id"], fast["id"]]
    first = need["matches"][0]
    assert first["rank"] == 1 and first["supplier_name"] == close["name"]
    assert (
        first["unit_price"] == 12600 and first["lead_time_days"] == 3 and q(first["can_fill_quantity"]) == 500
    )
    assert first["distance_km"] < 1
    assert any(r.startswith("Jarak 0,") for r in first["reasons"])
    by_id = {m["supplier_id"]: m for m in need["matches"]}
    assert by_id[cheap["id"]]["reasons"][0].startswith("Harga termurah: Rp12.000/kg")
    assert all(len(m["reasons"]) == 5 for m in need["matches"])
    assert need["split"] is None
    [event] = await svc.probe.wait_for("supplier.matched.v1", lambda e: e.data["need_id"] == need["id"])
    assert [m["supplier_id"] for m in event.data["matches"]] == ranked
    assert event.data["split"] is False and event.data["matches"][0]["reasons"] == first["reasons"]
    assert event.subject == coop.cooperative_id and event.data["kecamatan_code"] == "35.78.01"

    # Needed in four days: the cheap supplier (6 days lead time) would be late, the fast one overtakes it.
    urgent = await svc.need(coop.cooperative_id, commodity=c, quantity=500, needed_by=in_days(4))
    order = [m["supplier_id"] for m in urgent["matches"]]
    assert order.index(fast["id"]) < order.index(cheap["id"])
    late = next(m for m in urgent["matches"] if m["supplier_id"] == cheap["id"])
    assert late["on_time"] is False and q(late["can_fill_quantity"]) == 0
    assert any("melewati tenggat" in r for r in late["reasons"])


async def test_split_when_no_single_supplier_suffices(service: Service) -> None:
    svc = service
    coop = await svc.cooperative("35.78.02.1001")
    c = svc.commodity("gula")
    a = await svc.supplier_with(service_kecamatan_codes=["35.78.02"], offers=[offer(c, 15000, capacity=400)])
    b = await svc.supplier_with(service_kecamatan_codes=["35.78.02"], offers=[offer(c, 15500, capacity=300)])
    need = await svc.need(coop.cooperative_id, commodity=c, quantity=600, needed_by=in_days(6))
    assert all(q(m["can_fill_quantity"]) < 600 for m in need["matches"])
    split = need["split"]
    assert [(p["supplier_id"], q(p["quantity"])) for p in split["parts"]] == [(a["id"], 400), (b["id"], 200)]
    assert split["complete"] is True and q(split["shortfall"]) == 0
    assert split["cost"] == 400 * 15000 + 200 * 15500
    [event] = await svc.probe.wait_for("supplier.matched.v1", lambda e: e.data["need_id"] == need["id"])
    assert event.data["split"] is True
    assert [(p["supplier_id"], q(p["quantity"])) for p in event.data["split_parts"]] == [
        (a["id"], 400),
        (b["id"], 200),
    ]


async def test_changed_offers_refresh_the_ranking(service: Service) -> None:
    svc = service
    coop = await svc.cooperative("35.78.02.1002")
    c = svc.commodity("minyakita")
    first = await svc.supplier_with(service_kecamatan_codes=["35.78.02"], offers=[offer(c, 14500)])
    second = await svc.supplier_with(service_kecamatan_codes=["35.78.02"], offers=[offer(c, 15000)])
    need = await svc.need(coop.cooperative_id, commodity=c, quantity=100)
    assert [m["supplier_id"] for m in need["matches"]] == [first["id"], second["id"]]
    # The second supplier (answering for itself) cuts its price: the need is ranked again and announced.
    response = await svc.client.put(
        f"/suppliers/{second['id']}/offers",
        json={"offers": [offer(c, 13900)]},
        headers=svc.supplier(second["id"]),
    )
    assert response.status_code == 200, response.text
    detail = (await svc.client.get(f"/needs/{need['id']}", headers=svc.admin)).json()
    assert [m["supplier_id"] for m in detail["matches"]] == [second["id"], first["id"]]
    events = await svc.probe.wait_for(
        "supplier.matched.v1", lambda e: e.data["need_id"] == need["id"], count=2
    )
    assert events[-1].data["matches"][0]["supplier_id"] == second["id"]
    # Deactivating a supplier drops it from the ranking.
    response = await svc.client.patch(
        f"/suppliers/{second['id']}", json={"active": False}, headers=svc.officer
    )
    assert response.status_code == 200 and response.json()["active"] is False
    detail = (await svc.client.get(f"/needs/{need['id']}", headers=svc.admin)).json()
    assert [m["supplier_id"] for m in detail["matches"]] == [first["id"]]


async def test_supplier_registry_validation_and_listing(service: Service) -> None:
    svc = service
    c = svc.commodity("telur")
    body = {"name": f"UD Telur {c}", "kind": "umkm_producer", "offers": [offer(c, 26000)]}
    created = await svc.client.post("/suppliers", json=body, headers=svc.officer)
    assert created.status_code == 201
    assert created.json()["offers"][0]["unit"] == "kg"
    dup = await svc.client.post("/suppliers", json={**body, "name": body["name"].upper()}, headers=svc.admin)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate_supplier"
    bad = [
        ({**body, "name": "X1 " + c, "offers": [offer("durian", 1000)]}, "unknown_commodity"),
        ({**body, "name": "X2 " + c, "service_kecamatan_codes": ["35.78.99"]}, "unknown_kecamatan"),
        ({**body, "name": "X3 " + c, "offers": [offer(c, 0)]}, "validation_error"),
        ({**body, "name": "X4 " + c, "offers": [offer(c, 100, capacity=-1)]}, "validation_error"),
        ({**body, "name": "X5 " + c, "offers": [offer(c, 100), offer(c, 90)]}, "validation_error"),
        ({**body, "name": "X6 " + c, "rating": 5}, "validation_error"),
        ({**body, "name": "X7 " + c, "lat": -7.2}, "validation_error"),
        ({**body, "name": "X8 " + c, "kind": "martian"}, "validation_error"),
    ]
    for payload, code in bad:
        response = await svc.client.post("/suppliers", json=payload, headers=svc.admin)
        assert response.status_code == 422, (payload, response.text)
        assert response.json()["error"]["code"] == code
    # A batch with one bad supplier creates none of them.
    batch = {
        "suppliers": [{"name": f"Batch A {c}"}, {"name": f"Batch B {c}", "offers": [offer("durian", 5)]}]
    }
    response = await svc.client.post("/suppliers/batch", json=batch, headers=svc.admin)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "suppliers.1.offers.0.commodity"
    assert await svc.rows(orm.suppliers, orm.suppliers.c.name == f"Batch A {c}") == []
    batch["suppliers"][1]["offers"] = [offer(c, 25000)]
    response = await svc.client.post("/suppliers/batch", json=batch, headers=svc.admin)
    assert response.status_code == 201 and response.json()["created"] == 2
    listing = await svc.client.get("/suppliers", params={"commodity": c}, headers=svc.manager("any"))
    assert listing.status_code == 200
    assert {s["name"] for s in listing.json()["items"]} == {body["name"], f"Batch B {c}"}
    assert (await svc.client.get("/suppliers/nope", headers=svc.admin)).status_code == 404
