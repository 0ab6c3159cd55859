"""The contract's central promise, across real processes: one `stock.stalled.v1` independently leads
to the people concerned being notified, a redistribution proposal to a cooperative that needs the
stock, and the item on the department's stalled list; a sale ends the episode; an accepted proposal
moves the stock in inventory."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from kkmp_shared import clock
from kkmp_testkit.harness import EventProbe
from kkmp_testkit.processes import Platform
from kkmp_testkit.wait import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.clock]


def items(body: Any) -> list[dict[str, Any]]:
    return body["items"] if isinstance(body, dict) and "items" in body else body


async def test_stalled_stock_alerts_proposes_and_reports(
    platform: Platform, world: Any, probe: EventProbe
) -> None:
    kec = "35.78.09"  # Genteng
    stalled_kel, needing_kel, other_kel = world.kelurahan(kec, 3)
    a = world.cooperative(stalled_kel)
    b = world.cooperative(needing_kel)
    c = world.cooperative(other_kel)
    manager_a = world.user("coop_manager", cooperative_id=a["id"])
    manager_b = world.user("coop_manager", cooperative_id=b["id"])
    manager_c = world.user("coop_manager", cooperative_id=c["id"])
    officer_in = world.user("officer", kecamatan_codes=[kec])
    officer_out = world.user("officer", kecamatan_codes=["35.78.01"])
    inv, src, rep, notif = (platform.url(s) for s in ("inventory", "sourcing", "reporting", "notifications"))

    async with httpx.AsyncClient(timeout=30) as client:
        # Inventory learns the cooperatives from registry events, not from a call.
        await known(client, f"{inv}/cooperatives/{a['id']}/stock", world.auth(manager_a))
        await known(client, f"{inv}/cooperatives/{b['id']}/stock", world.auth(manager_b))
        twenty_days_ago = (clock.now() - timedelta(days=20)).isoformat()
        response = await client.post(
            f"{inv}/cooperatives/{a['id']}/movements",
            headers=world.auth(manager_a),
            json={
                "commodity": "telur",
                "kind": "receipt",
                "quantity": "120",
                "unit_price": 26000,
                "occurred_at": twenty_days_ago,
            },
        )
        assert response.status_code == 201, response.text
        # B needs telur: an open supply need.
        need_body = {
            "cooperative_id": b["id"],
            "kind": "supply",
            "commodity": "telur",
            "quantity": "50",
            "needed_by": (clock.now() + timedelta(days=10)).date().isoformat(),
            "description": "Butuh telur untuk UMKM kue",
        }

        async def post_need() -> httpx.Response | None:
            # Sourcing learns B from registry events; until then it answers 404 and nothing is stored.
            r = await client.post(f"{src}/needs", headers=world.auth(manager_b), json=need_body)
            return None if r.status_code == 404 else r

        need = await eventually(post_need, timeout=30)
        assert need.status_code == 201, need.text

        run = await client.post(f"{inv}/detections/run", headers=world.auth(officer_in), json={})
        assert run.status_code == 200, run.text
        [stalled] = await probe.wait_for("stock.stalled.v1", lambda e: e.data["cooperative_id"] == a["id"])
        data = stalled.data
        assert data["commodity"] == "telur" and data["kecamatan_code"] == kec
        assert data["kelurahan_code"] == stalled_kel["code"]
        assert float(data["on_hand"]) == 120 and data["days_since_sale"] >= 19
        assert data["value"] == 120 * 26000 and data["unit"] and "last_sale_at" in data
        assert stalled.subject == a["id"] and stalled.source == "/inventory"

        # A second scan announces nothing new.
        await client.post(f"{inv}/detections/run", headers=world.auth(officer_in), json={})

        async def inbox_has(user: dict[str, str]) -> bool:
            r = await client.get(f"{notif}/me/notifications", headers=world.auth(user))
            assert r.status_code == 200, r.text
            return any(
                n["event_type"].startswith("stock.stalled") and n.get("cooperative_id") == a["id"]
                for n in items(r.json())
            )

        assert await eventually(lambda: inbox_has(manager_a), timeout=30)
        assert await eventually(lambda: inbox_has(officer_in), timeout=30)

        async def proposals() -> list[dict[str, Any]]:
            r = await client.get(
                f"{src}/redistributions", params={"commodity": "telur"}, headers=world.auth(officer_in)
            )
            assert r.status_code == 200, r.text
            return [
                p
                for p in items(r.json())
                if p["from_cooperative_id"] == a["id"] and p["to_cooperative_id"] == b["id"]
            ]

        [proposal] = await eventually(proposals, timeout=30)
        assert proposal["status"] in ("proposed", "open", "pending")
        assert float(proposal["quantity"]) > 0 and proposal["distance_km"] >= 0

        async def on_stalled_list() -> list[dict[str, Any]]:
            r = await client.get(f"{rep}/stalled", headers=world.auth(officer_in))
            assert r.status_code == 200, r.text
            return [
                s for s in items(r.json()) if s["cooperative_id"] == a["id"] and s["commodity"] == "telur"
            ]

        [row] = await eventually(on_stalled_list, timeout=30)
        assert float(row["on_hand"]) == 120 and row["value"] == 120 * 26000

        # Nobody else heard of it: not the other cooperative's manager, not the officer of another kecamatan.
        assert not await inbox_has(manager_c)
        assert not await inbox_has(officer_out)
        assert len(probe.of_type("stock.stalled.v1")) == 1

        # Both managers accept: inventory records the transfer out of A and into B (through events).
        for manager in (manager_a, manager_b):
            r = await client.post(
                f"{src}/redistributions/{proposal['id']}/accept", headers=world.auth(manager), json={}
            )
            assert r.status_code == 200, r.text
        await probe.wait_for("redistribution.accepted.v1", lambda e: e.data["proposal_id"] == proposal["id"])

        async def moved() -> bool:
            kinds = {
                e.data["kind"]
                for e in probe.of_type("stock.moved.v1")
                if e.data.get("reference") == proposal["id"]
            }
            return {"transfer_out", "transfer_in"} <= kinds

        assert await eventually(moved, timeout=30)
        stock_b = (
            await client.get(f"{inv}/cooperatives/{b['id']}/stock", headers=world.auth(manager_b))
        ).json()
        assert any(s["commodity"] == "telur" and float(s["on_hand"]) > 0 for s in stock_b)


async def test_a_sale_ends_the_stall_episode(platform: Platform, world: Any, probe: EventProbe) -> None:
    [kel] = world.kelurahan("35.78.10", 1)
    coop = world.cooperative(kel)
    manager = world.user("coop_manager", cooperative_id=coop["id"])
    inv = platform.url("inventory")
    async with httpx.AsyncClient(timeout=30) as client:
        await known(client, f"{inv}/cooperatives/{coop['id']}/stock", world.auth(manager))
        r = await client.post(
            f"{inv}/cooperatives/{coop['id']}/movements",
            headers=world.auth(manager),
            json={
                "commodity": "gula",
                "kind": "receipt",
                "quantity": "30",
                "unit_price": 15000,
                "occurred_at": (clock.now() - timedelta(days=25)).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        await client.post(f"{inv}/detections/run", headers=world.admin, json={})
        await probe.wait_for("stock.stalled.v1", lambda e: e.data["cooperative_id"] == coop["id"])
        r = await client.post(
            f"{inv}/cooperatives/{coop['id']}/movements",
            headers=world.auth(manager),
            json={"commodity": "gula", "kind": "sale", "quantity": "2", "unit_price": 17000},
        )
        assert r.status_code == 201, r.text
        [recovered] = await probe.wait_for(
            "stock.recovered.v1", lambda e: e.data["cooperative_id"] == coop["id"]
        )
        assert recovered.data["condition"] == "stalled" and recovered.data["commodity"] == "gula"


async def known(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    """Wait until a service answers 200 for a cooperative it learns of through events."""

    async def ok() -> bool:
        return (await client.get(url, headers=headers)).status_code == 200

    await eventually(ok, timeout=30, message=f"{url} known")
