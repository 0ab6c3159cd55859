"""The registry's own business over HTTP, on SQLite and PostgreSQL with the real broker: regions,
cooperatives and their lifecycle, boards, members, potentials, trainings and the import, with the
events each change publishes (seen on the broker in the contract's CloudEvents envelope)."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kkmp_shared import clock
from kkmp_shared.events.contracts import EVENT_MODELS
from kkmp_shared.events.envelope import CloudEvent
from kkmp_testkit.asserts import assert_error
from openpyxl import Workbook
from sqlalchemy import func, select

pytestmark = [pytest.mark.integration, pytest.mark.clock]


def assert_envelope(event: CloudEvent, subject: str | None) -> None:
    """The contract's envelope: CloudEvents 1.0, source /registry, data valid for its type."""
    assert event.specversion == "1.0"
    assert event.source == "/registry"
    assert event.datacontenttype == "application/json"
    assert event.subject == subject
    assert event.traceparent, "the trace context travels with the event"
    uuid.UUID(event.id)
    assert event.time.tzinfo is not None
    EVENT_MODELS[event.type].model_validate(event.data)


# --- regions ------------------------------------------------------------------------------------


async def test_regions_are_the_31_kecamatan_and_153_kelurahan_of_surabaya(registry: Any) -> None:
    kecamatan = (await registry.client.get("/regions/kecamatan")).json()
    assert len(kecamatan) == 31
    assert kecamatan[0] == {
        "code": "35.78.01",
        "name": "Karang Pilang",
        "lat": pytest.approx(-7.335, abs=0.01),
        "lon": pytest.approx(112.687, abs=0.01),
    }
    kelurahan = (await registry.client.get("/regions/kelurahan")).json()
    assert len(kelurahan) == 153
    assert {"code", "name", "kecamatan_code", "lat", "lon"} <= set(kelurahan[0])
    perak = next(k for k in kelurahan if k["code"] == "35.78.12.1006")
    assert perak["name"] == "Tanjung Perak" and perak["lat"] is not None
    tandes = (await registry.client.get("/regions/kelurahan", params={"kecamatan_code": "35.78.14"})).json()
    assert [k["code"][-4:] for k in tandes] == ["1002", "1006", "1007", "1009", "1011", "1012"]
    assert (await registry.client.get("/regions/summary")).json() == {"kecamatan": 31, "kelurahan": 153}
    assert_error(await registry.client.get("/regions/kelurahan", params={"kecamatan_code": "x' OR 1=1"}), 422)


# --- cooperatives -------------------------------------------------------------------------------


async def test_registering_a_cooperative_publishes_it_and_a_second_for_the_kelurahan_is_409(
    registry: Any,
) -> None:
    code = registry.take_kelurahan("35.78.03")
    body = {
        "name": "KKMP Wonorejo Rungkut",
        "kelurahan_code": code,
        "formation": "revitalized",
        "deed": {"number": "AHU-0001234.AH.01.29", "date": "2025-07-10", "notary": "Notaris Sri Wahyuni"},
        "business_units": ["sembako", "lpg", "sembako", "others"],
        "address": "Jl. Wonorejo 1",
    }
    response = await registry.client.post("/cooperatives", json=body, headers=registry.admin)
    assert response.status_code == 201, response.text
    coop = response.json()
    assert coop["status"] == "formed" and coop["member_count"] == 0 and coop["board"] == []
    assert coop["kelurahan_code"] == code and coop["kecamatan_code"] == "35.78.03"
    assert coop["business_units"] == ["sembako", "lpg", "others"]  # duplicates dropped
    assert coop["deed"] == {
        "number": "AHU-0001234.AH.01.29",
        "date": "2025-07-10",
        "notary": "Notaris Sri Wahyuni",
    }
    assert coop["lat"] is not None and datetime.fromisoformat(coop["created_at"]).tzinfo is not None
    assert (await registry.client.get(f"/cooperatives/{coop['id']}", headers=registry.admin)).json() == coop

    [event] = await registry.probe.wait_for(
        "cooperative.registered.v1", lambda e: e.data["cooperative_id"] == coop["id"]
    )
    assert_envelope(event, coop["id"])
    assert event.data["kelurahan_code"] == code and event.data["kecamatan_code"] == "35.78.03"
    assert event.data["formation"] == "revitalized" and event.data["status"] == "formed"
    assert event.data["lat"] == coop["lat"]

    again = await registry.client.post(
        "/cooperatives", json={**body, "name": "KKMP Kedua"}, headers=registry.admin
    )
    assert_error(again, 409, "kelurahan_taken")
    unknown = await registry.client.post(
        "/cooperatives", json={**body, "kelurahan_code": "35.78.14.1003"}, headers=registry.admin
    )  # Tandes has no 1003: the numbering gap is real
    error = assert_error(unknown, 422, "unknown_kelurahan")
    assert error["details"][0]["field"] == "kelurahan_code"


async def test_only_an_admin_registers_and_privileged_fields_are_refused(registry: Any) -> None:
    code = registry.take_kelurahan()
    body = {"name": "KKMP Uji", "kelurahan_code": code, "formation": "new"}
    for headers in (registry.officer(), registry.headers("service"), registry.manager(str(uuid.uuid4()))):
        assert_error(await registry.client.post("/cooperatives", json=body, headers=headers), 403)
    assert_error(await registry.client.post("/cooperatives", json=body), 401)
    for extra in ({"id": str(uuid.uuid4())}, {"status": "operating"}, {"member_count": 500}, {"owner": "x"}):
        error = assert_error(
            await registry.client.post("/cooperatives", json={**body, **extra}, headers=registry.admin), 422
        )
        assert error["details"][0]["field"] == next(iter(extra))
    registered = await registry.client.post("/cooperatives", json=body, headers=registry.admin)
    assert registered.status_code == 201 and registered.json()["status"] == "formed"


async def test_the_status_lifecycle_allows_only_its_transitions_and_keeps_who_and_when(registry: Any) -> None:
    coop = await registry.create_cooperative("35.78.05")
    officer_id = str(uuid.uuid4())
    officer = registry.headers("officer", sub=officer_id, kecamatan_codes=["35.78.05"])
    path = f"/cooperatives/{coop['id']}"

    error = assert_error(
        await registry.client.patch(path, json={"status": "suspended"}, headers=officer), 409
    )
    assert error["code"] == "illegal_status_change" and error["details"] == {
        "from": "formed",
        "to": "suspended",
    }
    before = clock.now()
    operating = await registry.client.patch(
        path, json={"status": "operating", "status_reason": "gerai dibuka"}, headers=officer
    )
    assert operating.status_code == 200 and operating.json()["status"] == "operating"
    [event] = await registry.probe.wait_for(
        "cooperative.updated.v1",
        lambda e: e.data["cooperative_id"] == coop["id"] and e.data["status"] == "operating",
    )
    assert_envelope(event, coop["id"])
    assert event.data["changed"] == ["status"]
    for step in ("suspended", "operating", "suspended", "dissolved"):
        response = await registry.client.patch(path, json={"status": step}, headers=registry.admin)
        assert response.status_code == 200, response.text
    for step in ("operating", "formed", "suspended"):
        assert_error(await registry.client.patch(path, json={"status": step}, headers=registry.admin), 409)
    assert_error(await registry.client.patch(path, json={"status": "bankrupt"}, headers=registry.admin), 422)

    history = (await registry.client.get(f"{path}/status-history", headers=officer)).json()
    assert [(h["old_status"], h["new_status"]) for h in history] == [
        (None, "formed"),
        ("formed", "operating"),
        ("operating", "suspended"),
        ("suspended", "operating"),
        ("operating", "suspended"),
        ("suspended", "dissolved"),
    ]
    assert history[1]["changed_by"] == officer_id and history[1]["reason"] == "gerai dibuka"
    changed_at = datetime.fromisoformat(history[1]["changed_at"])
    assert before - timedelta(seconds=5) <= changed_at <= clock.now()
    assert all(h["changed_by"] for h in history)
    assert [datetime.fromisoformat(h["changed_at"]) for h in history] == sorted(
        datetime.fromisoformat(h["changed_at"]) for h in history
    )
    # A dissolved KKMP takes no members.
    assert_error(
        await registry.client.post(
            f"{path}/members", json={"name": "Warga", "kind": "resident"}, headers=officer
        ),
        409,
        "cooperative_dissolved",
    )


async def test_who_may_change_which_fields(registry: Any) -> None:
    coop = await registry.create_cooperative("35.78.06")
    path = f"/cooperatives/{coop['id']}"
    manager = registry.manager(coop["id"])
    ok = await registry.client.patch(
        path, json={"business_units": ["sembako", "apotek"], "phone": "031-555"}, headers=manager
    )
    assert ok.status_code == 200 and ok.json()["business_units"] == ["sembako", "apotek"]
    [event] = await registry.probe.wait_for(
        "cooperative.updated.v1", lambda e: e.data["cooperative_id"] == coop["id"]
    )
    assert event.data["changed"] == ["business_units", "phone"]
    for field, value in (("status", "operating"), ("name", "KKMP Baru"), ("formation", "revitalized")):
        error = assert_error(await registry.client.patch(path, json={field: value}, headers=manager), 403)
        assert field in error["message"]
    officer = registry.officer("35.78.06")
    assert_error(await registry.client.patch(path, json={"name": "KKMP Lain"}, headers=officer), 403)
    renamed = await registry.client.patch(
        path,
        json={
            "name": "KKMP Ganti Nama",
            "deed": {"number": "AHU-9", "date": "2025-08-01", "notary": "Notaris B"},
        },
        headers=registry.admin,
    )
    assert renamed.json()["name"] == "KKMP Ganti Nama" and renamed.json()["deed"]["number"] == "AHU-9"
    assert_error(await registry.client.patch(path, json={"name": None}, headers=registry.admin), 422)
    assert_error(
        await registry.client.patch(path, json={"id": str(uuid.uuid4())}, headers=registry.admin), 422
    )
    assert_error(await registry.client.patch(path, json={"member_count": 9}, headers=registry.admin), 422)
    unchanged = await registry.client.patch(path, json={}, headers=registry.admin)
    assert unchanged.status_code == 200 and unchanged.json()["name"] == "KKMP Ganti Nama"


async def test_listing_filters_pages_and_searches(registry: Any) -> None:
    first = await registry.create_cooperative("35.78.07", name="KKMP Pencarian_Unik 100%")
    await registry.create_cooperative("35.78.07")
    await registry.client.patch(
        f"/cooperatives/{first['id']}", json={"status": "operating"}, headers=registry.admin
    )
    listed = (
        await registry.client.get(
            "/cooperatives", params={"kecamatan_code": "35.78.07"}, headers=registry.admin
        )
    ).json()
    assert listed["total"] == 2 and len(listed["items"]) == 2
    assert all(c["kecamatan_code"] == "35.78.07" for c in listed["items"])
    operating = (
        await registry.client.get(
            "/cooperatives",
            params={"kecamatan_code": "35.78.07", "status": "operating"},
            headers=registry.admin,
        )
    ).json()
    assert [c["id"] for c in operating["items"]] == [first["id"]]
    found = (
        await registry.client.get(
            "/cooperatives", params={"q": "pencarian_unik 100%"}, headers=registry.admin
        )
    ).json()
    assert [c["id"] for c in found["items"]] == [first["id"]]
    # '%' and '_' are searched for literally, not as wildcards.
    assert (await registry.client.get("/cooperatives", params={"q": "%_%_%"}, headers=registry.admin)).json()[
        "total"
    ] == 0
    paged = (
        await registry.client.get("/cooperatives", params={"limit": 1, "offset": 1}, headers=registry.admin)
    ).json()
    assert len(paged["items"]) == 1 and paged["total"] >= 2 and paged["limit"] == 1 and paged["offset"] == 1
    clamped = (
        await registry.client.get("/cooperatives", params={"limit": 100000}, headers=registry.admin)
    ).json()
    assert clamped["limit"] == 500
    assert_error(
        await registry.client.get("/cooperatives", params={"status": "bankrupt"}, headers=registry.admin), 422
    )
    assert_error(await registry.client.get("/cooperatives", params={"limit": 0}, headers=registry.admin), 422)


async def test_a_batch_registers_all_or_none(registry: Any) -> None:
    codes = [registry.take_kelurahan() for _ in range(3)]
    taken = (await registry.create_cooperative())["kelurahan_code"]
    items = [
        {"name": f"KKMP Batch {i}", "kelurahan_code": c, "formation": "new"} for i, c in enumerate(codes)
    ]
    bad = await registry.client.post(
        "/cooperatives/batch",
        json={
            "cooperatives": [
                *items,
                {"name": "KKMP Taken", "kelurahan_code": taken, "formation": "new"},
                {"name": "KKMP Dup", "kelurahan_code": codes[0], "formation": "new"},
            ]
        },
        headers=registry.admin,
    )
    error = assert_error(bad, 422, "batch_rejected")
    assert {(d["field"], d["type"]) for d in error["details"]} == {
        ("cooperatives.3.kelurahan_code", "kelurahan_taken"),
        ("cooperatives.4.kelurahan_code", "duplicate_kelurahan"),
    }
    listed = await registry.client.get("/cooperatives", params={"q": "KKMP Batch"}, headers=registry.admin)
    assert listed.json()["total"] == 0
    only_taken = await registry.client.post(
        "/cooperatives/batch",
        json={"cooperatives": [{"name": "KKMP Taken", "kelurahan_code": taken, "formation": "new"}]},
        headers=registry.admin,
    )
    assert_error(only_taken, 409, "batch_conflict")
    registered_at = "2025-07-21T09:00:00+07:00"
    good = await registry.client.post(
        "/cooperatives/batch",
        json={"cooperatives": [{**i, "registered_at": registered_at} for i in items]},
        headers=registry.admin,
    )
    assert good.status_code == 201, good.text
    assert good.json()["imported"] == 3
    events = await registry.probe.wait_for(
        "cooperative.registered.v1", lambda e: e.data["cooperative_id"] in good.json()["ids"], count=3
    )
    assert {datetime.fromisoformat(e.data["registered_at"]) for e in events} == {
        datetime(2025, 7, 21, 2, 0, tzinfo=UTC)
    }
    coop = (
        await registry.client.get(f"/cooperatives/{good.json()['ids'][0]}", headers=registry.admin)
    ).json()
    assert datetime.fromisoformat(coop["created_at"]) == datetime(2025, 7, 21, 2, 0, tzinfo=UTC)
    future = (clock.now() + timedelta(days=2)).isoformat()
    code = registry.take_kelurahan()
    assert_error(
        await registry.client.post(
            "/cooperatives",
            json={
                "name": "KKMP Masa Depan",
                "kelurahan_code": code,
                "formation": "new",
                "registered_at": future,
            },
            headers=registry.admin,
        ),
        422,
    )


# --- board --------------------------------------------------------------------------------------


async def test_the_board_is_replaced_as_a_whole_and_checked(registry: Any) -> None:
    coop = await registry.create_cooperative()
    path = f"/cooperatives/{coop['id']}/board"
    manager = registry.manager(coop["id"])
    board = {
        "members": [
            {"name": "Rina Kusuma", "position": "pengawas"},
            {"name": "Siti Aminah", "position": "ketua", "phone": "0812-1", "since": "2025-07-10"},
            {"name": "Agus Salim", "position": "bendahara"},
            {"name": "Budi Santoso", "position": "Wakil Ketua"},
            {"name": "Dewi Lestari", "position": "sekretaris"},
            {"name": "Hadi Wijaya", "position": "pengawas_ketua"},
        ]
    }
    response = await registry.client.put(path, json=board, headers=manager)
    assert response.status_code == 200, response.text
    saved = response.json()["board"]
    assert [m["position"] for m in saved] == [
        "ketua", "wakil_ketua", "sekretaris", "bendahara", "pengawas_ketua", "pengawas",
    ]  # fmt: skip
    assert saved[0]["name"] == "Siti Aminah" and saved[0]["since"] == "2025-07-10" and saved[0]["id"]
    [event] = await registry.probe.wait_for(
        "cooperative.updated.v1",
        lambda e: e.data["cooperative_id"] == coop["id"] and "board" in e.data["changed"],
    )
    assert_envelope(event, coop["id"])

    two_ketua = {"members": [{"name": "A Satu", "position": "ketua"}, {"name": "B Dua", "position": "ketua"}]}
    error = assert_error(
        await registry.client.put(path, json=two_ketua, headers=manager), 422, "invalid_board"
    )
    assert "one seat" in error["message"]
    no_ketua = {"members": [{"name": "A Satu", "position": "sekretaris"}]}
    assert_error(await registry.client.put(path, json=no_ketua, headers=manager), 422, "invalid_board")
    two_pengawas_ketua = {
        "members": [
            {"name": "A Satu", "position": "ketua"},
            {"name": "B Dua", "position": "pengawas_ketua"},
            {"name": "C Tiga", "position": "Pengawas Ketua"},
        ]
    }
    assert_error(
        await registry.client.put(path, json=two_pengawas_ketua, headers=manager), 422, "invalid_board"
    )
    assert_error(
        await registry.client.put(
            path, json={"members": [{"name": "A", "position": "raja"}]}, headers=manager
        ),
        422,
    )
    # The refused boards changed nothing.
    current = (await registry.client.get(f"/cooperatives/{coop['id']}", headers=manager)).json()
    assert len(current["board"]) == 6
    cleared = await registry.client.put(path, json={"members": []}, headers=registry.admin)
    assert cleared.json()["board"] == []


# --- members ------------------------------------------------------------------------------------


async def test_members_join_as_residents_or_umkm_and_are_announced(registry: Any) -> None:
    coop = await registry.create_cooperative()
    path = f"/cooperatives/{coop['id']}/members"
    manager = registry.manager(coop["id"])
    resident = await registry.client.post(
        path, json={"name": "Ibu Sumarni", "kind": "resident"}, headers=manager
    )
    assert resident.status_code == 201, resident.text
    assert resident.json()["business"] is None and resident.json()["cooperative_id"] == coop["id"]
    umkm_body = {
        "name": "Warung Bu Tini",
        "kind": "umkm",
        "business": {"sector": "kuliner", "products": ["nasi pecel", "rawon"]},
    }
    umkm = await registry.client.post(path, json=umkm_body, headers=manager)
    assert umkm.status_code == 201 and umkm.json()["business"] == umkm_body["business"]
    error = assert_error(
        await registry.client.post(path, json={"name": "UMKM Tanpa Usaha", "kind": "umkm"}, headers=manager),
        422,
    )
    assert error["details"][0]["field"] == "business"
    assert_error(
        await registry.client.post(path, json={"name": "X Y", "kind": "tourist"}, headers=manager), 422
    )

    joined = await registry.probe.wait_for(
        "member.joined.v1", lambda e: e.data["cooperative_id"] == coop["id"], count=2
    )
    by_id = {e.data["member_id"]: e for e in joined}
    assert_envelope(by_id[umkm.json()["id"]], coop["id"])
    assert by_id[umkm.json()["id"]].data["kind"] == "umkm"
    assert by_id[umkm.json()["id"]].data["sector"] == "kuliner"
    assert by_id[umkm.json()["id"]].data["products"] == ["nasi pecel", "rawon"]
    assert sorted(e.data["member_count"] for e in joined) == [1, 2]
    assert by_id[resident.json()["id"]].data["kelurahan_code"] == coop["kelurahan_code"]

    listed = (await registry.client.get(path, headers=manager)).json()
    assert listed["total"] == 2 and [m["name"] for m in listed["items"]] == ["Ibu Sumarni", "Warung Bu Tini"]
    only_umkm = (await registry.client.get(path, params={"kind": "umkm"}, headers=manager)).json()
    assert [m["id"] for m in only_umkm["items"]] == [umkm.json()["id"]]
    assert (await registry.client.get(f"/cooperatives/{coop['id']}", headers=manager)).json()[
        "member_count"
    ] == 2


async def test_a_register_of_members_is_added_in_one_call_all_or_none(registry: Any) -> None:
    coop = await registry.create_cooperative()
    path = f"/cooperatives/{coop['id']}/members/batch"
    joined_at = (clock.now() - timedelta(days=60)).replace(microsecond=0)
    members = [
        {"name": f"Warga {i:03d}", "kind": "resident", "joined_at": joined_at.isoformat()} for i in range(150)
    ] + [
        {"name": "Toko Kelontong", "kind": "umkm", "business": {"sector": "retail", "products": ["sembako"]}}
    ]
    bad = await registry.client.post(
        path, json={"members": [*members, {"name": "UMKM Kosong", "kind": "umkm"}]}, headers=registry.admin
    )
    error = assert_error(bad, 422)
    assert error["details"][0]["field"] == "members.151.business"
    assert (await registry.client.get(f"/cooperatives/{coop['id']}", headers=registry.admin)).json()[
        "member_count"
    ] == 0
    response = await registry.client.post(path, json={"members": members}, headers=registry.admin)
    assert response.status_code == 201, response.text
    assert response.json()["member_count"] == 151 and len(response.json()["items"]) == 151
    assert datetime.fromisoformat(response.json()["items"][0]["joined_at"]) == joined_at
    events = await registry.probe.wait_for(
        "member.joined.v1", lambda e: e.data["cooperative_id"] == coop["id"], count=151
    )
    assert sorted(e.data["member_count"] for e in events) == list(range(1, 152))
    page = (
        await registry.client.get(
            f"/cooperatives/{coop['id']}/members", params={"limit": 50, "offset": 100}, headers=registry.admin
        )
    ).json()
    assert page["total"] == 151 and len(page["items"]) == 50
    assert_error(await registry.client.post(path, json={"members": []}, headers=registry.admin), 422)
    too_many = {"members": [{"name": "Warga X", "kind": "resident"}] * 1001}
    assert_error(await registry.client.post(path, json=too_many, headers=registry.admin), 422)


# --- potentials ---------------------------------------------------------------------------------


async def test_potentials_are_mapped_per_kelurahan_and_announced(registry: Any) -> None:
    coop = await registry.create_cooperative("35.78.08")
    code = coop["kelurahan_code"]
    manager = registry.manager(coop["id"])
    body = {"sector": "perikanan", "description": "Budidaya lele di lahan RW 3", "priority": 2}
    created = await registry.client.post(f"/kelurahan/{code}/potentials", json=body, headers=manager)
    assert created.status_code == 201, created.text
    potential = created.json()
    assert potential["cooperative_id"] == coop["id"] and potential["kecamatan_code"] == "35.78.08"
    [event] = await registry.probe.wait_for(
        "potential.mapped.v1", lambda e: e.data["potential_id"] == potential["id"]
    )
    assert_envelope(event, coop["id"])
    assert event.data["sector"] == "perikanan" and event.data["priority"] == 2
    assert event.data["kelurahan_code"] == code and event.data["cooperative_id"] == coop["id"]

    # A kelurahan with no KKMP yet can be mapped by an officer; the event then has no subject.
    bare = registry.take_kelurahan("35.78.08")
    officer = registry.officer("35.78.08")
    mapped = await registry.client.post(
        f"/kelurahan/{bare}/potentials", json={**body, "priority": 1, "sector": "kerajinan"}, headers=officer
    )
    assert mapped.status_code == 201 and mapped.json()["cooperative_id"] is None
    [bare_event] = await registry.probe.wait_for(
        "potential.mapped.v1", lambda e: e.data["potential_id"] == mapped.json()["id"]
    )
    assert bare_event.subject is None and bare_event.data["kecamatan_code"] == "35.78.08"

    listed = (await registry.client.get(f"/kelurahan/{code}/potentials", headers=manager)).json()
    assert [p["id"] for p in listed] == [potential["id"]]
    in_kecamatan = (
        await registry.client.get("/potentials", params={"kecamatan_code": "35.78.08"}, headers=officer)
    ).json()
    assert {p["id"] for p in in_kecamatan["items"]} == {potential["id"], mapped.json()["id"]}
    assert in_kecamatan["total"] == 2
    by_sector = (
        await registry.client.get("/potentials", params={"sector": "KERAJINAN"}, headers=officer)
    ).json()
    assert [p["id"] for p in by_sector["items"]] == [mapped.json()["id"]]
    own = (await registry.client.get("/potentials", headers=manager)).json()
    assert [p["id"] for p in own["items"]] == [potential["id"]]
    for bad in (
        {**body, "priority": 0},
        {**body, "priority": 6},
        {**body, "description": ""},
        {"sector": "x"},
    ):
        assert_error(
            await registry.client.post(f"/kelurahan/{code}/potentials", json=bad, headers=manager), 422
        )
    assert_error(
        await registry.client.post("/kelurahan/35.78.14.1003/potentials", json=body, headers=registry.admin),
        404,
    )
    assert_error(await registry.client.get("/kelurahan/not-a-code/potentials", headers=registry.admin), 404)


# --- trainings ----------------------------------------------------------------------------------


async def test_a_training_with_participants_completes_with_one_event_per_cooperative(registry: Any) -> None:
    first = await registry.create_cooperative("35.78.09")
    second = await registry.create_cooperative("35.78.09")
    absent = await registry.create_cooperative("35.78.09")
    officer = registry.officer("35.78.09")
    planned = await registry.client.post(
        "/trainings",
        json={
            "title": "Pembukuan Koperasi",
            "topic": "akuntansi",
            "kecamatan_code": "35.78.09",
            "starts_on": (clock.today(clock.WIB) - timedelta(days=3)).isoformat(),
            "ends_on": (clock.today(clock.WIB) - timedelta(days=2)).isoformat(),
            "location": "Balai RW",
        },
        headers=officer,
    )
    assert planned.status_code == 201, planned.text
    training = planned.json()
    assert training["status"] == "planned" and training["participants"] == []
    path = f"/trainings/{training['id']}"

    own = await registry.client.post(
        f"{path}/participants",
        json={
            "participants": [
                {"cooperative_id": first["id"], "name": "Siti Aminah", "role": "ketua"},
                {"cooperative_id": first["id"], "name": "Agus Salim", "role": "bendahara"},
            ]
        },
        headers=registry.manager(first["id"]),
    )
    assert own.status_code == 201, own.text
    assert len(own.json()["participants"]) == 2
    others = await registry.client.post(
        f"{path}/participants",
        json={
            "participants": [
                {"cooperative_id": second["id"], "name": "Dewi Lestari"},
                {"cooperative_id": absent["id"], "name": "Tidak Hadir"},
            ]
        },
        headers=officer,
    )
    assert others.status_code == 201
    participants = {p["name"]: p for p in others.json()["participants"]}
    assert len(participants) == 4
    # A manager sees only its own people.
    seen = (await registry.client.get(path, headers=registry.manager(second["id"]))).json()
    assert [p["name"] for p in seen["participants"]] == ["Dewi Lestari"]
    duplicate = await registry.client.post(
        f"{path}/participants",
        json={"participants": [{"cooperative_id": second["id"], "name": "Dewi Lestari"}]},
        headers=officer,
    )
    assert_error(duplicate, 409, "duplicate_participant")
    unknown = await registry.client.post(
        f"{path}/participants",
        json={"participants": [{"cooperative_id": str(uuid.uuid4()), "name": "Siapa Ini"}]},
        headers=officer,
    )
    assert_error(unknown, 422)

    attended = [participants[n]["id"] for n in ("Siti Aminah", "Agus Salim", "Dewi Lestari")]
    completed_at = clock.now().replace(microsecond=0) - timedelta(days=2)
    assert_error(
        await registry.client.post(f"{path}/complete", json={}, headers=registry.manager(first["id"])), 403
    )
    done = await registry.client.post(
        f"{path}/complete",
        json={"attended": attended, "completed_at": completed_at.isoformat()},
        headers=officer,
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert datetime.fromisoformat(done.json()["completed_at"]) == completed_at
    assert {p["name"]: p["attended"] for p in done.json()["participants"]} == {
        "Siti Aminah": True, "Agus Salim": True, "Dewi Lestari": True, "Tidak Hadir": False,
    }  # fmt: skip
    events = await registry.probe.wait_for(
        "training.completed.v1", lambda e: e.data["training_id"] == training["id"], count=2
    )
    assert {e.data["cooperative_id"]: e.data["participants"] for e in events} == {
        first["id"]: 2,
        second["id"]: 1,
    }
    for event in events:
        assert_envelope(event, event.data["cooperative_id"])
        assert event.data["title"] == "Pembukuan Koperasi" and event.data["topic"] == "akuntansi"
        assert event.data["kecamatan_code"] == "35.78.09"
    assert not [
        e for e in registry.probe.of_type("training.completed.v1") if e.data["cooperative_id"] == absent["id"]
    ]

    assert_error(await registry.client.post(f"{path}/complete", headers=officer), 409, "training_completed")
    late = await registry.client.post(
        f"{path}/participants",
        json={"participants": [{"cooperative_id": second["id"], "name": "Terlambat"}]},
        headers=officer,
    )
    assert_error(late, 409, "training_completed")
    for_first = (
        await registry.client.get(
            "/trainings", params={"cooperative_id": first["id"]}, headers=registry.manager(first["id"])
        )
    ).json()
    assert [t["id"] for t in for_first] == [training["id"]]
    assert {p["cooperative_id"] for p in for_first[0]["participants"]} == {first["id"]}
    completed = (
        await registry.client.get("/trainings", params={"status": "completed"}, headers=officer)
    ).json()
    assert training["id"] in [t["id"] for t in completed]


async def test_training_rules_on_dates_scope_and_attendance(registry: Any) -> None:
    officer = registry.officer("35.78.10")
    starts = clock.today(clock.WIB).isoformat()
    body = {"title": "Manajemen Gerai", "topic": "ritel", "kecamatan_code": "35.78.10", "starts_on": starts}
    assert_error(
        await registry.client.post("/trainings", json={**body, "ends_on": "2020-01-01"}, headers=officer), 422
    )
    assert_error(
        await registry.client.post(
            "/trainings", json={**body, "kecamatan_code": "35.78.11"}, headers=officer
        ),
        403,
    )
    assert_error(
        await registry.client.post("/trainings", json={**body, "kecamatan_code": None}, headers=officer), 403
    )
    assert_error(
        await registry.client.post(
            "/trainings", json={**body, "kecamatan_code": "35.78.99"}, headers=registry.admin
        ),
        422,
    )
    assert_error(
        await registry.client.post("/trainings", json=body, headers=registry.manager(str(uuid.uuid4()))), 403
    )
    city_wide = await registry.client.post(
        "/trainings", json={**body, "kecamatan_code": None}, headers=registry.officer()
    )
    assert city_wide.status_code == 201
    # A scoped officer does not close a city-wide training.
    assert_error(
        await registry.client.post(f"/trainings/{city_wide.json()['id']}/complete", headers=officer), 403
    )
    training = (await registry.client.post("/trainings", json=body, headers=officer)).json()
    coop = await registry.create_cooperative("35.78.10")
    added = await registry.client.post(
        f"/trainings/{training['id']}/participants",
        json={"participants": [{"cooperative_id": coop["id"], "name": "Peserta Satu"}]},
        headers=officer,
    )
    assert added.status_code == 201
    assert_error(
        await registry.client.post(
            f"/trainings/{training['id']}/complete", json={"attended": [str(uuid.uuid4())]}, headers=officer
        ),
        422,
    )
    assert_error(
        await registry.client.post(
            f"/trainings/{training['id']}/complete",
            json={"completed_at": "2020-01-01T00:00:00Z"},
            headers=officer,
        ),
        422,
    )
    # No body at all: everyone registered attended.
    done = await registry.client.post(f"/trainings/{training['id']}/complete", headers=officer)
    assert done.status_code == 200 and [p["attended"] for p in done.json()["participants"]] == [True]
    assert_error(await registry.client.get(f"/trainings/{uuid.uuid4()}", headers=officer), 404)


# --- import -------------------------------------------------------------------------------------


def _xlsx(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def _count_cooperatives(registry: Any) -> int:
    from registry.adapters import orm

    async with registry.app.state.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(orm.cooperatives))).scalar_one())


async def test_a_good_csv_imports_every_row(registry: Any) -> None:
    codes = [registry.take_kelurahan() for _ in range(4)]
    lines = ["name,kelurahan_code,formation,deed_number,deed_date,deed_notary,business_units"]
    lines += [
        f"KKMP Impor CSV {i},{c},new,AHU-{i},2025-07-0{i + 1},Notaris Impor,sembako;lpg"
        for i, c in enumerate(codes)
    ]
    files = {"file": ("koperasi.csv", ("\n".join(lines) + "\n").encode(), "text/csv")}
    response = await registry.client.post("/cooperatives/import", files=files, headers=registry.admin)
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 4 and len(response.json()["ids"]) == 4
    listed = (
        await registry.client.get("/cooperatives", params={"q": "KKMP Impor CSV"}, headers=registry.admin)
    ).json()
    assert sorted(c["kelurahan_code"] for c in listed["items"]) == sorted(codes)
    assert all(
        c["business_units"] == ["sembako", "lpg"] and c["deed"]["notary"] == "Notaris Impor"
        for c in listed["items"]
    )
    await registry.probe.wait_for(
        "cooperative.registered.v1", lambda e: e.data["cooperative_id"] in response.json()["ids"], count=4
    )


async def test_a_good_xlsx_imports_every_row(registry: Any) -> None:
    codes = [registry.take_kelurahan() for _ in range(3)]
    rows: list[list[Any]] = [
        ["name", "kelurahan_code", "formation", "deed_number", "deed_date", "deed_notary"]
    ]
    rows += [
        [f"KKMP Impor XLSX {i}", c, "revitalized", f"AHU-X{i}", datetime(2025, 7, 10), "Notaris X"]
        for i, c in enumerate(codes)
    ]
    files = {
        "file": (
            "koperasi.xlsx",
            _xlsx(rows),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    }
    response = await registry.client.post("/cooperatives/import", files=files, headers=registry.admin)
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 3
    coop = (
        await registry.client.get(f"/cooperatives/{response.json()['ids'][0]}", headers=registry.admin)
    ).json()
    assert coop["formation"] == "revitalized" and coop["deed"]["date"] == "2025-07-10"


async def test_a_file_with_one_bad_row_imports_nothing_and_lists_row_and_field(registry: Any) -> None:
    codes = [registry.take_kelurahan() for _ in range(3)]
    taken = (await registry.create_cooperative())["kelurahan_code"]
    before = await _count_cooperatives(registry)
    rows: list[list[Any]] = [["name", "kelurahan_code", "formation"]]
    rows += [[f"KKMP Impor Gagal {i}", c, "new"] for i, c in enumerate(codes)]
    rows.append(["KKMP Salah", codes[0], "merger"])  # row 5: bad formation (and a repeated code)
    rows.append(["KKMP Sudah Ada", taken, "new"])  # row 6: already registered
    rows.append(["KKMP Tak Dikenal", "35.78.14.1003", "new"])  # row 7: no such kelurahan
    files = {"file": ("koperasi.xlsx", _xlsx(rows), "application/octet-stream")}
    response = await registry.client.post("/cooperatives/import", files=files, headers=registry.admin)
    error = assert_error(response, 422, "import_rejected")
    assert {(d["row"], d["field"]) for d in error["details"]} == {
        (5, "formation"), (6, "kelurahan_code"), (7, "kelurahan_code"),
    }  # fmt: skip
    assert await _count_cooperatives(registry) == before
    csv_dup = "name,kelurahan_code,formation\nKKMP A,{0},new\nKKMP B,{0},new\n".format(codes[1]).encode()
    error = assert_error(
        await registry.client.post(
            "/cooperatives/import", files={"file": ("k.csv", csv_dup)}, headers=registry.admin
        ),
        422,
    )
    assert [(d["row"], d["field"]) for d in error["details"]] == [(3, "kelurahan_code")]
    assert await _count_cooperatives(registry) == before


async def test_the_import_refuses_unreadable_files_and_non_admins(registry: Any) -> None:
    for name, content in (
        ("k.xlsx", b"not a workbook"),
        ("k.csv", b"\xff\xfe\xfd"),
        ("k.pdf", b"%PDF-1.4\x00\x01"),
        ("k.csv", b""),
    ):
        assert_error(
            await registry.client.post(
                "/cooperatives/import", files={"file": (name, content)}, headers=registry.admin
            ),
            422,
        )
    assert_error(await registry.client.post("/cooperatives/import", headers=registry.admin), 422)
    assert_error(
        await registry.client.post("/cooperatives/import", json={"file": "x"}, headers=registry.admin), 422
    )
    files = {"file": ("k.csv", b"name,kelurahan_code,formation\n")}
    assert_error(
        await registry.client.post("/cooperatives/import", files=files, headers=registry.officer()), 403
    )


# --- races --------------------------------------------------------------------------------------


async def test_racing_registrations_for_one_kelurahan_give_one_kkmp_and_409s(registry: Any) -> None:
    code = registry.take_kelurahan()
    body = {"name": "KKMP Balapan", "kelurahan_code": code, "formation": "new"}
    responses = await asyncio.gather(
        *(registry.client.post("/cooperatives", json=body, headers=registry.admin) for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "kelurahan_taken"
    listed = await registry.client.get("/cooperatives", params={"q": "KKMP Balapan"}, headers=registry.admin)
    assert listed.json()["total"] == 1


async def test_racing_member_registrations_count_every_member_once(registry: Any) -> None:
    coop = await registry.create_cooperative()
    path = f"/cooperatives/{coop['id']}/members"
    responses = await asyncio.gather(
        *(
            registry.client.post(
                path, json={"name": f"Warga Serentak {i}", "kind": "resident"}, headers=registry.admin
            )
            for i in range(12)
        )
    )
    assert [r.status_code for r in responses] == [201] * 12
    assert (await registry.client.get(f"/cooperatives/{coop['id']}", headers=registry.admin)).json()[
        "member_count"
    ] == 12
    events = await registry.probe.wait_for(
        "member.joined.v1", lambda e: e.data["cooperative_id"] == coop["id"], count=12
    )
    assert sorted(e.data["member_count"] for e in events) == list(range(1, 13))
