"""The HTTP surface: who may call what, the inbox's own-user rule, and every kind of bad input
answered with the contract's error format (never a 500). Real service, real broker, both databases."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from notifications_testkit import Env

pytestmark = pytest.mark.integration


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return str(body["error"]["code"])


ENDPOINTS = [
    ("GET", "/me/notifications"),
    ("GET", "/me/notifications/summary"),
    ("POST", "/me/notifications/read-all"),
    ("POST", "/me/notifications/x/read"),
    ("GET", "/me/preferences"),
    ("PUT", "/me/preferences"),
    ("GET", "/event-types"),
    ("GET", "/routing-rules"),
    ("POST", "/routing-rules"),
    ("PATCH", "/routing-rules/x"),
    ("DELETE", "/routing-rules/x"),
    ("POST", "/subscriptions"),
    ("GET", "/subscriptions"),
    ("GET", "/subscriptions/x"),
    ("DELETE", "/subscriptions/x"),
    ("GET", "/deliveries"),
    ("GET", "/deliveries/x"),
    ("POST", "/deliveries/x/retry"),
    ("POST", "/escalations/run"),
    ("POST", "/digests/run"),
    ("POST", "/announcements"),
]


async def test_every_endpoint_needs_a_valid_token(env: Env) -> None:
    for method, path in ENDPOINTS:
        response = await env.client.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.status_code)
        assert error_code(response) == "unauthorized"
        forged = await env.client.request(
            method, path, json={}, headers={"Authorization": "Bearer not.a.jwt"}
        )
        assert forged.status_code == 401, (method, path)
    expired = env.tokens.headers("admin", expires_in=-60)
    assert (await env.client.get("/me/notifications", headers=expired)).status_code == 401


async def test_roles_on_admin_and_staff_endpoints(env: Env) -> None:
    manager = env.tokens.headers("coop_manager", cooperative_id=str(uuid.uuid4()))
    supplier = env.tokens.headers("supplier", supplier_id=str(uuid.uuid4()))
    officer = env.tokens.headers("officer", kecamatan_codes=["35.78.22"])
    service = env.tokens.headers("service")
    for headers in (manager, supplier):
        for method, path, body in (
            ("GET", "/routing-rules", None),
            ("POST", "/routing-rules", {"event_type": "stock.low.v1", "audience": "admins"}),
            (
                "POST",
                "/subscriptions",
                {"channel": "email", "target": "a@b.id", "event_types": ["stock.low.v1"]},
            ),
            ("GET", "/subscriptions", None),
            ("GET", "/deliveries", None),
            ("POST", "/digests/run", {}),
            ("POST", "/escalations/run", {}),
            ("POST", "/announcements", {"title": "Halo semua", "body": "Isi"}),
        ):
            response = await env.client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path, response.text)
            assert error_code(response) == "forbidden"
    for method, path, body in (
        ("POST", "/routing-rules", {"event_type": "stock.low.v1", "audience": "admins"}),
        ("PATCH", f"/routing-rules/{uuid.uuid4()}", {"enabled": False}),
        ("DELETE", f"/routing-rules/{uuid.uuid4()}", None),
        ("POST", f"/deliveries/{uuid.uuid4()}/retry", None),
        ("POST", "/digests/run", {}),
    ):
        response = await env.client.request(method, path, json=body, headers=officer)
        assert response.status_code == 403, (method, path, response.text)
    # Machine clients run the jobs but have no inbox.
    assert (await env.client.post("/escalations/run", headers=service, json={})).status_code == 200
    assert (await env.client.post("/digests/run", headers=service, json={})).status_code == 200
    assert (await env.client.get("/me/notifications", headers=service)).status_code == 403
    # Officers read the routing table.
    listed = await env.client.get("/routing-rules", headers=officer)
    assert listed.status_code == 200
    stalled = {
        (r["audience"], r["match_field"]) for r in listed.json() if r["event_type"] == "stock.stalled.v1"
    }
    assert stalled == {("cooperative_managers", "cooperative_id"), ("officers_in_scope", "kecamatan_code")}


async def test_users_read_and_mark_only_their_own_inbox(env: Env) -> None:
    coop = str(uuid.uuid4())
    me, other = str(uuid.uuid4()), str(uuid.uuid4())
    mine = env.headers_for(me, "coop_manager", cooperative_id=coop)
    theirs = env.headers_for(other, "coop_manager", cooperative_id=str(uuid.uuid4()))
    # First visits teach the service who these users are (from their tokens).
    assert (await env.client.get("/me/notifications", headers=mine)).json() == []
    assert (await env.client.get("/me/notifications", headers=theirs)).json() == []
    admin = env.tokens.headers("admin")
    for title in ("Pengumuman satu", "Pengumuman dua"):
        made = await env.client.post(
            "/announcements",
            headers=admin,
            json={"title": title, "body": "Isi pengumuman.", "cooperative_ids": [coop]},
        )
        assert made.status_code == 201 and made.json()["recipients"] == 1, made.text
    response = await env.client.get("/me/notifications", headers=mine)
    assert response.headers["X-Total-Count"] == "2" and response.headers["X-Unread-Count"] == "2"
    newest, oldest = response.json()
    contract = {"id", "event_type", "title", "body", "cooperative_id", "created_at", "read_at"}
    assert contract <= set(newest) and newest["event_id"] == made.json()["id"]
    assert newest["created_at"] >= oldest["created_at"]
    assert (await env.client.get("/me/notifications", headers=theirs)).json() == []
    # Another user's notification is "not found", for reading and marking alike.
    stolen = await env.client.post(f"/me/notifications/{newest['id']}/read", headers=theirs)
    assert stolen.status_code == 404 and error_code(stolen) == "not_found"
    marked = await env.client.post(f"/me/notifications/{newest['id']}/read", headers=mine)
    assert marked.status_code == 200 and marked.json()["read_at"] is not None
    again = await env.client.post(f"/me/notifications/{newest['id']}/read", headers=mine)
    assert again.json()["read_at"] == marked.json()["read_at"]
    unread = await env.client.get("/me/notifications", headers=mine, params={"unread": "true"})
    assert [n["id"] for n in unread.json()] == [oldest["id"]]
    read = await env.client.get("/me/notifications", headers=mine, params={"unread": "false"})
    assert [n["id"] for n in read.json()] == [newest["id"]]
    summary = await env.client.get("/me/notifications/summary", headers=mine)
    assert summary.json() == {"total": 2, "unread": 1}
    everything = await env.client.post("/me/notifications/read-all", headers=mine)
    assert everything.json() == {"marked": 1}
    assert (await env.client.get("/me/notifications/summary", headers=mine)).json()["unread"] == 0
    paged = await env.client.get("/me/notifications", headers=mine, params={"limit": 1, "offset": 1})
    assert [n["id"] for n in paged.json()] == [oldest["id"]]


async def test_officer_subscriptions_and_deliveries_stay_in_scope(env: Env) -> None:
    officer_id = str(uuid.uuid4())
    officer = env.headers_for(officer_id, "officer", kecamatan_codes=["35.78.22"])
    body = {
        "channel": "email",
        "target": "petugas@dinkop.surabaya.go.id",
        "event_types": ["stock.stalled.v1"],
    }
    created = await env.client.post("/subscriptions", headers=officer, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["kecamatan_codes"] == ["35.78.22"] and created.json()["secret"] is None
    outside = await env.client.post(
        "/subscriptions", headers=officer, json={**body, "kecamatan_codes": ["35.78.01"]}
    )
    assert outside.status_code == 403
    other_officer = env.tokens.headers("officer", kecamatan_codes=["35.78.22"])
    assert (
        await env.client.get(f"/subscriptions/{created.json()['id']}", headers=other_officer)
    ).status_code == 404
    assert (
        await env.client.delete(f"/subscriptions/{created.json()['id']}", headers=other_officer)
    ).status_code == 404
    mine = await env.client.get("/subscriptions", headers=officer)
    assert [s["id"] for s in mine.json()] == [created.json()["id"]]
    admin_list = await env.client.get("/subscriptions", headers=env.tokens.headers("admin"))
    assert created.json()["id"] in {s["id"] for s in admin_list.json()}
    assert (await env.client.get("/deliveries", headers=officer)).json() == {"items": [], "total": 0}
    assert (await env.client.get(f"/deliveries/{uuid.uuid4()}", headers=officer)).status_code == 404
    assert (
        await env.client.delete(f"/subscriptions/{created.json()['id']}", headers=officer)
    ).status_code == 204
    assert (await env.client.get(f"/subscriptions/{created.json()['id']}", headers=officer)).json()[
        "active"
    ] is False


async def test_bad_input_gets_the_error_format_never_a_500(env: Env) -> None:
    admin = env.tokens.headers("admin")
    officer = env.tokens.headers("officer", kecamatan_codes=["35.78.22"])
    cases: list[tuple[str, str, Any, dict[str, str], int]] = [
        ("PUT", "/me/preferences", {"muted_event_types": ["stock.low.v1"], "owner": "x"}, officer, 422),
        ("PUT", "/me/preferences", {"muted_event_types": ["no.such.v1"]}, officer, 422),
        ("PUT", "/me/preferences", {"digest": "weekly"}, officer, 422),
        ("PUT", "/me/preferences", {"email": "maybe"}, officer, 422),
        ("PUT", "/me/preferences", ["not", "an", "object"], officer, 422),
        ("POST", "/routing-rules", {"event_type": "no.such.v1", "audience": "admins"}, admin, 422),
        ("POST", "/routing-rules", {"event_type": "stock.moved.v1", "audience": "admins"}, admin, 422),
        ("POST", "/routing-rules", {"event_type": "stock.low.v1", "audience": "everyone"}, admin, 422),
        ("POST", "/routing-rules", {"event_type": "stock.low.v1", "audience": "supplier"}, admin, 422),
        (
            "POST",
            "/routing-rules",
            {"event_type": "stock.low.v1", "audience": "admins", "match_field": "x"},
            admin,
            422,
        ),
        (
            "POST",
            "/routing-rules",
            {"event_type": "stock.low.v1", "audience": "admins", "when": {"x": ["1"]}},
            admin,
            422,
        ),
        (
            "POST",
            "/routing-rules",
            {"event_type": "stock.low.v1", "audience": "admins", "when": {"unit": []}},
            admin,
            422,
        ),
        (
            "POST",
            "/routing-rules",
            {"event_type": "stock.low.v1", "audience": "admins", "id": "x"},
            admin,
            422,
        ),
        ("PATCH", f"/routing-rules/{uuid.uuid4()}", {"enabled": True}, admin, 404),
        ("DELETE", f"/routing-rules/{uuid.uuid4()}", None, admin, 404),
        (
            "POST",
            "/subscriptions",
            {"channel": "sms", "target": "+62811", "event_types": ["stock.low.v1"]},
            admin,
            422,
        ),
        ("POST", "/subscriptions", {"channel": "email", "target": "a@b.id", "event_types": []}, admin, 422),
        (
            "POST",
            "/subscriptions",
            {"channel": "email", "target": "a@b.id", "event_types": ["user.created.v1"]},
            admin,
            422,
        ),
        (
            "POST",
            "/subscriptions",
            {
                "channel": "email",
                "target": "a@b.id",
                "event_types": ["stock.low.v1"],
                "kecamatan_codes": ["Gayungan"],
            },
            admin,
            422,
        ),
        (
            "POST",
            "/subscriptions",
            {"channel": "email", "target": "a@b.id", "event_types": ["stock.low.v1"], "secret": "mine"},
            admin,
            422,
        ),
        ("GET", f"/subscriptions/{uuid.uuid4()}", None, admin, 404),
        ("GET", "/deliveries?status=lost", None, admin, 422),
        ("GET", "/deliveries?limit=0", None, admin, 422),
        ("GET", f"/deliveries/{uuid.uuid4()}", None, admin, 404),
        ("POST", f"/deliveries/{uuid.uuid4()}/retry", None, admin, 404),
        ("POST", "/escalations/run", {"as_of": "yesterday"}, admin, 422),
        ("POST", "/digests/run", {"as_of": "2026-01-01T00:00:00Z", "extra": 1}, admin, 422),
        ("POST", "/announcements", {"title": "x", "body": "y"}, admin, 422),
        ("POST", "/announcements", {"title": "Judul", "body": "Isi", "roles": ["service"]}, admin, 422),
        (
            "POST",
            "/announcements",
            {"title": "Judul", "body": "Isi", "link": "https://evil.example/"},
            admin,
            422,
        ),
        (
            "POST",
            "/announcements",
            {"title": "Judul", "body": "Isi", "created_at": "2999-01-01T00:00:00Z"},
            admin,
            422,
        ),
        (
            "POST",
            "/announcements",
            {"title": "Judul", "body": "Isi", "kecamatan_codes": ["35.78.01"]},
            officer,
            403,
        ),
        ("GET", "/me/notifications?unread=perhaps", None, officer, 422),
        ("POST", "/me/notifications/does-not-exist/read", None, officer, 404),
    ]
    for method, path, body, headers, expected in cases:
        response = await env.client.request(method, path, json=body, headers=headers)
        assert response.status_code == expected, (method, path, body, response.status_code, response.text)
        code = error_code(response)
        if expected == 422:
            assert code in ("validation_error", "invalid_target"), code
            assert response.json()["error"]["details"], response.text
    broken = await env.client.post(
        "/subscriptions", headers={**admin, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert broken.status_code == 422 and error_code(broken) == "validation_error"
    huge = await env.client.post(
        "/announcements",
        headers={**admin, "Content-Type": "application/json"},
        content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
    )
    assert huge.status_code == 413 and error_code(huge) == "payload_too_large"
    builtin = next(r for r in (await env.client.get("/routing-rules", headers=admin)).json() if r["builtin"])
    refused = await env.client.delete(f"/routing-rules/{builtin['id']}", headers=admin)
    assert refused.status_code == 409 and error_code(refused) == "builtin_rule"


async def test_operations_endpoints(env: Env) -> None:
    ready = await env.client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["consumers"] == "ok"
    spec = (await env.client.get("/asyncapi.json")).json()
    text = str(spec)
    for queue in (
        "notifications.alerts",
        "notifications.users",
        "notifications.directory",
        "notifications.escalation",
    ):
        assert queue in text
    assert "notification.delivered.v1" in text and "notification.failed.v1" in text
    openapi = (await env.client.get("/openapi.json")).json()
    for path in ("/me/notifications", "/subscriptions", "/deliveries", "/routing-rules", "/me/preferences"):
        assert path in openapi["paths"]
    metrics = (await env.client.get("/metrics")).text
    assert "kkmp_notification_deliveries_pending" in metrics
    types = (await env.client.get("/event-types", headers=env.tokens.headers("officer"))).json()
    assert {"event_type": "stock.stalled.v1", "label": "Stok macet", "routable": True} in types
