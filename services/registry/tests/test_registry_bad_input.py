"""Bad input of every kind gets the contract's 4xx error body, never a 500; and the operational endpoints.

Every JSON field of every writing route is replaced in turn by hostile values (wrong types, huge and
empty strings, NUL and lone surrogates, injections, nested objects); every query parameter and path id
likewise; plus malformed bodies, wrong content types, oversized bodies (413) and over-long pages
(clamped). The in-process client re-raises any unhandled exception, so a 500 cannot pass unseen.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import pytest
from kkmp_shared import clock
from kkmp_testkit.wait import eventually

pytestmark = pytest.mark.integration

ALLOWED_4XX = {400, 401, 403, 404, 405, 409, 413, 415, 422, 429}

# One of each kind (wrong type, out of range, empty, huge, unstorable, injection, wrong shape); finer
# variations of each kind are in the explicit tests below.
HOSTILE: list[Any] = [
    None,
    True,
    -1,
    2**63,
    "",
    "x" * 5000,
    "nul\x00byte",
    "\ud800",  # a lone surrogate, sent as the JSON escape \ud800
    "'; DROP TABLE cooperatives; --",
    [],
    {"$gt": ""},
]


def check(response: Any) -> None:
    """2xx, or a 4xx with the contract's error body; never a 5xx."""
    assert response.status_code < 500, (response.request.method, response.request.url, response.text)
    if response.status_code >= 400:
        assert response.status_code in ALLOWED_4XX, response.text
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}
        assert isinstance(error["code"], str) and error["code"] and error["message"]
        if response.status_code == 422:
            assert error["details"], "a 422 lists what is wrong"


def raw_json(body: Any) -> bytes:
    # ensure_ascii keeps a lone surrogate as the escape "\ud800" (it cannot be encoded as UTF-8).
    return json.dumps(body, ensure_ascii=True).encode()


def leaf_paths(body: Any, path: tuple[Any, ...] = (), depth: int = 99) -> Iterator[tuple[Any, ...]]:
    """The path of every value in the body, containers included (a list through its first item)."""
    if path:
        yield path
    if len(path) >= depth:
        return
    if isinstance(body, dict):
        for key, value in body.items():
            yield from leaf_paths(value, (*path, key), depth)
    elif isinstance(body, list) and body:
        yield from leaf_paths(body[0], (*path, 0), depth)


def all_mutations(body: dict[str, Any], depth: int = 99) -> list[tuple[str, Any]]:
    """The body with each of its values replaced by each hostile value, one at a time (down to `depth`:
    a batch's items are the single route's body, whose fields are covered there)."""
    out = []
    for path in leaf_paths(body, depth=depth):
        for value in HOSTILE:
            mutated = deepcopy(body)
            target = mutated
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            out.append((".".join(map(str, path)), mutated))
    out.append(("<unknown field>", {**body, "is_admin": True}))
    out.append(("<empty>", {}))
    return out


@dataclass
class Targets:
    coop: dict[str, Any]
    training_id: str


@pytest.fixture(scope="module")
async def targets(registry: Any) -> AsyncIterator[Targets]:
    coop = await registry.create_cooperative()
    training = await registry.client.post(
        "/trainings",
        json={"title": "Pelatihan Fuzz", "topic": "umum", "starts_on": clock.today(clock.WIB).isoformat()},
        headers=registry.admin,
    )
    await registry.client.post(
        f"/trainings/{training.json()['id']}/participants",
        json={"participants": [{"cooperative_id": coop["id"], "name": "Peserta Fuzz"}]},
        headers=registry.admin,
    )
    yield Targets(coop=coop, training_id=training.json()["id"])


def json_routes(t: Targets) -> list[tuple[str, str, dict[str, Any]]]:
    coop_id, kel = t.coop["id"], t.coop["kelurahan_code"]
    cooperative = {
        "name": "KKMP Fuzz",
        "kelurahan_code": kel,  # already registered: a valid mutation answers 409, nothing is created
        "formation": "new",
        "deed": {"number": "AHU-1", "date": "2025-07-01", "notary": "Notaris Fuzz"},
        "business_units": ["sembako"],
        "address": "Jl. Fuzz",
        "phone": "031",
        "registered_at": "2025-07-21T00:00:00Z",
    }
    member = {
        "name": "Warga Fuzz",
        "kind": "umkm",
        "business": {"sector": "kuliner", "products": ["tahu"]},
        "joined_at": "2025-08-01T00:00:00Z",
    }
    return [
        ("POST", "/cooperatives", cooperative),
        ("POST", "/cooperatives/batch", {"cooperatives": [cooperative]}),
        (
            "PATCH",
            f"/cooperatives/{coop_id}",
            {
                "address": "Jl. Baru",
                "business_units": ["sembako"],
                "status_reason": "fuzz",
                "deed": cooperative["deed"],
            },
        ),
        (
            "PUT",
            f"/cooperatives/{coop_id}/board",
            {
                "members": [
                    {"name": "Ketua Fuzz", "position": "ketua", "phone": "0812", "since": "2025-07-01"}
                ]
            },
        ),
        ("POST", f"/cooperatives/{coop_id}/members", member),
        ("POST", f"/cooperatives/{coop_id}/members/batch", {"members": [member]}),
        (
            "POST",
            f"/kelurahan/{kel}/potentials",
            {"sector": "kuliner", "description": "Potensi fuzz", "priority": 3},
        ),
        (
            "POST",
            "/trainings",
            {
                "title": "Pelatihan",
                "topic": "umum",
                "description": "d",
                "kecamatan_code": t.coop["kecamatan_code"],
                "starts_on": "2026-01-05",
                "ends_on": "2026-01-06",
                "location": "Balai",
            },
        ),
        (
            "POST",
            f"/trainings/{t.training_id}/participants",
            {"participants": [{"cooperative_id": coop_id, "name": "Peserta", "role": "ketua"}]},
        ),
        (
            "POST",
            f"/trainings/{t.training_id}/complete",
            {"attended": [str(uuid.uuid4())], "completed_at": None},
        ),
        (
            "POST",
            "/users",
            {
                "username": "admin",  # taken: a valid mutation answers 409 before any password is hashed
                "password": "rahasia-123",
                "role": "officer",
                "kecamatan_codes": ["35.78.01"],
                "full_name": "Petugas",
                "email": "p@example.id",
            },
        ),
        ("POST", "/users/me/password", {"current_password": "x", "new_password": "rahasia-456"}),
    ]


async def test_every_json_field_of_every_writing_route_refuses_hostile_values(
    registry: Any, targets: Targets
) -> None:
    sent = 0
    for method, path, body in json_routes(targets):
        for _field, mutated in all_mutations(body, depth=2 if path.endswith("/batch") else 99):
            response = await registry.client.request(
                method,
                path,
                content=raw_json(mutated),
                headers={**registry.admin, "content-type": "application/json"},
            )
            check(response)
            sent += 1
    assert sent > 600
    # The hostile values changed nothing they should not have: the cooperative is still there and sane.
    coop = (await registry.client.get(f"/cooperatives/{targets.coop['id']}", headers=registry.admin)).json()
    assert coop["kelurahan_code"] == targets.coop["kelurahan_code"]
    assert "\x00" not in json.dumps(coop)


async def test_specific_hostile_values_are_refused_as_422(registry: Any, targets: Targets) -> None:
    kel = registry.take_kelurahan()
    base = {"name": "KKMP Valid", "kelurahan_code": kel, "formation": "new"}
    for field, value in (
        ("name", "KK\x00MP"),
        ("name", "x" * 201),
        ("name", 12345),
        ("kelurahan_code", "35.78.01.1001' OR '1'='1"),
        ("kelurahan_code", "３５.７８.０１.１００１"),  # full-width digits are not a Kemendagri code
        ("formation", "NEW "),
        ("business_units", "sembako"),
        ("business_units", ["sembako"] * 100),
        ("deed", {"number": "1", "date": "2025-13-01", "notary": "N N"}),
    ):
        response = await registry.client.post(
            "/cooperatives", json={**base, field: value}, headers=registry.admin
        )
        check(response)
        assert response.status_code == 422, (field, value, response.text)
        assert any(d["field"].startswith(field) for d in response.json()["error"]["details"])
    surrogate = raw_json({**base, "name": "KKMP \ud800"})
    response = await registry.client.post(
        "/cooperatives", content=surrogate, headers={**registry.admin, "content-type": "application/json"}
    )
    assert response.status_code == 422
    # Nothing was registered by the refused attempts; the valid body still is.
    assert (await registry.client.post("/cooperatives", json=base, headers=registry.admin)).status_code == 201


async def test_malformed_bodies_and_wrong_content_types_are_4xx(registry: Any, targets: Targets) -> None:
    path = f"/cooperatives/{targets.coop['id']}/members"
    as_json = {**registry.admin, "content-type": "application/json"}
    cases: list[tuple[bytes, dict[str, str]]] = [
        (b"{not json", as_json),
        (b"", as_json),
        (b"null", as_json),
        (b"[]", as_json),
        (b'"a string"', as_json),
        (b"42", as_json),
        (b'{"name": "Warga NaN", "kind": "resident", "joined_at": NaN}', as_json),
        (b'{"name": "Warga", "kind": "resident", "extra": 1e400}', as_json),
        (b"[" * 100_000 + b"]" * 100_000, as_json),
        (b"\xff\xfe\x00\x01", as_json),
        (b'{"name": "Warga Teks", "kind": "resident"}', {**registry.admin, "content-type": "text/plain"}),
        (b"<member><name>X</name></member>", {**registry.admin, "content-type": "application/xml"}),
        (b"name=Warga&kind=resident", {**registry.admin, "content-type": "application/x-www-form-urlencoded"}),  # noqa: E501
        (b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nX\r\n--b--\r\n",
         {**registry.admin, "content-type": "multipart/form-data; boundary=b"}),
    ]  # fmt: skip
    before = (await registry.client.get(path, headers=registry.admin)).json()["total"]
    for content, headers in cases:
        response = await registry.client.post(path, content=content, headers=headers)
        check(response)
        assert 400 <= response.status_code < 500, (content[:40], response.text)
    assert (await registry.client.get(path, headers=registry.admin)).json()["total"] == before


async def test_oversized_bodies_are_413(registry: Any, targets: Targets) -> None:
    limit = registry.app.state.settings.max_body_bytes
    huge = {"members": [{"name": "W" * 150, "kind": "resident"}] * (limit // 150 + 10)}
    path = f"/cooperatives/{targets.coop['id']}/members/batch"
    response = await registry.client.post(path, json=huge, headers=registry.admin)
    check(response)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b'{"members": ['
        for _ in range(2 * limit // 1000):
            yield b'{"name": "' + b"W" * 960 + b'", "kind": "resident"},'
        yield b'{"name": "Akhir", "kind": "resident"}]}'

    response = await registry.client.post(
        path, content=streamed(), headers={**registry.admin, "content-type": "application/json"}
    )
    check(response)
    assert response.status_code == 413
    files = {"file": ("big.csv", b"name,kelurahan_code,formation\n" + b"x" * (limit + 1))}
    response = await registry.client.post("/cooperatives/import", files=files, headers=registry.admin)
    check(response)
    assert response.status_code == 413


QUERIES: dict[str, list[str]] = {
    "/cooperatives": ["q", "kecamatan_code", "status", "limit", "offset"],
    "/regions/kelurahan": ["kecamatan_code"],
    "/users": ["role", "cooperative_id", "limit", "offset"],
    "/potentials": ["kecamatan_code", "sector", "limit", "offset"],
    "/trainings": ["cooperative_id", "status", "limit", "offset"],
}
HOSTILE_QUERY = [
    "", "-1", "99999999999999999999999", "abc", "%_", "\x00", "x" * 5000, "' OR '1'='1", "\u202e🙂",
]  # fmt: skip


async def test_every_query_parameter_refuses_hostile_values(registry: Any, targets: Targets) -> None:
    routes = {**QUERIES, f"/cooperatives/{targets.coop['id']}/members": ["kind", "limit", "offset"]}
    for path, names in routes.items():
        for name in names:
            for value in HOSTILE_QUERY:
                check(await registry.client.get(path, params={name: value}, headers=registry.admin))
    # A NUL in a search is refused, not passed to the database.
    response = await registry.client.get("/cooperatives", params={"q": "a\x00b"}, headers=registry.admin)
    assert response.status_code == 422


async def test_over_long_pages_are_clamped(registry: Any, targets: Targets) -> None:
    page = await registry.client.get("/cooperatives", params={"limit": 10**9}, headers=registry.admin)
    assert page.status_code == 200 and page.json()["limit"] == 500
    for path in ("/users", "/potentials", "/trainings", f"/cooperatives/{targets.coop['id']}/members"):
        response = await registry.client.get(path, params={"limit": 10**9}, headers=registry.admin)
        assert response.status_code == 200, response.text
    assert (
        await registry.client.get("/cooperatives", params={"offset": 10**12}, headers=registry.admin)
    ).status_code == 422


HOSTILE_IDS = [
    "%00", "..%2F..%2Fetc%2Fpasswd", "'%20OR%20'1'='1", "a" * 65, "a" * 4000, "%FF%FE", "%F0%9F%99%82",
    "%20", "00000000-0000-0000-0000-000000000000", str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}",
    "1", "-1", "null",
]  # fmt: skip


async def test_every_path_id_refuses_hostile_values(registry: Any, targets: Targets) -> None:
    templates = [
        ("GET", "/cooperatives/{}"),
        ("PATCH", "/cooperatives/{}"),
        ("GET", "/cooperatives/{}/status-history"),
        ("PUT", "/cooperatives/{}/board"),
        ("POST", "/cooperatives/{}/members"),
        ("POST", "/cooperatives/{}/members/batch"),
        ("GET", "/cooperatives/{}/members"),
        ("GET", "/trainings/{}"),
        ("POST", "/trainings/{}/participants"),
        ("POST", "/trainings/{}/complete"),
        ("GET", "/users/{}"),
        ("GET", "/kelurahan/{}/potentials"),
        ("POST", "/kelurahan/{}/potentials"),
    ]
    for method, template in templates:
        for value in HOSTILE_IDS:
            response = await registry.client.request(
                method, template.format(value), json={}, headers=registry.admin
            )
            check(response)
            assert 400 <= response.status_code < 500, (method, template, value, response.text)
    for method, template in templates:
        response = await registry.client.request(
            method, template.format(str(uuid.uuid4())), json={}, headers=registry.admin
        )
        check(response)
        assert response.status_code in (404, 422), (template, response.text)


async def test_unknown_routes_and_methods_answer_in_the_error_format(registry: Any, targets: Targets) -> None:
    for method, path, status in (
        ("GET", "/nowhere", 404),
        ("DELETE", f"/cooperatives/{targets.coop['id']}", 405),
        ("PUT", "/cooperatives", 405),
        ("GET", "/auth/token", 405),
    ):
        response = await registry.client.request(method, path, headers=registry.admin)
        check(response)
        assert response.status_code == status


async def test_the_login_form_refuses_hostile_values(registry: Any) -> None:
    client = registry.client_from("10.66.0.1")
    base = {"grant_type": "password", "username": "admin", "password": "salah"}
    for name in ("grant_type", "username", "password", "client_id", "client_secret"):
        for value in ("", "x" * 5000, "nul\x00", "' OR '1'='1\u202e🙂"):
            check(await client.post("/auth/token", data={**base, name: value}))


# --- operations ---------------------------------------------------------------------------------


async def test_health_metrics_and_asyncapi(registry: Any) -> None:
    live = await registry.client.get("/health/live")
    assert live.json() == {"status": "ok", "service": "registry"}
    ready = await registry.client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}

    await registry.client.get("/regions/kecamatan")
    metrics = await registry.client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert (
        'kkmp_http_requests_total{method="GET",route="/regions/kecamatan",service="registry",status="200"}'
        in text
    )
    assert 'kkmp_outbox_published_total{service="registry"}' in text
    assert 'kkmp_outbox_backlog{service="registry"}' in text

    document = (await registry.client.get("/asyncapi.json")).json()
    assert document["asyncapi"].startswith("2.")
    assert set(document["channels"]) == {
        "cooperative.registered.v1",
        "cooperative.updated.v1",
        "member.joined.v1",
        "potential.mapped.v1",
        "training.completed.v1",
        "user.created.v1",
    }
    for name, channel in document["channels"].items():
        assert "publish" not in channel, "the registry consumes nothing"
        message = channel["subscribe"]["message"]
        assert message["name"] == name
        data_schema = message["payload"]["allOf"][1]["properties"]["data"]
        if name != "user.created.v1" and name != "potential.mapped.v1":
            assert {"cooperative_id", "kelurahan_code", "kecamatan_code"} <= set(data_schema["required"])
    # Every event committed so far reached the broker (the relay drained the outbox).
    relay = registry.app.state.relay
    await eventually(_drained(relay), timeout=20)
    openapi = (await registry.client.get("/openapi.json")).json()
    assert "/cooperatives/{cooperative_id}/board" in openapi["paths"]
    assert (await registry.client.get("/docs")).status_code == 200


def _drained(relay: Any) -> Any:
    async def check() -> bool:
        return await relay.backlog() == 0

    return check
