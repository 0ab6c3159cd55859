"""Mass assignment where the field is a real one: a body may name a cooperative, a status, a time or a
scope, and only some callers may set it. Each case sends the privileged value as a caller who may not
set it, expects a refusal, and reads back through the API that nothing was applied.

(Unknown fields in every body of every service are refused by test_authorization_matrix.py's
test_privileged_and_unknown_fields_are_refused.)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from kkmp_shared import clock

pytestmark = pytest.mark.e2e

LONG_AGO = (clock.now() - timedelta(days=400)).isoformat()


def h(city: Any, name: str) -> dict[str, str]:
    return dict(city.principals[name].headers)


def get(city: Any, service: str, path: str, who: str = "admin", **params: Any) -> Any:
    response = httpx.get(f"{city.url(service)}{path}", headers=h(city, who), params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def send(
    city: Any, method: str, service: str, path: str, who: str, body: Any, **params: Any
) -> httpx.Response:
    return httpx.request(
        method, f"{city.url(service)}{path}", headers=h(city, who), json=body, params=params, timeout=30
    )


def refused(response: httpx.Response) -> None:
    assert response.status_code in (403, 422), f"{response.status_code} {response.text[:300]}"
    assert "error" in response.json()


def test_a_manager_cannot_set_its_cooperatives_status_or_name(city: Any) -> None:
    a = city.sides["A"]
    path = f"/cooperatives/{a.cooperative}"
    before = get(city, "registry", path)
    for body in (
        {"status": "suspended"},
        {"name": "KKMP Milik Saya"},
        {"formation": "revitalized"},
        {"deed": {"number": "1", "date": "2024-01-01", "notary": "Notaris X"}},
    ):
        refused(send(city, "PATCH", "registry", path, "manager_a", body))
    # An officer may change the status (in scope), not the name.
    refused(send(city, "PATCH", "registry", path, "officer_in", {"name": "KKMP Lain"}))
    after = get(city, "registry", path)
    for field in ("status", "name", "formation", "deed"):
        assert after[field] == before[field], field


def test_back_dating_is_for_administrators_only(city: Any) -> None:
    a = city.sides["A"]
    needs_before = get(city, "sourcing", "/needs", cooperative_id=a.cooperative)["total"]
    refused(
        send(
            city,
            "POST",
            "sourcing",
            "/needs",
            "manager_a",
            {
                "cooperative_id": a.cooperative,
                "kind": "other",
                "description": "Lama",
                "submitted_at": LONG_AGO,
            },
        )
    )
    assert get(city, "sourcing", "/needs", cooperative_id=a.cooperative)["total"] == needs_before

    reports_before = len(get(city, "reporting", f"/cooperatives/{a.cooperative}/reports"))
    refused(
        send(
            city,
            "POST",
            "reporting",
            f"/cooperatives/{a.cooperative}/reports",
            "manager_a",
            {
                "period": "1999-12",
                "omzet": 1,
                "transactions": 1,
                "members": 1,
                "submitted_at": LONG_AGO,
            },
        )
    )
    assert len(get(city, "reporting", f"/cooperatives/{a.cooperative}/reports")) == reports_before


def test_a_manager_cannot_move_its_needs_along(city: Any) -> None:
    a = city.sides["A"]
    need = a["need"]
    before = get(city, "sourcing", f"/needs/{need}")["status"]
    for status in ("acknowledged", "resolved", "rejected"):
        refused(send(city, "POST", "sourcing", f"/needs/{need}/status", "manager_a", {"status": status}))
    assert get(city, "sourcing", f"/needs/{need}")["status"] == before


def test_a_manager_cannot_enrol_another_cooperatives_people(city: Any) -> None:
    a, b = city.sides["A"], city.sides["B"]
    training = a["training"]
    response = send(
        city,
        "POST",
        "registry",
        f"/trainings/{training}/participants",
        "manager_a",
        {
            "participants": [{"cooperative_id": b.cooperative, "name": "Orang B"}],
        },
    )
    refused(response)
    participants = get(city, "registry", f"/trainings/{training}")["participants"]
    assert all(p["cooperative_id"] != b.cooperative for p in participants)


def test_a_query_parameter_cannot_redirect_a_write(city: Any) -> None:
    """A cooperative named in the query of a write is ignored: the movement lands where the path says."""
    a, b = city.sides["A"], city.sides["B"]
    before = get(city, "inventory", f"/cooperatives/{b.cooperative}/movements")["total"]
    response = send(
        city,
        "POST",
        "inventory",
        f"/cooperatives/{a.cooperative}/movements",
        "manager_a",
        {"commodity": "garam", "kind": "receipt", "quantity": "1", "unit_price": 5000},
        cooperative_id=b.cooperative,
    )
    assert response.status_code == 201, response.text
    assert response.json()["cooperative_id"] == a.cooperative
    assert get(city, "inventory", f"/cooperatives/{b.cooperative}/movements")["total"] == before


def test_a_manager_cannot_choose_a_daily_digest(city: Any) -> None:
    before = get(city, "notifications", "/me/preferences", who="manager_a")
    refused(send(city, "PUT", "notifications", "/me/preferences", "manager_a", {"digest": "daily"}))
    assert get(city, "notifications", "/me/preferences", who="manager_a") == before


def test_an_officer_cannot_reach_beyond_its_kecamatan(city: Any) -> None:
    b = city.sides["B"]
    subscriptions = len(get(city, "notifications", "/subscriptions", who="officer_in"))
    refused(
        send(
            city,
            "POST",
            "notifications",
            "/subscriptions",
            "officer_in",
            {
                "channel": "email",
                "target": "pengawas@example.org",
                "event_types": ["stock.stalled.v1"],
                "kecamatan_codes": [b.kecamatan],
            },
        )
    )
    assert len(get(city, "notifications", "/subscriptions", who="officer_in")) == subscriptions

    title = "Pengumuman untuk B dari luar wilayah"
    response = send(
        city,
        "POST",
        "notifications",
        "/announcements",
        "officer_in",
        {
            "title": title,
            "body": "Tidak boleh sampai",
            "roles": ["coop_manager"],
            "cooperative_ids": [b.cooperative],
        },
    )
    assert response.status_code in (201, 403, 422), response.text
    inbox = get(city, "notifications", "/me/notifications", who="manager_b", limit=500)
    assert all(n["title"] != title for n in inbox), "an officer wrote into another kecamatan's inbox"

    # Staff acting on an order cannot allocate a delivery to a cooperative that is not on it.
    order = city.sides["A"]["order"]
    response = send(
        city,
        "POST",
        "sourcing",
        f"/orders/{order}/deliver",
        "officer_in",
        {
            "allocations": [{"cooperative_id": b.cooperative, "quantity": "1"}],
        },
    )
    assert response.status_code in (403, 404, 409, 422), response.text
    deliveries = get(city, "sourcing", f"/orders/{order}")["deliveries"]
    assert all(d["cooperative_id"] != b.cooperative for d in deliveries)


def test_a_user_cannot_be_given_a_scope_its_role_does_not_have(city: Any) -> None:
    """A manager with kecamatan codes, a supplier bound to a cooperative: refused, not half-applied."""
    a = city.sides["A"]
    for body in (
        {"role": "coop_manager", "cooperative_id": a.cooperative, "kecamatan_codes": ["35.78.01"]},
        {"role": "officer", "kecamatan_codes": ["35.78.01"], "supplier_id": a["supplier"]},
        {"role": "supplier", "supplier_id": a["supplier"], "cooperative_id": a.cooperative},
    ):
        response = send(
            city,
            "POST",
            "registry",
            "/users",
            "admin",
            {
                "username": f"sec-mixed-{body['role']}",
                "password": "mixed-pass-123",
                **body,
            },
        )
        assert response.status_code == 422, response.text
    users = get(city, "registry", "/users", limit=500)
    assert not any(u["username"].startswith("sec-mixed-") for u in users)
