"""Monthly reports over HTTP with the real broker: submission and its rules, timeliness, rates per
kecamatan and city, and overdue detection (announced once per cooperative and period)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from kkmp_testkit.wait import quiet_period
from reporting.adapters import figures
from reporting.domain.periods import DueRule, Period, local_date, zone
from reporting_testkit import Coop, Running, days_ago, fresh_kecamatan, utcnow

pytestmark = [pytest.mark.integration, pytest.mark.clock]

WIB = zone("Asia/Jakarta")
RULE = DueRule()
OVERDUE = "report.overdue.v1"


def body(period: Period | str, **extra: Any) -> dict[str, Any]:
    return {"period": str(period), "omzet": 12_500_000, "transactions": 310, "members": 48, **extra}


async def register(service: Running, *coops_and_dates: tuple[Coop, datetime]) -> None:
    start = service.processed
    for coop, registered_at in coops_and_dates:
        await service.publish(coop.registered(registered_at))
    await service.settle(start + len(coops_and_dates))


async def test_submission_rules_timeliness_and_rates(service: Running) -> None:
    kec, other_kec = fresh_kecamatan(), fresh_kecamatan()
    old, new, elsewhere = (
        Coop(kec, "KKMP Lama"),
        Coop(kec, "KKMP Baru", kelurahan_code=f"{kec}.1002"),
        Coop(other_kec),
    )
    await register(service, (old, days_ago(200)), (new, days_ago(1)), (elsewhere, days_ago(200)))
    today = local_date(utcnow(), WIB)
    current, p1 = Period.of(today), RULE.latest_passed(today)
    p2, p3 = p1.shift(-1), p1.shift(-2)
    client, url = service.client, f"/cooperatives/{old.id}/reports"

    # The cooperative's own manager: this month (before its due date) is on time, p1 (past due) late.
    mine = service.manager(old.id)
    first = await client.post(url, headers=mine, json=body(current, simpanan=2_000_000, notes="Baik"))
    assert first.status_code == 201, first.text
    assert first.json()["on_time"] is True and first.json()["due_date"] == RULE.due_date(current).isoformat()
    late = await client.post(url, headers=mine, json=body(p1))
    assert late.status_code == 201 and late.json()["on_time"] is False
    submitted = await service.probe.wait_for(
        "report.submitted.v1", lambda e: e.subject == old.id and e.data["period"] == str(current)
    )
    assert submitted[0].data["on_time"] is True and submitted[0].data["omzet"] == 12_500_000
    duplicate = await client.post(url, headers=mine, json=body(p1))
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "report_exists"

    # Who may submit: not another cooperative's manager, a supplier, or an officer of another area.
    for headers in (
        service.manager(elsewhere.id),
        service.headers("supplier", supplier_id="s1"),
        service.officer(other_kec),
    ):
        refused = await client.post(url, headers=headers, json=body(p2))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
    # An officer of the area may (its report is late: p2 is past due).
    by_officer = await client.post(url, headers=service.officer(kec), json=body(p2))
    assert by_officer.status_code == 201 and by_officer.json()["on_time"] is False
    # Only an administrator may back-date, e.g. a paper report that arrived on its due date.
    on_paper = datetime.combine(RULE.due_date(p3), time(15), tzinfo=WIB).astimezone(UTC).isoformat()
    forbidden = await client.post(url, headers=mine, json=body(p3, submitted_at=on_paper))
    assert forbidden.status_code == 403
    backdated = await client.post(url, headers=service.admin, json=body(p3, submitted_at=on_paper))
    assert backdated.status_code == 201 and backdated.json()["on_time"] is True

    # Bad input of every kind: 422 in the contract's format, naming the field.
    cases = [
        (body("2025-13"), "period"),
        (body(current, surprise=1), "surprise"),
        (body(current, omzet=-5), "omzet"),
        (body(current, omzet=1.5), "omzet"),
        (body(current, omzet="100"), "omzet"),
        ({"period": str(current)}, "omzet"),
        (body(current.shift(1)), "period"),
        (body(current, notes="x" * 2001), "notes"),
    ]
    for payload, field_name in cases:
        response = await client.post(f"/cooperatives/{new.id}/reports", headers=service.admin, json=payload)
        assert response.status_code == 422, (payload, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert any(d["field"].endswith(field_name) for d in error["details"]), error
    before_month = datetime.combine(current.first_day - timedelta(days=3), time(9), tzinfo=WIB).isoformat()
    early = await client.post(
        f"/cooperatives/{new.id}/reports",
        headers=service.admin,
        json=body(current, submitted_at=before_month),
    )
    assert early.status_code == 422 and early.json()["error"]["details"][0]["field"] == "submitted_at"
    unknown = await client.post(
        "/cooperatives/no-such-coop/reports", headers=service.admin, json=body(current)
    )
    assert unknown.status_code == 404
    not_json = await client.post(url, headers={**mine, "Content-Type": "application/json"}, content=b"{")
    assert not_json.status_code == 422 and not_json.json()["error"]["code"] == "validation_error"

    # Reading: the manager sees its reports newest first; another manager gets 404.
    listed = await client.get(url, headers=mine)
    assert [r["period"] for r in listed.json()] == [str(current), str(p1), str(p2), str(p3)]
    assert (await client.get(url, headers=service.manager(elsewhere.id))).status_code == 404

    # Rates: the new cooperative did not exist in p1, so only the old one was expected.
    rates = await client.get("/reports/rates", headers=service.officer(kec), params={"period": str(p1)})
    assert rates.status_code == 200
    [row] = rates.json()["kecamatan"]
    assert (row["expected"], row["submitted"], row["on_time"], row["late"], row["missing"]) == (1, 1, 0, 1, 0)
    assert (row["completeness_rate"], row["on_time_rate"]) == (1.0, 0.0)
    on_time = await client.get("/reports/rates", headers=service.officer(kec), params={"period": str(p3)})
    assert on_time.json()["city"]["on_time_rate"] == 1.0
    # This month both cooperatives are expected; one has reported, on time.
    month = await client.get("/reports/rates", headers=service.officer(kec), params={"period": str(current)})
    city = month.json()["city"]
    assert (city["expected"], city["submitted"], city["on_time"], city["completeness_rate"]) == (2, 1, 1, 0.5)
    # With REPORTS_EXPECTED_FROM the newcomer owes p1 too, however late the registry learnt of it.
    async with service.app.state.db.session() as session:
        everyone = await figures.report_counts(session, p1, WIB, DueRule(expected_from=p3), [kec])
        by_registration = await figures.report_counts(session, p1, WIB, RULE, [kec])
    assert (everyone[kec].expected, by_registration[kec].expected) == (2, 1)


async def test_overdue_reports_are_announced_once_per_cooperative_and_period(service: Running) -> None:
    kec = fresh_kecamatan()
    diligent, silent, newcomer = Coop(kec, "KKMP Rajin"), Coop(kec, "KKMP Diam"), Coop(kec, "KKMP Anyar")
    arrived = days_ago(1)
    await register(service, (diligent, days_ago(200)), (silent, days_ago(200)), (newcomer, arrived))
    today = local_date(utcnow(), WIB)
    periods = RULE.passed_periods(today, 3)
    batch = await service.client.post(
        "/reports/batch",
        headers=service.admin,
        json={"reports": [{"cooperative_id": diligent.id, **body(p)} for p in periods]},
    )
    assert batch.status_code == 201 and batch.json()["created"] == 3

    def overdue_for(coop: Coop) -> list[str]:
        return sorted(e.data["period"] for e in service.probe.of_type(OVERDUE) if e.subject == coop.id)

    refused = await service.client.post("/reports/overdue/run", headers=service.manager(silent.id), json={})
    assert refused.status_code == 403
    run = await service.client.post("/reports/overdue/run", headers=service.officer(), json={})
    assert run.status_code == 200 and run.json()["periods"] == [str(p) for p in periods]
    await service.probe.wait_for(OVERDUE, lambda e: e.subject == silent.id, count=3)
    assert overdue_for(silent) == sorted(str(p) for p in periods)
    event = next(e for e in service.probe.of_type(OVERDUE) if e.subject == silent.id)
    assert event.data["due_date"] == RULE.due_date(Period.parse(event.data["period"])).isoformat()

    # Again: nothing new for anyone.
    again = await service.client.post("/reports/overdue/run", headers=service.officer(), json={})
    assert again.status_code == 200 and again.json()["announced"] == 0

    # As of the day after this month's due date, every period after those announced is overdue too:
    # this month, and on days 1-10 also the last one (its due date, the 10th, is still to come today).
    # Each is owed by whoever existed during it; the older periods are not announced a second time.
    current = Period.of(today)
    newly = [periods[0].shift(n) for n in range(1, 3) if periods[0].shift(n) <= current]
    as_of = datetime.combine(RULE.due_date(current) + timedelta(days=1), time(9), tzinfo=WIB)
    later = await service.client.post(
        "/reports/overdue/run", headers=service.admin, json={"as_of": as_of.isoformat()}
    )
    assert later.status_code == 200 and later.json()["by_period"][str(current)] >= 2
    owed_by_newcomer = [str(p) for p in newly if arrived < p.ends_at(WIB)]
    await service.probe.wait_for(OVERDUE, lambda e: e.subject == newcomer.id, count=len(owed_by_newcomer))
    await service.probe.wait_for(OVERDUE, lambda e: e.subject == silent.id, count=3 + len(newly))
    await service.probe.wait_for(OVERDUE, lambda e: e.subject == diligent.id, count=len(newly))
    await quiet_period()  # anything wrongly announced twice would have arrived by now
    assert overdue_for(silent) == sorted([*(str(p) for p in periods), *(str(p) for p in newly)])
    assert overdue_for(newcomer) == owed_by_newcomer
    assert overdue_for(diligent) == [str(p) for p in newly]
    bad = await service.client.post(
        "/reports/overdue/run", headers=service.admin, json={"as_of": "yesterday"}
    )
    assert bad.status_code == 422


async def test_batch_is_all_or_nothing(service: Running) -> None:
    coop = Coop(fresh_kecamatan(), "KKMP Borong")
    await register(service, (coop, days_ago(100)))
    period = RULE.latest_passed(local_date(utcnow(), WIB))
    unknown = await service.client.post(
        "/reports/batch",
        headers=service.admin,
        json={
            "reports": [
                {"cooperative_id": coop.id, **body(period)},
                {"cooperative_id": "nope", **body(period)},
            ]
        },
    )
    assert (
        unknown.status_code == 422
        and unknown.json()["error"]["details"][0]["field"] == "reports.1.cooperative_id"
    )
    twice = await service.client.post(
        "/reports/batch",
        headers=service.admin,
        json={
            "reports": [
                {"cooperative_id": coop.id, **body(period)},
                {"cooperative_id": coop.id, **body(period)},
            ]
        },
    )
    assert twice.status_code == 409
    listed = await service.client.get(f"/cooperatives/{coop.id}/reports", headers=service.admin)
    assert listed.json() == [], "nothing of a refused batch was kept"
    officer = await service.client.post(
        "/reports/batch",
        headers=service.officer(),
        json={"reports": [{"cooperative_id": coop.id, **body(period)}]},
    )
    assert officer.status_code == 403
