"""Needs through the API: lifecycle and its events, comments, bad input, and response-time figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kkmp_shared import clock
from sourcing.adapters import orm
from sourcing_testkit import Service, in_days, q

pytestmark = [pytest.mark.integration, pytest.mark.clock]


def error(response, status: int, code: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["message"]
    if code:
        assert body["code"] == code, body
    return body


async def test_need_lifecycle_history_and_events(service: Service) -> None:
    svc = service
    coop = await svc.cooperative("35.78.04.1001")
    manager = svc.manager(coop.cooperative_id)
    c = svc.commodity("beras_premium")
    need = await svc.need(coop.cooperative_id, manager, commodity=c, quantity="120.5", needed_by=in_days(10))
    assert need["status"] == "open" and q(need["quantity"]) == q("120.5") and need["unit"] == "kg"
    assert need["submitted_by"] == f"mgr-{coop.cooperative_id[:8]}"
    [submitted] = await svc.probe.wait_for("need.submitted.v1", lambda e: e.data["need_id"] == need["id"])
    assert submitted.data["cooperative_id"] == coop.cooperative_id and submitted.data["kind"] == "supply"
    assert submitted.data["kelurahan_code"] == "35.78.04.1001" and q(submitted.data["quantity"]) == q("120.5")

    # The coop's manager may not move it; an officer acknowledges, works on and resolves it.
    path = f"/needs/{need['id']}/status"
    error(await svc.client.post(path, json={"status": "acknowledged"}, headers=manager), 403, "forbidden")
    error(
        await svc.client.post(path, json={"status": "resolved"}, headers=svc.officer),
        409,
        "illegal_status_change",
    )
    acknowledged = await svc.client.post(
        path, json={"status": "acknowledged", "note": "Kami cek ke Bulog"}, headers=svc.officer
    )
    assert acknowledged.status_code == 200
    assert (
        acknowledged.json()["status"] == "acknowledged" and acknowledged.json()["response_hours"] is not None
    )
    error(await svc.client.post(path, json={"status": "acknowledged"}, headers=svc.officer), 409)
    for step in ("in_progress", "resolved"):
        response = await svc.client.post(
            path, json={"status": step, "assigned_to": "Budi"}, headers=svc.officer
        )
        assert response.status_code == 200, response.text
    detail = response.json()
    assert [h["status"] for h in detail["history"]] == ["open", "acknowledged", "in_progress", "resolved"]
    assert (
        detail["history"][1]["note"] == "Kami cek ke Bulog"
        and detail["history"][1]["changed_by"] == "officer-1"
    )
    assert detail["assigned_to"] == "Budi" and detail["resolution_hours"] is not None
    events = await svc.probe.wait_for(
        "need.status_changed.v1", lambda e: e.data["need_id"] == need["id"], count=3
    )
    assert [(e.data["old_status"], e.data["new_status"]) for e in events] == [
        ("open", "acknowledged"),
        ("acknowledged", "in_progress"),
        ("in_progress", "resolved"),
    ]
    error(
        await svc.client.post(path, json={"status": "rejected"}, headers=svc.admin),
        409,
        "illegal_status_change",
    )
    error(await svc.client.post(path, json={"status": "done"}, headers=svc.admin), 422, "validation_error")


async def test_comments_and_reading_in_scope(service: Service) -> None:
    svc = service
    mine = await svc.cooperative("35.78.04.1002")
    other = await svc.cooperative("35.78.05.1001")
    need = await svc.need(
        mine.cooperative_id, kind="capital", amount=25_000_000, description="Modal gerai LPG"
    )
    assert need["matches"] == [] and need["amount"] == 25_000_000
    path = f"/needs/{need['id']}/comments"
    posted = await svc.client.post(
        path, json={"text": "Dokumen sudah lengkap"}, headers=svc.manager(mine.cooperative_id)
    )
    assert posted.status_code == 201 and posted.json()["author_role"] == "coop_manager"
    assert (await svc.client.post(path, json={"text": "Dijadwalkan"}, headers=svc.officer)).status_code == 201
    error(await svc.client.post(path, json={"text": "x"}, headers=svc.manager(other.cooperative_id)), 403)
    error(await svc.client.post(path, json={"text": ""}, headers=svc.officer), 422)
    detail = (await svc.client.get(f"/needs/{need['id']}", headers=svc.manager(mine.cooperative_id))).json()
    assert [c["text"] for c in detail["comments"]] == ["Dokumen sudah lengkap", "Dijadwalkan"]
    error(
        await svc.client.get(f"/needs/{need['id']}", headers=svc.manager(other.cooperative_id)),
        404,
        "not_found",
    )
    error(await svc.client.get(path, headers=svc.manager(other.cooperative_id)), 404)
    scoped = svc.headers("officer", kecamatan_codes=["35.78.05"])
    error(await svc.client.get(f"/needs/{need['id']}", headers=scoped), 404)
    assert (
        await svc.client.get(
            f"/needs/{need['id']}", headers=svc.headers("officer", kecamatan_codes=["35.78.04"])
        )
    ).status_code == 200

    # Lists keep to scope: a manager sees its own needs only, a scoped officer its kecamatan only.
    listed = (
        await svc.client.get("/needs", params={"kind": "capital"}, headers=svc.manager(mine.cooperative_id))
    ).json()
    assert {n["cooperative_id"] for n in listed["items"]} == {mine.cooperative_id}
    error(
        await svc.client.get(
            "/needs",
            params={"cooperative_id": mine.cooperative_id},
            headers=svc.manager(other.cooperative_id),
        ),
        404,
    )
    listed = (
        await svc.client.get("/needs", params={"cooperative_id": mine.cooperative_id}, headers=scoped)
    ).json()
    assert listed["items"] == [] and listed["total"] == 0
    listed = (
        await svc.client.get("/needs", params={"cooperative_id": mine.cooperative_id}, headers=svc.officer)
    ).json()
    assert [n["id"] for n in listed["items"]] == [need["id"]]


async def test_bad_needs_are_refused_and_leave_nothing(service: Service) -> None:
    svc = service
    coop = await svc.cooperative("35.78.04.1003")
    c = svc.commodity("gula")
    base = {
        "cooperative_id": coop.cooperative_id,
        "kind": "supply",
        "commodity": c,
        "quantity": 10,
        "description": "x",
    }
    cases = [
        ({**base, "commodity": "durian"}, 422, "unknown_commodity"),
        ({**base, "cooperative_id": "no-such-coop"}, 404, "unknown_cooperative"),
        ({**base, "needed_by": in_days(-1)}, 422, "needed_by_in_past"),
        ({**base, "quantity": 0}, 422, "validation_error"),
        ({**base, "quantity": -5}, 422, "validation_error"),
        ({**base, "quantity": "NaN"}, 422, "validation_error"),
        ({**base, "quantity": None}, 422, "validation_error"),
        ({**base, "kind": "wish"}, 422, "validation_error"),
        ({**base, "status": "resolved"}, 422, "validation_error"),
        ({**base, "description": ""}, 422, "validation_error"),
        ({**base, "needed_by": "tomorrow"}, 422, "validation_error"),
        ({**base, "submitted_at": "2026-01-01T00:00:00Z"}, 403, "forbidden"),  # officers may not back-date
    ]
    for body, status, code in cases:
        error(await svc.client.post("/needs", json=body, headers=svc.officer), status, code)
    error(
        await svc.client.post(
            "/needs", content=b"{not json", headers={**svc.officer, "content-type": "application/json"}
        ),
        422,
    )
    error(await svc.client.post("/needs", json=base, headers=svc.manager("another-coop")), 403)
    error(await svc.client.post("/needs", json=base, headers=svc.supplier("s-1")), 403)
    error(
        await svc.client.post(
            "/needs", json=base, headers=svc.headers("officer", kecamatan_codes=["35.78.01"])
        ),
        403,
    )
    lpg = {**base, "commodity": svc.commodity("lpg_3kg"), "quantity": "2.5"}
    error(await svc.client.post("/needs", json=lpg, headers=svc.officer), 422, "whole_units_only")
    # A batch with one bad need creates none.
    batch = {"needs": [base, {**base, "commodity": "durian"}]}
    error(await svc.client.post("/needs/batch", json=batch, headers=svc.admin), 422, "unknown_commodity")
    assert await svc.rows(orm.needs, orm.needs.c.cooperative_id == coop.cooperative_id) == []
    created = await svc.client.post("/needs/batch", json={"needs": [base, base]}, headers=svc.admin)
    assert created.status_code == 201 and created.json()["created"] == 2
    assert len(await svc.rows(orm.needs, orm.needs.c.cooperative_id == coop.cooperative_id)) == 2
    error(await svc.client.get("/needs/does-not-exist", headers=svc.admin), 404, "not_found")
    error(
        await svc.client.post(
            "/needs/does-not-exist/status", json={"status": "acknowledged"}, headers=svc.admin
        ),
        404,
    )


async def test_response_time_figures(service: Service) -> None:
    """Back-dated needs and answers (as the demo seed writes them) give exact figures."""
    svc = service
    coop = await svc.cooperative("35.78.06.1001")
    t0 = clock.now().replace(microsecond=0) - timedelta(days=60)
    # (hours to first answer, hours to resolution) per need; None = not (yet) reached.
    plan = [(2, 26), (10, None), (40, None), (None, None)]
    for i, (answer, resolve) in enumerate(plan):
        submitted = t0 + timedelta(hours=i)
        need = await svc.need(
            coop.cooperative_id,
            kind="training",
            description=f"Pelatihan {i}",
            submitted_at=submitted.isoformat(),
        )
        path = f"/needs/{need['id']}/status"
        if answer is not None:
            at = submitted + timedelta(hours=answer)
            response = await svc.client.post(
                path, json={"status": "acknowledged", "changed_at": at.isoformat()}, headers=svc.admin
            )
            assert response.status_code == 200, response.text
            assert response.json()["response_hours"] == answer
        if resolve is not None:
            for step, hours in (("in_progress", answer + 1), ("resolved", resolve)):
                at = submitted + timedelta(hours=hours)
                response = await svc.client.post(
                    path, json={"status": step, "changed_at": at.isoformat()}, headers=svc.admin
                )
                assert response.status_code == 200, response.text
    # A change cannot be dated before the previous one.
    error(
        await svc.client.post(
            path,
            json={"status": "acknowledged", "changed_at": (t0 - timedelta(days=1)).isoformat()},
            headers=svc.admin,
        ),
        422,
    )
    window = {"since": (t0 - timedelta(minutes=1)).isoformat(), "until": (t0 + timedelta(days=5)).isoformat()}
    response = await svc.client.get(
        "/needs/stats",
        params={**window, "kecamatan_code": "35.78.06", "group_by": "kecamatan"},
        headers=svc.officer,
    )
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["total"] == 4 and stats["open"] == 1 and stats["answered"] == 3
    assert stats["by_status"] == {
        "open": 1,
        "acknowledged": 2,
        "in_progress": 0,
        "resolved": 1,
        "rejected": 0,
    }
    assert stats["median_response_hours"] == 10.0
    assert stats["avg_response_hours"] == round((2 + 10 + 40) / 3, 2)
    assert stats["median_resolution_hours"] == 26.0
    assert stats["answered_within_24h_share"] == 0.5
    assert stats["unanswered_over_24h"] == 1
    assert stats["open_now"] >= 1
    assert [k["kecamatan_code"] for k in stats["by_kecamatan"]] == ["35.78.06"]
    # Who may see them: staff in scope only.
    error(await svc.client.get("/needs/stats", headers=svc.manager(coop.cooperative_id)), 403)
    error(await svc.client.get("/needs/stats", headers=svc.supplier("s")), 403)
    scoped = svc.headers("officer", kecamatan_codes=["35.78.01"])
    error(await svc.client.get("/needs/stats", params={"kecamatan_code": "35.78.06"}, headers=scoped), 403)
    own = (await svc.client.get("/needs/stats", params=window, headers=scoped)).json()
    assert own["total"] == 0
    error(await svc.client.get("/needs/stats", params={"since": "yesterday"}, headers=svc.admin), 422)
    naive = {"since": (t0 - timedelta(minutes=1)).replace(tzinfo=None).isoformat(), "until": window["until"]}
    same = await svc.client.get(
        "/needs/stats", params={**naive, "kecamatan_code": "35.78.06"}, headers=svc.admin
    )
    assert same.status_code == 200 and same.json()["total"] == 4
