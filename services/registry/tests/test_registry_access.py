"""Who may see and change what, on every registry route, on SQLite and PostgreSQL with the real broker.

A coop_manager gets 404 reading another cooperative's data and 403 changing it (whether or not the id
exists, so nothing leaks); an officer acts only within its kecamatan; a supplier sees no cooperative
data; admin-only routes refuse everyone else. A guard test fails when a route is added without being
listed here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from kkmp_shared import clock

pytestmark = pytest.mark.integration


@dataclass
class World:
    """Two cooperatives in different kecamatan, a training with people of both, and their potentials."""

    mine: dict[str, Any]
    theirs: dict[str, Any]
    training: dict[str, Any]
    their_member: dict[str, Any]


@pytest.fixture(scope="module")
async def world(registry: Any) -> World:
    mine = await registry.create_cooperative("35.78.20", name="KKMP Milik Saya")
    theirs = await registry.create_cooperative("35.78.21", name="KKMP Milik Orang")
    admin = registry.admin
    client = registry.client
    member = await client.post(
        f"/cooperatives/{theirs['id']}/members",
        json={"name": "Warga Lain", "kind": "resident"},
        headers=admin,
    )
    for coop in (mine, theirs):
        await client.put(
            f"/cooperatives/{coop['id']}/board",
            json={"members": [{"name": f"Ketua {coop['name']}", "position": "ketua"}]},
            headers=admin,
        )
        await client.post(
            f"/kelurahan/{coop['kelurahan_code']}/potentials",
            json={"sector": "kuliner", "description": f"Potensi {coop['name']}", "priority": 1},
            headers=admin,
        )
    training = (
        await client.post(
            "/trainings",
            json={
                "title": "Pelatihan Bersama",
                "topic": "umum",
                "starts_on": clock.today(clock.WIB).isoformat(),
            },
            headers=admin,
        )
    ).json()
    await client.post(
        f"/trainings/{training['id']}/participants",
        json={
            "participants": [
                {"cooperative_id": mine["id"], "name": "Orang Saya"},
                {"cooperative_id": theirs["id"], "name": "Orang Lain"},
            ]
        },
        headers=admin,
    )
    return World(mine=mine, theirs=theirs, training=training, their_member=member.json())


def api_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path template) the app serves, as its OpenAPI document lists them."""
    return {
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    }


def _error(response: Any, status: int) -> None:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert set(response.json()["error"]) == {"code", "message", "details"}


def reads_of(coop: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that reads one cooperative's data: (method, path, query)."""
    return [
        ("GET", f"/cooperatives/{coop['id']}", {}),
        ("GET", f"/cooperatives/{coop['id']}/status-history", {}),
        ("GET", f"/cooperatives/{coop['id']}/members", {}),
        ("GET", "/trainings", {"cooperative_id": coop["id"]}),
        ("GET", f"/kelurahan/{coop['kelurahan_code']}/potentials", {}),
    ]


def writes_to(coop: dict[str, Any], training_id: str) -> list[tuple[str, str, Any]]:
    """Every route that changes one cooperative's data, with a body that would otherwise be valid."""
    return [
        ("PATCH", f"/cooperatives/{coop['id']}", {"phone": "031-999"}),
        (
            "PUT",
            f"/cooperatives/{coop['id']}/board",
            {"members": [{"name": "Perampas", "position": "ketua"}]},
        ),
        ("POST", f"/cooperatives/{coop['id']}/members", {"name": "Penyusup", "kind": "resident"}),
        (
            "POST",
            f"/cooperatives/{coop['id']}/members/batch",
            {"members": [{"name": "Penyusup", "kind": "resident"}]},
        ),
        (
            "POST",
            f"/kelurahan/{coop['kelurahan_code']}/potentials",
            {"sector": "tambang", "description": "Potensi palsu", "priority": 1},
        ),
        (
            "POST",
            f"/trainings/{training_id}/participants",
            {"participants": [{"cooperative_id": coop["id"], "name": "Penyusup"}]},
        ),
    ]


ADMIN_ONLY: list[tuple[str, str, Any]] = [
    ("POST", "/cooperatives", {"name": "KKMP X", "kelurahan_code": "35.78.14.1002", "formation": "new"}),
    ("POST", "/cooperatives/batch", {"cooperatives": []}),
    ("GET", "/users", None),
    ("POST", "/users", {"username": "penyusup", "password": "rahasia-123", "role": "admin"}),
]

STAFF_ONLY: list[tuple[str, str, Any]] = [
    ("POST", "/trainings", {"title": "Pelatihan X", "topic": "umum", "starts_on": "2026-01-01"}),
]


async def _snapshot(registry: Any, coop: dict[str, Any]) -> Any:
    admin = registry.admin
    return (
        (await registry.client.get(f"/cooperatives/{coop['id']}", headers=admin)).json(),
        (await registry.client.get(f"/cooperatives/{coop['id']}/members", headers=admin)).json()["total"],
        len(
            (
                await registry.client.get(f"/kelurahan/{coop['kelurahan_code']}/potentials", headers=admin)
            ).json()
        ),
    )


async def test_a_manager_cannot_read_or_change_another_cooperative_on_any_route(
    registry: Any, world: World
) -> None:
    manager = registry.manager(world.mine["id"])
    before = await _snapshot(registry, world.theirs)
    for method, path, query in reads_of(world.theirs):
        _error(await registry.client.request(method, path, params=query, headers=manager), 404)
    for method, path, body in writes_to(world.theirs, world.training["id"]):
        _error(await registry.client.request(method, path, json=body, headers=manager), 403)
    assert await _snapshot(registry, world.theirs) == before, "a refused write changed nothing"
    # The same routes on its own cooperative answer.
    for method, path, query in reads_of(world.mine):
        assert (await registry.client.request(method, path, params=query, headers=manager)).status_code == 200
    patched = await registry.client.patch(
        f"/cooperatives/{world.mine['id']}", json={"phone": "1"}, headers=manager
    )
    assert patched.status_code == 200


async def test_a_manager_cannot_tell_whether_another_id_exists(registry: Any, world: World) -> None:
    manager = registry.manager(world.mine["id"])
    ghost = {**world.theirs, "id": str(uuid.uuid4()), "kelurahan_code": "35.78.14.1003"}
    for (method, path, query), (_, ghost_path, ghost_query) in zip(
        reads_of(world.theirs), reads_of(ghost), strict=True
    ):
        real = await registry.client.request(method, path, params=query, headers=manager)
        fake = await registry.client.request(method, ghost_path, params=ghost_query, headers=manager)
        assert (real.status_code, real.json()["error"]["code"]) == (
            fake.status_code,
            fake.json()["error"]["code"],
        )
    for (method, path, body), (_, ghost_path, ghost_body) in zip(
        writes_to(world.theirs, world.training["id"])[:4],
        writes_to(ghost, world.training["id"])[:4],
        strict=True,
    ):
        real = await registry.client.request(method, path, json=body, headers=manager)
        fake = await registry.client.request(method, ghost_path, json=ghost_body, headers=manager)
        assert real.status_code == fake.status_code == 403


async def test_a_manager_sees_only_itself_in_lists(registry: Any, world: World) -> None:
    manager = registry.manager(world.mine["id"])
    listed = (await registry.client.get("/cooperatives", params={"limit": 500}, headers=manager)).json()
    assert [c["id"] for c in listed["items"]] == [world.mine["id"]] and listed["total"] == 1
    other_kecamatan = (
        await registry.client.get("/cooperatives", params={"kecamatan_code": "35.78.21"}, headers=manager)
    ).json()
    assert other_kecamatan["items"] == []
    potentials = (await registry.client.get("/potentials", headers=manager)).json()
    assert {p["kelurahan_code"] for p in potentials["items"]} == {world.mine["kelurahan_code"]}
    training = (await registry.client.get(f"/trainings/{world.training['id']}", headers=manager)).json()
    assert [p["name"] for p in training["participants"]] == ["Orang Saya"]
    for item in (await registry.client.get("/trainings", headers=manager)).json():
        assert {p["cooperative_id"] for p in item["participants"]} <= {world.mine["id"]}
    for method, path, body in ADMIN_ONLY + STAFF_ONLY:
        _error(await registry.client.request(method, path, json=body, headers=manager), 403)
    _error(await registry.client.post(f"/trainings/{world.training['id']}/complete", headers=manager), 403)
    _error(await registry.client.get(f"/users/{uuid.uuid4()}", headers=manager), 403)
    files = {"file": ("k.csv", b"name,kelurahan_code,formation\n")}
    _error(await registry.client.post("/cooperatives/import", files=files, headers=manager), 403)


async def test_an_officer_acts_only_within_its_kecamatan(registry: Any, world: World) -> None:
    officer = registry.officer(world.mine["kecamatan_code"])
    for method, path, query in reads_of(world.theirs):
        _error(await registry.client.request(method, path, params=query, headers=officer), 404)
    for method, path, body in writes_to(world.theirs, world.training["id"]):
        _error(await registry.client.request(method, path, json=body, headers=officer), 403)
    for method, path, query in reads_of(world.mine):
        assert (await registry.client.request(method, path, params=query, headers=officer)).status_code == 200
    listed = (await registry.client.get("/cooperatives", params={"limit": 500}, headers=officer)).json()
    assert {c["kecamatan_code"] for c in listed["items"]} == {world.mine["kecamatan_code"]}
    asked_elsewhere = await registry.client.get(
        "/cooperatives", params={"kecamatan_code": "35.78.21"}, headers=officer
    )
    assert asked_elsewhere.json()["items"] == []
    potentials = (await registry.client.get("/potentials", params={"limit": 500}, headers=officer)).json()
    assert {p["kecamatan_code"] for p in potentials["items"]} == {world.mine["kecamatan_code"]}
    training = (await registry.client.get(f"/trainings/{world.training['id']}", headers=officer)).json()
    assert [p["name"] for p in training["participants"]] == ["Orang Saya"]
    for method, path, body in ADMIN_ONLY:
        _error(await registry.client.request(method, path, json=body, headers=officer), 403)
    # An officer without kecamatan codes covers the whole city.
    city = registry.officer()
    for method, path, query in reads_of(world.theirs):
        assert (await registry.client.request(method, path, params=query, headers=city)).status_code == 200
    everyone = (await registry.client.get(f"/trainings/{world.training['id']}", headers=city)).json()
    assert {p["name"] for p in everyone["participants"]} == {"Orang Saya", "Orang Lain"}


async def test_a_supplier_sees_no_cooperative_data(registry: Any, world: World) -> None:
    supplier = registry.headers("supplier", supplier_id="supplier-1")
    for coop in (world.mine, world.theirs):
        for method, path, query in reads_of(coop):
            response = await registry.client.request(method, path, params=query, headers=supplier)
            assert response.status_code in (403, 404), (path, response.text)
            assert "error" in response.json()
        for method, path, body in writes_to(coop, world.training["id"]):
            _error(await registry.client.request(method, path, json=body, headers=supplier), 403)
    for path in ("/cooperatives", "/trainings", "/potentials"):
        _error(await registry.client.get(path, headers=supplier), 403)
    _error(await registry.client.get(f"/trainings/{world.training['id']}", headers=supplier), 404)
    for method, path, body in ADMIN_ONLY + STAFF_ONLY:
        _error(await registry.client.request(method, path, json=body, headers=supplier), 403)
    # Regions are public reference data (codes, names, points).
    assert (await registry.client.get("/regions/kecamatan", headers=supplier)).status_code == 200


async def test_every_route_needs_a_token_except_the_public_ones(registry: Any, world: World) -> None:
    public = {
        ("GET", "/regions/kecamatan"), ("GET", "/regions/kelurahan"), ("GET", "/regions/summary"),
        ("GET", "/.well-known/jwks.json"), ("POST", "/auth/token"), ("GET", "/health/live"),
        ("GET", "/health/ready"), ("GET", "/metrics"), ("GET", "/asyncapi.json"),
    }  # fmt: skip
    checked = 0
    for method, template in sorted(api_routes(registry.app) - public):
        path = template.format(
            cooperative_id=world.mine["id"],
            user_id=str(uuid.uuid4()),
            training_id=world.training["id"],
            code=world.mine["kelurahan_code"],
        )
        _error(await registry.client.request(method, path, json={}), 401)
        checked += 1
    assert checked == 24


async def test_every_registry_route_is_covered_by_these_access_tests(registry: Any) -> None:
    """Adding a route without deciding (and testing) who may use it fails here."""
    covered = {
        ("GET", "/regions/kecamatan"), ("GET", "/regions/kelurahan"), ("GET", "/regions/summary"),
        ("GET", "/.well-known/jwks.json"), ("POST", "/auth/token"),
        ("POST", "/users"), ("GET", "/users"), ("GET", "/users/me"), ("POST", "/users/me/password"),
        ("GET", "/users/{user_id}"),
        ("POST", "/cooperatives"), ("POST", "/cooperatives/batch"), ("POST", "/cooperatives/import"),
        ("GET", "/cooperatives"), ("GET", "/cooperatives/{cooperative_id}"),
        ("PATCH", "/cooperatives/{cooperative_id}"), ("GET", "/cooperatives/{cooperative_id}/status-history"),
        ("PUT", "/cooperatives/{cooperative_id}/board"), ("POST", "/cooperatives/{cooperative_id}/members"),
        ("POST", "/cooperatives/{cooperative_id}/members/batch"),
        ("GET", "/cooperatives/{cooperative_id}/members"),
        ("POST", "/kelurahan/{code}/potentials"), ("GET", "/kelurahan/{code}/potentials"),
        ("GET", "/potentials"),
        ("POST", "/trainings"), ("GET", "/trainings"), ("GET", "/trainings/{training_id}"),
        ("POST", "/trainings/{training_id}/participants"), ("POST", "/trainings/{training_id}/complete"),
        ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics"), ("GET", "/asyncapi.json"),
    }  # fmt: skip
    assert api_routes(registry.app) == covered
