"""Access rules on every route, for every role, and the error format of every refusal; the public
view answers without login and carries no cooperative-level or personal data."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from reporting_testkit import Coop, Running, days_ago, fresh_kecamatan

pytestmark = pytest.mark.integration

ANON, SUPPLIER, MANAGER, OTHER_MANAGER, OFFICER, OFFICER_ELSEWHERE, ADMIN, SERVICE = (
    "anonymous",
    "supplier",
    "manager",
    "other_manager",
    "officer",
    "officer_elsewhere",
    "admin",
    "service",
)


class World:
    def __init__(self, service: Running) -> None:
        self.kec, self.other_kec = fresh_kecamatan(), fresh_kecamatan()
        self.mine = Coop(self.kec, "KKMP Milik Sendiri")
        self.theirs = Coop(self.other_kec, "KKMP Tetangga")
        t = service.tokens
        self.headers: dict[str, dict[str, str]] = {
            ANON: {},
            SUPPLIER: t.headers("supplier", supplier_id="sup-1"),
            MANAGER: t.headers("coop_manager", cooperative_id=self.mine.id),
            OTHER_MANAGER: t.headers("coop_manager", cooperative_id=self.theirs.id),
            OFFICER: t.headers("officer", kecamatan_codes=[self.kec]),
            OFFICER_ELSEWHERE: t.headers("officer", kecamatan_codes=[self.other_kec]),
            ADMIN: t.headers("admin"),
            SERVICE: t.headers("service"),
        }


@pytest.fixture(scope="module")
async def world(service: Running) -> World:
    w = World(service)
    events = []
    for coop in (w.mine, w.theirs):
        events += [
            coop.registered(days_ago(100)),
            coop.stalled("gula", 50_000, days_ago(1)),
            coop.need(str(uuid.uuid4()), days_ago(1)),
            coop.price_violation(days_ago(1)),
        ]
    start = service.processed
    for data in events:
        await service.publish(data)
    await service.settle(start + len(events))
    return w


def expect(default: int, **overrides: int) -> dict[str, int]:
    roles = (ANON, SUPPLIER, MANAGER, OTHER_MANAGER, OFFICER, OFFICER_ELSEWHERE, ADMIN, SERVICE)
    return {role: overrides.get(role, default) for role in roles}


STAFF_ONLY = expect(200, anonymous=401, supplier=403, manager=403, other_manager=403)
LISTS = expect(200, anonymous=401, supplier=403)
ONE_COOPERATIVE = expect(200, anonymous=401, supplier=404, other_manager=404, officer_elsewhere=404)

READS: list[tuple[str, dict[str, int]]] = [
    ("/dashboard/summary", STAFF_ONLY),
    ("/kecamatan", STAFF_ONLY),
    ("/needs/response-times", STAFF_ONLY),
    ("/reports/rates", STAFF_ONLY),
    ("/exports/monthly-report.pdf", STAFF_ONLY),
    ("/timeseries/sales", expect(200, anonymous=401, supplier=403)),
    ("/stalled", LISTS),
    ("/price-violations", LISTS),
    ("/cooperatives", LISTS),
    ("/reports", LISTS),
    ("/exports/cooperatives.csv", LISTS),
    ("/exports/stalled.xlsx", LISTS),
    ("/cooperatives/{mine}", ONE_COOPERATIVE),
    ("/cooperatives/{mine}/health", ONE_COOPERATIVE),
    ("/cooperatives/{mine}/reports", ONE_COOPERATIVE),
    ("/public/summary", expect(200)),
    ("/public/kecamatan", expect(200)),
]


async def test_every_read_route_answers_each_role_as_the_rules_say(service: Running, world: World) -> None:
    failures = []
    for template, expected in READS:
        path = template.format(mine=world.mine.id)
        for role, status in expected.items():
            response = await service.client.get(path, headers=world.headers[role])
            if response.status_code != status:
                failures.append((path, role, status, response.status_code, response.text[:200]))
            elif status >= 400:
                error = response.json()["error"]
                assert set(error) == {"code", "message", "details"} and error["code"] and error["message"]
    assert not failures, failures


WRITES: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    (
        "POST",
        "/cooperatives/{mine}/reports",
        {"period": "2020-01", "omzet": 1, "transactions": 1, "members": 1},
        # 201 once; the later allowed roles find the period taken (409), which proves they got past the check.
        expect(409, anonymous=401, supplier=403, other_manager=403, officer_elsewhere=403, manager=201),
    ),
    (
        "POST",
        "/reports/overdue/run",
        {"as_of": "2000-01-01T00:00:00Z"},
        expect(200, anonymous=401, supplier=403, manager=403, other_manager=403),
    ),
    (
        "POST",
        "/admin/health/recompute",
        None,
        expect(200, anonymous=401, supplier=403, manager=403, other_manager=403),
    ),
    ("POST", "/reports/batch", {"reports": []}, expect(422, anonymous=401)),
    ("POST", "/admin/rebuild", None, expect(403, anonymous=401, admin=200)),
]


async def test_every_write_route_refuses_who_may_not(service: Running, world: World) -> None:
    failures = []
    for method, template, payload, expected in WRITES:
        path = template.format(mine=world.mine.id)
        order = [ANON, SUPPLIER, OTHER_MANAGER, OFFICER_ELSEWHERE, MANAGER, OFFICER, SERVICE, ADMIN]
        for role in order:
            status = expected[role]
            response = await service.client.request(method, path, headers=world.headers[role], json=payload)
            if response.status_code != status:
                failures.append((method, path, role, status, response.status_code, response.text[:200]))
    assert not failures, failures
    # An empty batch is refused for its content by whoever may send one, but the right is checked too.
    batch = {
        "reports": [
            {
                "cooperative_id": world.mine.id,
                "period": "2020-02",
                "omzet": 1,
                "transactions": 1,
                "members": 1,
            }
        ]
    }
    for role, status in ((MANAGER, 403), (OFFICER, 403), (SERVICE, 201)):
        response = await service.client.post("/reports/batch", headers=world.headers[role], json=batch)
        assert response.status_code == status, (role, response.text)


async def test_lists_hold_only_the_rows_in_scope(service: Running, world: World) -> None:
    mine, theirs = world.mine.id, world.theirs.id

    async def ids(path: str, role: str, key: str = "cooperative_id", **params: Any) -> set[str]:
        response = await service.client.get(path, headers=world.headers[role], params=params)
        assert response.status_code == 200, response.text
        payload = response.json()
        rows = payload["items"] if isinstance(payload, dict) else payload
        return {row[key] for row in rows} & {mine, theirs}

    for path in ("/stalled", "/price-violations", "/cooperatives", "/reports"):
        assert await ids(path, MANAGER) <= {mine}, path
        assert await ids(path, OFFICER) <= {mine}, path
        assert await ids(path, OFFICER_ELSEWHERE) <= {theirs}, path
    assert await ids("/stalled", ADMIN) == {mine, theirs}
    assert await ids("/stalled", MANAGER) == {mine}
    kecamatan = (await service.client.get("/kecamatan", headers=world.headers[OFFICER])).json()
    assert [row["kecamatan_code"] for row in kecamatan] == [world.kec]
    # An officer asking for a kecamatan outside its area is refused, not silently given nothing.
    outside = await service.client.get(
        "/stalled", headers=world.headers[OFFICER], params={"kecamatan_code": world.other_kec}
    )
    assert outside.status_code == 403
    # A manager's series is its own cooperative's; another cooperative's is hidden.
    own_series = await service.client.get("/timeseries/sales", headers=world.headers[MANAGER])
    assert own_series.json()["cooperative_id"] == mine
    other_series = await service.client.get(
        "/timeseries/sales", headers=world.headers[MANAGER], params={"cooperative_id": theirs}
    )
    assert other_series.status_code == 404


async def test_public_view_has_aggregates_only(service: Running, world: World) -> None:
    summary = await service.client.get("/public/summary")
    kecamatan = await service.client.get("/public/kecamatan")
    assert summary.status_code == 200 and kecamatan.status_code == 200
    assert summary.json()["cooperatives"]["total"] >= 2
    codes = {row["kecamatan_code"] for row in kecamatan.json()}
    assert {world.kec, world.other_kec} <= codes and "35.78.01" in codes
    assert next(r["name"] for r in kecamatan.json() if r["kecamatan_code"] == "35.78.01") == "Karang Pilang"
    text = summary.text + kecamatan.text
    for private in (world.mine.id, world.theirs.id, world.mine.name, world.theirs.name, "cooperative_id"):
        assert private not in text


async def test_bad_tokens_and_bad_parameters(service: Running, world: World) -> None:
    client = service.client
    expired = service.tokens.mint("admin", expires_in=-60)
    for headers in (
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
    ):
        response = await client.get("/dashboard/summary", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    admin = world.headers[ADMIN]
    for path, params in (
        ("/timeseries/sales", {"weeks": 0}),
        ("/timeseries/sales", {"weeks": 1000}),
        ("/timeseries/sales", {"commodity": "Gula; DROP"}),
        ("/stalled", {"kecamatan_code": "35.78.01' OR 1=1"}),
        ("/stalled", {"limit": 0}),
        ("/reports/rates", {"period": "2025-13"}),
        ("/price-violations", {"since": "last tuesday"}),
        ("/cooperatives", {"level": "immortal"}),
    ):
        response = await client.get(path, headers=admin, params=params)
        assert response.status_code == 422, (path, params, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    assert (await client.get("/cooperatives/unknown/health", headers=admin)).status_code == 404
    too_big = await client.post(
        f"/cooperatives/{world.mine.id}/reports", headers=admin, content=b"x" * (3 * 1024 * 1024)
    )
    assert too_big.status_code == 413


async def test_documents_describe_the_api_and_every_consumed_event(service: Running) -> None:
    openapi = (await service.client.get("/openapi.json")).json()
    for path in (
        "/dashboard/summary",
        "/kecamatan",
        "/stalled",
        "/cooperatives/{cooperative_id}/health",
        "/cooperatives/{cooperative_id}/reports",
        "/reports/rates",
        "/exports/{name}.csv",
        "/exports/monthly-report.pdf",
        "/public/summary",
        "/admin/rebuild",
    ):
        assert path in openapi["paths"], path
    asyncapi = (await service.client.get("/asyncapi.json")).json()
    assert "cooperative.health_changed.v1" in asyncapi["channels"]
    assert "stock.stalled.v1" in asyncapi["channels"] and "notification.failed.v1" in asyncapi["channels"]
