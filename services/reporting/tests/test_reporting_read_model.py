"""The read model against a fixture stream of events on the real broker (SQLite and PostgreSQL):
exact counts, values and medians; unchanged under duplicate delivery; unchanged after a replay."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from kkmp_shared.db import Database
from kkmp_shared.events.envelope import new_event
from kkmp_testkit.wait import eventually
from reporting.adapters import event_store, orm
from reporting.cli import rebuild_read_models
from reporting.domain.periods import local_date, week_start, zone
from reporting.settings import ReportingSettings
from reporting_testkit import Coop, Running, days_ago, fresh_kecamatan, utcnow
from sqlalchemy import select

pytestmark = [pytest.mark.integration, pytest.mark.clock]

WIB = zone("Asia/Jakarta")


def local(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=WIB)


class Stream:
    """Three cooperatives in two kecamatan and what happened to them over the last three weeks."""

    def __init__(self) -> None:
        self.a, self.b = fresh_kecamatan(), fresh_kecamatan()
        self.a1 = Coop(self.a, "KKMP Alpha Satu")
        self.a2 = Coop(self.a, "KKMP Alpha Dua", kelurahan_code=f"{self.a}.1002")
        self.b1 = Coop(self.b, "KKMP Beta")
        self.w0 = week_start(local_date(utcnow(), WIB))
        self.w1, self.w2 = self.w0 - timedelta(weeks=1), self.w0 - timedelta(weeks=2)
        self.need_base = days_ago(5)
        self.gula_detected = local(self.w1 + timedelta(days=3), 12)
        self.telur_detected = local(self.w1 + timedelta(days=6), 23)

    def events(self) -> list[Any]:
        a1, a2, b1, w1, w2, base = self.a1, self.a2, self.b1, self.w1, self.w2, self.need_base
        registered = days_ago(200)
        needs = {k: str(uuid.uuid4()) for k in ("n1", "n2", "n3", "n4", "n5")}
        h = timedelta(hours=1)
        return [
            a1.registered(registered),
            a2.registered(registered),
            b1.registered(registered),
            a1.receipt("beras_medium", "50", local(w2, 8), on_hand_after="50"),
            a1.sale("beras_medium", "10", 130_000, local(w2 + timedelta(days=1), 10), on_hand_after="40"),
            a1.sale("beras_medium", "2.5", 32_500, local(w1, 10), on_hand_after="37.5"),
            a1.sale("beras_medium", "1.5", 19_500, local(w1 + timedelta(days=1), 10), on_hand_after="36"),
            a1.sale("beras_medium", "4", 52_000, local(w1 + timedelta(days=2), 10), on_hand_after="32"),
            a1.stalled("gula", 170_000, self.gula_detected, days=20),
            a1.low("telur", local(w1, 9)),
            a1.recovered("telur", "low", local(w1 + timedelta(days=4), 9)),
            a1.price_violation(local(w1 + timedelta(days=2), 11)),
            a2.sale("gula", "2", 34_000, local(w1 + timedelta(days=3), 10), on_hand_after="8"),
            a2.stalled("minyakita", 93_000, local(w2 + timedelta(days=4), 12)),
            a2.recovered("minyakita", "stalled", local(w1 + timedelta(days=1), 12)),
            a2.low("beras_premium", local(w1 + timedelta(days=5), 9)),
            b1.stalled("telur", 50_000, self.telur_detected, days=9),
            b1.stockout("lpg_3kg", local(w1 + timedelta(days=5), 9)),
            a1.need(needs["n1"], base),
            a1.need_status(needs["n1"], "open", "acknowledged", base, base + 2 * h),
            a1.need_status(needs["n1"], "acknowledged", "in_progress", base, base + 5 * h),
            a2.need(needs["n2"], base),
            a2.need_status(needs["n2"], "open", "acknowledged", base, base + 6 * h),
            a1.need(needs["n3"], base),
            b1.need(needs["n4"], base),
            b1.need_status(needs["n4"], "open", "acknowledged", base, base + 10 * h),
            b1.need(needs["n5"], base),
            b1.need_status(needs["n5"], "open", "resolved", base, base + 1 * h),
            a1.member(1, days_ago(10)),
            a1.member(2, days_ago(9)),
            b1.member(1, days_ago(8)),
            a1.training(days_ago(30)),
        ]


async def snapshot(service: Running, s: Stream) -> dict[str, Any]:
    """Every figure the stream feeds, as the API answers them (minus the moment of answering)."""
    officer = service.officer(s.a, s.b)
    client = service.client

    async def get(path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        response = await client.get(path, headers=headers or officer, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    summary = await get("/dashboard/summary")
    summary.pop("as_of")
    kecamatan = await get("/kecamatan")
    detail = await get(f"/cooperatives/{s.a1.id}")
    detail.pop("as_of")
    detail["health"].pop("computed_at")
    health = {}
    for coop in (s.a1, s.a2, s.b1):
        body = await get(f"/cooperatives/{coop.id}/health")
        body.pop("computed_at")
        health[coop.id] = body
    cooperatives = await get("/cooperatives")
    for row in cooperatives["items"]:
        row.pop("health_computed_at")  # when it was computed, not what
    return {
        "summary": summary,
        "kecamatan": kecamatan,
        "stalled": await get("/stalled"),
        "series": await get("/timeseries/sales", weeks=3),
        "series_a_beras": await get(
            "/timeseries/sales", weeks=3, kecamatan_code=s.a, commodity="beras_medium"
        ),
        "responses": await get("/needs/response-times"),
        "violations": await get("/price-violations"),
        "cooperatives": cooperatives,
        "detail": detail,
        "health": health,
    }


async def test_figures_match_the_fixture_stream_exactly_and_survive_duplicates_and_replay(
    service: Running,
) -> None:
    s = Stream()
    events = s.events()
    start = service.processed
    published = [await service.publish(data) for data in events]
    officer = service.officer(s.a, s.b)

    async def summary_settled() -> dict[str, Any]:
        body = (await service.client.get("/dashboard/summary", headers=officer)).json()
        body.pop("as_of")
        assert body == {
            "cooperatives": {"total": 3, "by_health": body["cooperatives"]["by_health"]},
            "needs": {"open": 4, "unanswered": 1, "responded": 4, "median_response_hours": 4.0},
            "stock": {"stalled_items": 2, "stalled_value": 220_000, "low_items": 1, "stockout_items": 1},
            "reports": {
                "period": body["reports"]["period"],
                "expected": 3,
                "submitted": 0,
                "on_time": 0,
                "completeness_rate": 0.0,
                "on_time_rate": 0.0,
            },
        }
        assert sum(body["cooperatives"]["by_health"].values()) == 3, "every cooperative's health is counted"
        return body

    await service.settle(start + len(events))
    await eventually(summary_settled, timeout=5)
    before = await snapshot(service, s)

    by_code = {row["kecamatan_code"]: row for row in before["kecamatan"]}
    assert set(by_code) == {s.a, s.b}, "an officer sees only its kecamatan"
    assert by_code[s.a]["cooperatives"]["total"] == 2 and by_code[s.b]["cooperatives"]["total"] == 1
    assert by_code[s.a]["needs"] == {"open": 3, "unanswered": 1, "responded": 2, "median_response_hours": 4.0}
    assert by_code[s.b]["needs"] == {"open": 1, "unanswered": 0, "responded": 2, "median_response_hours": 5.5}
    assert by_code[s.a]["stock"] == {
        "stalled_items": 1,
        "stalled_value": 170_000,
        "low_items": 1,
        "stockout_items": 0,
    }
    assert by_code[s.b]["stock"] == {
        "stalled_items": 1,
        "stalled_value": 50_000,
        "low_items": 0,
        "stockout_items": 1,
    }
    assert by_code[s.a]["reports"]["expected"] == 2 and by_code[s.b]["reports"]["expected"] == 1

    now = utcnow()
    assert [(i["cooperative_id"], i["commodity"], i["value"]) for i in before["stalled"]] == [
        (s.a1.id, "gula", 170_000),
        (s.b1.id, "telur", 50_000),
    ]
    gula = before["stalled"][0]
    assert gula["cooperative_name"] == "KKMP Alpha Satu" and gula["on_hand"] == 10.0 and gula["unit"] == "kg"
    assert gula["days_since_sale"] == 20 + (now - s.gula_detected).days
    assert before["stalled"][1]["days_since_sale"] == 9 + (now - s.telur_detected).days

    weeks = before["series"]["weeks"]
    assert [w["week_start"] for w in weeks] == [s.w2.isoformat(), s.w1.isoformat(), s.w0.isoformat()]
    assert [(w["value"], w["quantity"], w["transactions"]) for w in weeks] == [
        (130_000, 10.0, 1),
        (138_000, 10.0, 4),
        (0, 0.0, 0),
    ]
    assert [w["stalled_value"] for w in weeks] == [93_000, 220_000, 220_000]
    beras = before["series_a_beras"]["weeks"]
    assert [(w["value"], w["quantity"], w["transactions"]) for w in beras] == [
        (130_000, 10.0, 1),
        (104_000, 8.0, 3),
        (0, 0.0, 0),
    ]
    assert [w["stalled_value"] for w in beras] == [0, 0, 0]

    responses = before["responses"]
    assert responses["responded"] == 4 and responses["median_hours"] == 4.0
    assert responses["open"] == 4 and responses["unanswered"] == 1
    assert responses["mean_hours"] == 4.75  # (2 + 6 + 10 + 1) / 4
    assert {g["key"]: g["median_hours"] for g in responses["by_kecamatan"]} == {s.a: 4.0, s.b: 5.5}
    assert before["violations"]["total"] == 1 and before["violations"]["total_excess_value"] == 5_000

    stock = {item["commodity"]: item for item in before["detail"]["stock"]}
    assert stock["beras_medium"]["on_hand"] == 32.0 and stock["beras_medium"]["status"] == "ok"
    assert stock["gula"]["status"] == "stalled" and stock["telur"]["status"] == "ok"
    assert before["detail"]["members"]["count"] == 2 and before["detail"]["members"]["joined_30d"] == 2
    assert len(before["detail"]["trainings"]) == 1
    assert before["detail"]["needs"]["median_response_hours"] == 2.0
    factors = {f["name"]: f for f in before["health"][s.a1.id]["factors"]}
    assert factors["trading_activity"]["value"] == round(4 / 12, 4), "sales on 4 days of the last 30"
    assert factors["stalled_stock"]["value"] == 0.5, "gula stalled, beras on hand"
    assert factors["unanswered_needs"]["value"] == round(1 - 1 / 3, 4), "n3 open for five days"

    # Duplicate delivery: every event again, with its id; nothing may change.
    runner = service.app.state.runner
    duplicates_before = runner.stats["duplicates"]
    for event, data in zip(published, events, strict=True):
        await service.publish(data, event_id=event.id)
    await eventually(lambda: runner.stats["duplicates"] >= duplicates_before + len(events), timeout=30)
    assert await snapshot(service, s) == before

    # Replay from a clean state: the same figures.
    rebuilt = await service.client.post("/admin/rebuild", headers=service.admin)
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["events_replayed"] >= len(events)
    assert await snapshot(service, s) == before


async def test_the_rebuild_command_works_without_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reporting.cli.rebuild_read_models()` (what the kkmp CLI calls) migrates and replays a database
    on its own; here a copy of the event store with one registration and one stalled item."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    monkeypatch.setenv("REPORTING_DATABASE_URL", url)
    settings = ReportingSettings(demo=True, broker_enabled=False)
    empty = await rebuild_read_models(settings)
    assert empty["events_stored"] == 0
    coop = Coop(fresh_kecamatan(), "KKMP Dari Arsip")
    db = Database(url)
    async with db.transaction() as session:
        for data in (coop.registered(days_ago(50)), coop.stalled("gula", 42_000, days_ago(1))):
            await event_store.append(session, new_event(data, source="/test"))
    await db.dispose()
    result = await rebuild_read_models(settings)
    assert (result["events_stored"], result["events_replayed"], result["cooperatives"]) == (2, 2, 1)
    db = Database(url)
    async with db.session() as session:
        row = (
            await session.execute(
                select(orm.kecamatan_figures).where(
                    orm.kecamatan_figures.c.kecamatan_code == coop.kecamatan_code
                )
            )
        ).one()
    await db.dispose()
    assert (row.cooperatives, row.stalled_items, row.stalled_value) == (1, 1, 42_000)


async def test_the_kecamatan_list_follows_every_refresh(service: Running) -> None:
    """The list is rendered incrementally (only rows a refresh rewrote); it must never lag them."""
    coop = Coop(fresh_kecamatan(), "KKMP Naik Turun")

    async def feed(data: Any) -> None:
        await service.applied(await service.publish(data))

    async def stalled_items() -> int:
        response = await service.client.get("/kecamatan", headers=service.admin)
        assert response.status_code == 200 and response.headers["X-As-Of"].endswith("Z")
        rows = {row["kecamatan_code"]: row for row in response.json()}
        assert "35.78.31" in rows, "the reference kecamatan are listed even with nothing in them"
        return int(rows[coop.kecamatan_code]["stock"]["stalled_items"])

    await feed(coop.registered(days_ago(30)))
    assert await stalled_items() == 0
    await feed(coop.stalled("gula", 10_000, days_ago(1)))
    assert await stalled_items() == 1
    await feed(coop.recovered("gula", "stalled", days_ago(0)))
    assert await stalled_items() == 0
