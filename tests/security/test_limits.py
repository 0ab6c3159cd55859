"""Limits that protect the services from a caller who sends too much or tries too often: oversized
bodies (413, announced or streamed, at every service), over-long pages (clamped, never refused and
never unbounded), and guessing passwords or client secrets (429, per account and per address)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

SERVICES = ("registry", "inventory", "sourcing", "reporting", "notifications", "portal")
API_SERVICES = ("registry", "inventory", "sourcing", "reporting", "notifications")
MAX_BODY = 2 * 1024 * 1024  # the services' default MAX_BODY_BYTES
MAX_PAGE = 500  # the services' default MAX_PAGE_SIZE (PageDep)
MAX_LIST = 5000  # reporting's own cap for its city-wide lists
# A write route of each service (the limit answers before routing, authentication and parsing).
WRITE = {
    "registry": "/cooperatives/batch",
    "inventory": "/detections/run",
    "sourcing": "/needs/batch",
    "reporting": "/reports/batch",
    "notifications": "/announcements",
    "portal": "/masuk",
}


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


@pytest.mark.parametrize("service", SERVICES)
def test_oversized_bodies_are_refused_with_413(city: Any, service: str) -> None:
    url = f"{city.url(service)}{WRITE[service]}"
    admin = city.principals["admin"].headers
    big = b'{"x": "' + b"a" * MAX_BODY + b'"}'

    def streamed() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    with httpx.Client(timeout=60) as client:
        for label, kwargs in (
            ("announced", {"content": big}),
            ("streamed", {"content": streamed()}),
            ("anonymous", {"content": big, "headers": {"Content-Type": "application/json"}}),
            ("huge", {"content": b"[" + b"1," * (4 * MAX_BODY) + b"1]"}),
        ):
            headers = {"Content-Type": "application/json", **(admin if label != "anonymous" else {})}
            headers.update(kwargs.pop("headers", {}))
            try:
                response = client.post(url, headers=headers, **kwargs)
            except httpx.RemoteProtocolError:
                pytest.fail(f"{service} [{label}]: the connection was dropped instead of a 413")
            assert response.status_code == 413, f"{service} [{label}] → {response.status_code}"
            assert _error_code(response) == "payload_too_large", response.text[:200]
        # Just under the limit is not refused for its size.
        response = client.post(
            url,
            headers={"Content-Type": "application/json", **admin},
            content=b"{}" + b" " * (MAX_BODY - 100),
        )
        assert response.status_code != 413


def _list_routes(spec: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    routes = []
    for path, methods in spec["paths"].items():
        get = methods.get("get")
        if get and any(p["name"] == "limit" and p["in"] == "query" for p in get.get("parameters", [])):
            routes.append((path, get.get("parameters", [])))
    return routes


def _rows(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return list(body["items"])
    return []


@pytest.mark.parametrize("service", API_SERVICES)
def test_over_long_pages_are_clamped(city: Any, service: str) -> None:
    """Every list with a `limit`: a limit of a million is answered (200), with a bounded page."""
    a = city.sides["A"]
    values = {
        "cooperative_id": a.cooperative,
        "code": a.kelurahan,
        "need_id": a["need"],
        "training_id": a["training"],
        "name": "cooperatives",
    }
    admin = city.principals["admin"].headers
    spec = httpx.get(f"{city.url(service)}/openapi.json", timeout=30).json()
    routes = _list_routes(spec)
    assert routes, f"{service} has no paged list?"
    failures = []
    with httpx.Client(timeout=120) as client:
        for path, parameters in routes:
            concrete = path
            for parameter in parameters:
                if parameter["in"] == "path":
                    concrete = concrete.replace("{" + parameter["name"] + "}", values[parameter["name"]])
            for limit in (1_000_000, 10**12):
                response = client.get(
                    f"{city.url(service)}{concrete}", headers=admin, params={"limit": limit}
                )
                if response.status_code != 200:
                    failures.append(
                        f"GET {path}?limit={limit} → {response.status_code} {response.text[:160]}"
                    )
                    continue
                body = response.json()
                rows = _rows(body)
                echoed = body.get("limit") if isinstance(body, dict) else None
                if len(rows) > MAX_LIST or (isinstance(echoed, int) and echoed > MAX_LIST):
                    failures.append(
                        f"GET {path}?limit={limit} → {len(rows)} rows, limit {echoed}: not clamped"
                    )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("service", "create", "listing"),
    [
        ("registry", "members", "/cooperatives/{A}/members"),
        ("inventory", "movements", "/cooperatives/{A}/movements"),
        ("sourcing", "needs", "/needs?cooperative_id={A}"),
    ],
)
def test_a_page_never_exceeds_the_maximum(city: Any, service: str, create: str, listing: str) -> None:
    """With more rows than a page may hold, a huge limit gets exactly one full page and the total."""
    a = city.sides["A"]
    headers = city.principals["manager_a"].headers
    tag = uuid.uuid4().hex[:6]
    if create == "members":
        batches = [
            (
                "/cooperatives/{A}/members/batch",
                {
                    "members": [
                        {"name": f"Anggota {tag} {i}", "kind": "resident"} for i in range(MAX_PAGE + 20)
                    ]
                },
            )
        ]
    elif create == "movements":
        batches = [
            (
                "/cooperatives/{A}/movements/batch",
                {
                    "movements": [
                        {"commodity": "garam", "kind": "receipt", "quantity": "1", "unit_price": 5000}
                        for _ in range(MAX_PAGE + 20)
                    ]
                },
            )
        ]
    else:
        items = [
            {"cooperative_id": a.cooperative, "kind": "other", "description": f"Kendala {tag} {i}"}
            for i in range(MAX_PAGE + 20)
        ]
        batches = [("/needs/batch", {"needs": items[:400]}), ("/needs/batch", {"needs": items[400:]})]
    with httpx.Client(timeout=120) as client:
        for path, body in batches:
            response = client.post(
                f"{city.url(service)}{path.replace('{A}', a.cooperative)}", headers=headers, json=body
            )
            assert response.status_code == 201, response.text[:300]
        url = f"{city.url(service)}{listing.replace('{A}', a.cooperative)}"
        response = client.get(url, headers=headers, params={"limit": 100_000})
        assert response.status_code == 200, response.text[:300]
        body = response.json()
        assert len(body["items"]) == MAX_PAGE
        assert body["total"] >= MAX_PAGE + 20
        second = client.get(url, headers=headers, params={"limit": 100_000, "offset": MAX_PAGE}).json()
        assert 20 <= len(second["items"]) <= MAX_PAGE
        assert not {r["id"] for r in body["items"]} & {r["id"] for r in second["items"]}


# --- guessing -----------------------------------------------------------------------------------


def _login(client: httpx.Client, base: str, username: str, password: str) -> httpx.Response:
    return client.post(f"{base}/auth/token", data={"username": username, "password": password})


def test_password_guessing_locks_the_account_not_everyone(city: Any) -> None:
    """Five wrong passwords lock that username (429 with Retry-After, the right password included),
    while other accounts from the same address still sign in."""
    base = city.url("registry")
    admin = city.principals["admin"].headers
    with httpx.Client(timeout=30) as client:
        names = []
        for _ in range(2):
            name = f"sec-victim-{uuid.uuid4().hex[:6]}"
            response = client.post(
                f"{base}/users",
                headers=admin,
                json={"username": name, "password": "victim-pass-123", "role": "officer"},
            )
            assert response.status_code == 201, response.text
            names.append(name)
        victim, bystander = names
        for _ in range(5):
            assert _login(client, base, victim, "guess-123456").status_code == 401
        locked = _login(client, base, victim, "guess-123456")
        assert locked.status_code == 429 and _error_code(locked) == "rate_limited"
        assert int(locked.headers["Retry-After"]) > 0
        assert _login(client, base, victim, "victim-pass-123").status_code == 429
        assert _login(client, base, victim.upper(), "victim-pass-123").status_code == 429  # same account
        assert _login(client, base, bystander, "victim-pass-123").status_code == 200


def test_guessing_the_current_password_is_throttled_too(city: Any) -> None:
    base = city.url("registry")
    admin = city.principals["admin"].headers
    name = f"sec-changer-{uuid.uuid4().hex[:6]}"
    with httpx.Client(timeout=30) as client:
        assert (
            client.post(
                f"{base}/users",
                headers=admin,
                json={"username": name, "password": "changer-pass-123", "role": "officer"},
            ).status_code
            == 201
        )
        token = _login(client, base, name, "changer-pass-123").json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            client.post(
                f"{base}/users/me/password",
                headers=headers,
                json={"current_password": f"guess-{i}-xxxx", "new_password": "taken-over-123"},
            ).status_code
            for i in range(6)
        ]
        assert statuses[:5] == [403] * 5 and statuses[5] == 429, statuses
        right = client.post(
            f"{base}/users/me/password",
            headers=headers,
            json={"current_password": "changer-pass-123", "new_password": "taken-over-123"},
        )
        assert right.status_code == 429


@pytest.fixture
def lone_registry(fresh_platform: Any) -> Iterator[Any]:
    """A registry of its own: locking its only address out must not lock out the shared platform."""
    with fresh_platform(("registry",), postgres=False, extra_env={"BROKER_ENABLED": "false"}) as plat:
        yield plat


def test_guessing_from_one_address_is_throttled(lone_registry: Any) -> None:
    """Twenty failures from one address, over many usernames, stop every login from it."""
    base = lone_registry.url("registry")
    with httpx.Client(timeout=30) as client:
        statuses = [_login(client, base, f"nobody-{i}", "guess-123456").status_code for i in range(21)]
        assert statuses[:20] == [401] * 20 and statuses[20] == 429, statuses
        assert _login(client, base, "admin", lone_registry.admin_password).status_code == 429


def test_guessing_a_client_secret_is_throttled(lone_registry: Any) -> None:
    """The client_credentials grant is a login too: a service secret cannot be guessed at full speed."""
    base = lone_registry.url("registry")
    with httpx.Client(timeout=30) as client:
        statuses = [
            client.post(
                f"{base}/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "kkmp-service",
                    "client_secret": f"guess-{i}",
                },
            ).status_code
            for i in range(6)
        ]
        assert statuses[:5] == [401] * 5 and statuses[5] == 429, statuses
        right = client.post(
            f"{base}/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "kkmp-service",
                "client_secret": "kkmp-demo-service-secret",
            },
        )
        assert right.status_code == 429
