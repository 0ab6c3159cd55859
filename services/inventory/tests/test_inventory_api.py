"""The inventory API against the real broker and database (SQLite and PostgreSQL): catalogue, ledger,
access rules, bad input, racing sales, idempotency, batches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from inventory_testkit import KECAMATAN, Inventory
from kkmp_shared import clock
from kkmp_testkit.asserts import assert_error

pytestmark = [pytest.mark.integration, pytest.mark.clock]


# --- catalogue --------------------------------------------------------------------------------------


async def test_catalogue_lists_the_commodities_with_ceilings(inventory: Inventory) -> None:
    response = await inventory.client.get("/commodities", headers=inventory.headers("supplier"))
    assert response.status_code == 200
    catalogue = {c["code"]: c for c in response.json()}
    assert len(catalogue) >= 19
    medium = catalogue["beras_medium"]
    assert {"code", "name", "unit", "price_ceiling", "ceiling_kind", "stall_days", "low_cover_days"} <= set(
        medium
    )
    assert (medium["unit"], medium["price_ceiling"], medium["ceiling_kind"]) == ("kg", 13500, "HET")
    assert catalogue["telur"]["ceiling_kind"] == "HAP" and catalogue["tepung_terigu"]["price_ceiling"] is None
    assert_error(await inventory.client.get("/commodities"), 401, "unauthorized")


async def test_admin_adds_commodities_and_changes_ceilings_keeping_history(inventory: Inventory) -> None:
    code = f"kopi_{uuid.uuid4().hex[:6]}"
    body = {"code": code, "name": "Kopi bubuk", "unit": "kg", "price_ceiling": 50000, "ceiling_kind": "HAP"}
    assert_error(
        await inventory.client.post("/commodities", json=body, headers=inventory.headers("officer")), 403
    )
    created = await inventory.client.post("/commodities", json=body, headers=inventory.headers())
    assert created.status_code == 201, created.text
    assert created.json()["price_ceiling"] == 50000 and created.json()["stall_days"] == 14
    duplicate = await inventory.client.post("/commodities", json=body, headers=inventory.headers())
    assert_error(duplicate, 409, "duplicate_commodity")
    assert_error(
        await inventory.client.post(
            "/commodities", json={**body, "code": "x y"}, headers=inventory.headers()
        ),
        422,
    )
    later = (clock.now() + timedelta(days=30)).isoformat()
    upcoming = await inventory.client.post(
        f"/commodities/{code}/ceilings",
        json={"price_ceiling": 52000, "ceiling_kind": "HAP", "effective_from": later, "legal_basis": "test"},
        headers=inventory.headers(),
    )
    assert upcoming.status_code == 201 and upcoming.json()["price_ceiling"] == 50000  # not yet in force
    patched = await inventory.client.patch(
        f"/commodities/{code}",
        json={"stall_days": 10, "low_cover_days": 3, "price_ceiling": 51000, "ceiling_kind": "HAP"},
        headers=inventory.headers(),
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["stall_days"], patched.json()["price_ceiling"]) == (10, 51000)
    history = (
        await inventory.client.get(f"/commodities/{code}/ceilings", headers=inventory.headers())
    ).json()
    assert [h["price_ceiling"] for h in history] == [50000, 51000, 52000]
    assert [h["in_force"] for h in history] == [False, True, False] and history[2]["upcoming"]
    assert_error(
        await inventory.client.patch(f"/commodities/{code}", json={"unit": "g"}, headers=inventory.headers()),
        422,
    )
    assert_error(await inventory.client.get("/commodities/nope", headers=inventory.headers()), 404)


# --- ledger and stock -------------------------------------------------------------------------------


async def test_movements_update_stock_and_are_announced(inventory: Inventory) -> None:
    coop = await inventory.register()
    receipt = (
        await inventory.move(
            coop, commodity="beras_medium", kind="receipt", quantity="100", unit_price=12000, reference="SJ-1"
        )
    ).json()
    assert receipt["on_hand_after"] == 100 and receipt["unit"] == "kg" and receipt["value"] == 1_200_000
    sale = (
        await inventory.move(coop, commodity="beras_medium", kind="sale", quantity="28.5", unit_price=13000)
    ).json()
    assert sale["delta"] == -28.5 and sale["on_hand_after"] == 71.5 and sale["value"] == 370_500
    await inventory.move(coop, commodity="beras_medium", kind="spoilage", quantity="1.5")
    await inventory.move(
        coop, commodity="beras_medium", kind="adjustment", quantity="-2", reason="stock take"
    )
    line = (await inventory.stock(coop))["beras_medium"]
    assert line["on_hand"] == 68 and line["status"] == "ok" and line["last_sale_at"] is not None
    assert line["avg_daily_sales"] == pytest.approx(28.5 / 28, abs=0.001)
    assert line["days_of_cover"] == pytest.approx(68 * 28 / 28.5, abs=0.01)
    assert line["unit_cost"] == 12000 and line["value"] == 816_000
    valuation = (
        await inventory.client.get(f"/cooperatives/{coop}/valuation", headers=inventory.manager(coop))
    ).json()
    assert valuation["total_value"] == 816_000 and valuation["method"] == "average_cost"
    moved = await inventory.probe.wait_for(
        "stock.moved.v1", lambda e: e.data["cooperative_id"] == coop, count=4
    )
    first = next(e for e in moved if e.data["movement_id"] == receipt["id"])
    assert first.subject == coop and first.source == "/inventory"
    for name in (
        "kelurahan_code",
        "kecamatan_code",
        "commodity",
        "kind",
        "quantity",
        "unit",
        "on_hand_after",
    ):
        assert name in first.data
    assert first.data["reference"] == "SJ-1" and first.data["unit_price"] == 12000


async def test_movements_are_listed_newest_first_paged_and_filtered(inventory: Inventory) -> None:
    coop = await inventory.register()
    base = clock.now() - timedelta(days=5)
    await inventory.batch(
        coop,
        [
            {"commodity": "gula", "kind": "receipt", "quantity": 50, "occurred_at": base, "reference": "R1"},
            {
                "commodity": "telur",
                "kind": "receipt",
                "quantity": 20,
                "occurred_at": base + timedelta(hours=1),
            },
        ]
        + [
            {"commodity": "gula", "kind": "sale", "quantity": 1, "occurred_at": base + timedelta(days=d)}
            for d in (1, 2, 3)
        ],
    )
    url = f"/cooperatives/{coop}/movements"
    page = (await inventory.client.get(url, params={"limit": 2}, headers=inventory.manager(coop))).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    assert page["items"][0]["occurred_at"] > page["items"][1]["occurred_at"]
    sales = (await inventory.client.get(url, params={"kind": "sale"}, headers=inventory.headers())).json()
    assert sales["total"] == 3 and {m["kind"] for m in sales["items"]} == {"sale"}
    telur = (
        await inventory.client.get(url, params={"commodity": "telur"}, headers=inventory.headers())
    ).json()
    assert telur["total"] == 1
    since = (base + timedelta(days=1, hours=12)).isoformat()
    recent = (await inventory.client.get(url, params={"since": since}, headers=inventory.headers())).json()
    assert recent["total"] == 2
    one = telur["items"][0]
    got = await inventory.client.get(f"{url}/{one['id']}", headers=inventory.headers())
    assert got.status_code == 200 and got.json()["id"] == one["id"]
    assert_error(await inventory.client.get(url, params={"kind": "gift"}, headers=inventory.headers()), 422)


# --- access -----------------------------------------------------------------------------------------


async def test_access_rules(inventory: Inventory) -> None:
    mine = await inventory.register(KECAMATAN[0])
    theirs = await inventory.register(KECAMATAN[1])
    receipt = {"commodity": "gula", "kind": "receipt", "quantity": 5}
    client = inventory.client
    manager = inventory.manager(mine)
    assert (
        await client.post(f"/cooperatives/{mine}/movements", json=receipt, headers=manager)
    ).status_code == 201
    assert_error(await client.post(f"/cooperatives/{theirs}/movements", json=receipt, headers=manager), 403)
    assert_error(await client.get(f"/cooperatives/{theirs}/stock", headers=manager), 404)
    assert_error(await client.get(f"/cooperatives/{theirs}/movements", headers=manager), 404)
    unknown = str(uuid.uuid4())
    assert_error(await client.post(f"/cooperatives/{unknown}/movements", json=receipt, headers=manager), 403)
    assert_error(
        await client.post(f"/cooperatives/{unknown}/movements", json=receipt, headers=inventory.headers()),
        404,
    )
    officer = inventory.headers("officer", kecamatan_codes=[KECAMATAN[0]])
    assert (await client.get(f"/cooperatives/{mine}/stock", headers=officer)).status_code == 200
    assert_error(await client.get(f"/cooperatives/{theirs}/stock", headers=officer), 404)
    assert_error(await client.post(f"/cooperatives/{theirs}/movements", json=receipt, headers=officer), 403)
    city_officer = inventory.headers("officer")
    assert (await client.get(f"/cooperatives/{theirs}/stock", headers=city_officer)).status_code == 200
    supplier = inventory.headers("supplier", supplier_id="s1")
    assert_error(await client.get(f"/cooperatives/{mine}/stock", headers=supplier), 404)
    assert_error(await client.post(f"/cooperatives/{mine}/movements", json=receipt, headers=supplier), 403)
    assert_error(await client.get("/stock", headers=supplier), 403)
    assert_error(await client.post("/detections/run", json={}, headers=manager), 403)
    service = inventory.headers("service")
    assert (await client.post("/detections/run", json={}, headers=service)).status_code == 200
    assert (await client.get(f"/cooperatives/{mine}/stock", headers=service)).status_code == 200
    assert_error(await client.get(f"/cooperatives/{mine}/stock"), 401)
    assert_error(
        await client.get(f"/cooperatives/{mine}/stock", headers={"Authorization": "Bearer x.y.z"}), 401
    )
    scoped = (await client.get("/stock", headers=officer)).json()
    assert all(line["kecamatan_code"] == KECAMATAN[0] for line in scoped["items"])


# --- bad input --------------------------------------------------------------------------------------


async def test_bad_input_gets_4xx_naming_the_field(inventory: Inventory) -> None:
    coop = await inventory.register()
    url = f"/cooperatives/{coop}/movements"
    h = inventory.headers()
    future = (clock.now() + timedelta(hours=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"commodity": "gula", "kind": "receipt", "quantity": 0}, "quantity"),
        ({"commodity": "gula", "kind": "receipt", "quantity": -3}, "quantity"),
        ({"commodity": "gula", "kind": "receipt", "quantity": 1, "occurred_at": future}, "occurred_at"),
        ({"commodity": "gula", "kind": "receipt", "quantity": 1, "colour": "red"}, "colour"),
        ({"commodity": "gula", "kind": "adjustment", "quantity": 1}, "reason"),
        ({"commodity": "gula", "kind": "receipt", "quantity": 1, "unit_price": 1.5}, "unit_price"),
    ]
    for body, field in cases:
        error = assert_error(await inventory.client.post(url, json=body, headers=h), 422, "validation_error")
        assert any(d["field"] == field for d in error["details"]), (field, error)
        assert field in error["message"]
    unknown = await inventory.client.post(
        url, json={"commodity": "emas", "kind": "receipt", "quantity": 1}, headers=h
    )
    error = assert_error(unknown, 422, "unknown_commodity")
    assert error["details"][0]["field"] == "commodity"
    not_json = await inventory.client.post(
        url, content=b"{oops", headers={**h, "Content-Type": "application/json"}
    )
    assert_error(not_json, 422)
    too_many = [{"commodity": "gula", "kind": "receipt", "quantity": 1}] * 1001
    error = assert_error(
        await inventory.client.post(f"{url}/batch", json={"movements": too_many}, headers=h), 422
    )
    assert "movements" in error["message"]
    short = await inventory.client.post(
        url, json={"commodity": "gula", "kind": "sale", "quantity": 1}, headers=h
    )
    error = assert_error(short, 409, "insufficient_stock")
    assert error["details"][0]["on_hand"] == "0.000"


async def test_a_rejected_batch_applies_nothing(inventory: Inventory) -> None:
    coop = await inventory.register()
    await inventory.move(coop, commodity="gula", kind="receipt", quantity=10)
    batch = [
        {"commodity": "gula", "kind": "sale", "quantity": 4},
        {"commodity": "telur", "kind": "receipt", "quantity": 30},
        {"commodity": "gula", "kind": "sale", "quantity": 7},  # only 6 left by then
    ]
    response = await inventory.client.post(
        f"/cooperatives/{coop}/movements/batch", json={"movements": batch}, headers=inventory.headers()
    )
    error = assert_error(response, 409, "insufficient_stock")
    assert error["details"][0]["index"] == 2 and error["details"][0]["field"] == "movements.2.quantity"
    stock = await inventory.stock(coop)
    assert stock["gula"]["on_hand"] == 10 and "telur" not in stock
    listed = (
        await inventory.client.get(f"/cooperatives/{coop}/movements", headers=inventory.headers())
    ).json()
    assert listed["total"] == 1
    bad_item = [{"commodity": "gula", "kind": "sale", "quantity": 1}, {"commodity": "gula", "kind": "sale"}]
    error = assert_error(
        await inventory.client.post(
            f"/cooperatives/{coop}/movements/batch", json={"movements": bad_item}, headers=inventory.headers()
        ),
        422,
    )
    assert any(d["field"] == "movements.1.quantity" for d in error["details"])
    duplicate = [
        {"commodity": "gula", "kind": "receipt", "quantity": 1, "reference": "SJ-9"},
        {"commodity": "gula", "kind": "receipt", "quantity": 1, "reference": "SJ-9"},
    ]
    assert_error(
        await inventory.client.post(
            f"/cooperatives/{coop}/movements/batch",
            json={"movements": duplicate},
            headers=inventory.headers(),
        ),
        409,
        "duplicate_reference",
    )
    assert (await inventory.stock(coop))["gula"]["on_hand"] == 10


async def test_batch_applies_in_order(inventory: Inventory) -> None:
    coop = await inventory.register()
    start = clock.now() - timedelta(days=3)
    movements = [
        {
            "commodity": "beras_sphp",
            "kind": "receipt",
            "quantity": 500,
            "unit_price": 11000,
            "occurred_at": start,
        }
    ] + [
        {
            "commodity": "beras_sphp",
            "kind": "sale",
            "quantity": "0.5",
            "unit_price": 12500,
            "occurred_at": start + timedelta(minutes=i),
        }
        for i in range(1, 600)
    ]
    result = await inventory.batch(coop, movements)
    assert result["count"] == 600 and result["movements"][-1]["on_hand_after"] == 200.5
    assert (await inventory.stock(coop))["beras_sphp"]["on_hand"] == 200.5


# --- concurrency and retries ------------------------------------------------------------------------


async def test_racing_sales_for_the_last_units_one_winner_each(inventory: Inventory) -> None:
    coop = await inventory.register()
    await inventory.move(coop, commodity="minyakita", kind="receipt", quantity=3, unit_price=14000)
    sale = {"commodity": "minyakita", "kind": "sale", "quantity": 1, "unit_price": 15700}
    responses = await asyncio.gather(
        *(
            inventory.client.post(
                f"/cooperatives/{coop}/movements", json=sale, headers=inventory.manager(coop)
            )
            for _ in range(8)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [409] * 5, [r.text for r in responses]
    assert all(r.json()["error"]["code"] == "insufficient_stock" for r in responses if r.status_code == 409)
    assert (await inventory.stock(coop))["minyakita"]["on_hand"] == 0


async def test_idempotency_key_returns_the_first_result_without_a_second_effect(inventory: Inventory) -> None:
    coop = await inventory.register()
    url = f"/cooperatives/{coop}/movements"
    body = {"commodity": "gula", "kind": "receipt", "quantity": 12, "unit_price": 15000}
    headers = {**inventory.manager(coop), "Idempotency-Key": "sync-2026-11-28-001"}
    first, second = [await inventory.client.post(url, json=body, headers=headers) for _ in range(2)]
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second.headers.get("Idempotent-Replayed") == "true"
    racing = await asyncio.gather(
        *(
            inventory.client.post(url, json=body, headers={**headers, "Idempotency-Key": "race-1"})
            for _ in range(4)
        )
    )
    assert {r.status_code for r in racing} == {201} and len({r.json()["id"] for r in racing}) == 1
    assert (await inventory.stock(coop))["gula"]["on_hand"] == 24
    other = await inventory.client.post(url, json={**body, "quantity": 13}, headers=headers)
    assert_error(other, 409, "idempotency_key_reused")
    batch_headers = {**headers, "Idempotency-Key": "batch-1"}
    batch = {"movements": [{"commodity": "gula", "kind": "sale", "quantity": 2}]}
    one = await inventory.client.post(f"{url}/batch", json=batch, headers=batch_headers)
    two = await inventory.client.post(f"{url}/batch", json=batch, headers=batch_headers)
    assert one.status_code == two.status_code == 201 and one.json() == two.json()
    assert (await inventory.stock(coop))["gula"]["on_hand"] == 22
    listed = (await inventory.client.get(url, headers=headers)).json()
    assert listed["total"] == 3
