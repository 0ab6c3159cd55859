"""Events in, notifications out, against the real broker, on SQLite and on PostgreSQL.

Who hears about what (routing table), once (duplicates), not again within the repeat window, not at
all when muted, in a daily digest for officers who chose one, escalation of unacknowledged needs,
and the routing table extended by an administrator.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from kkmp_shared import clock
from kkmp_shared.events.contracts import (
    CooperativeHealthChanged,
    NeedStatusChanged,
    NeedSubmitted,
    RedistributionProposed,
    StockLow,
    StockRecovered,
    StockStalled,
)
from kkmp_shared.events.envelope import new_event
from kkmp_testkit.wait import eventually
from notifications.adapters import orm
from notifications.service_layer.fanout import Announcement, Notifier, Outcome
from notifications_testkit import Env
from sqlalchemy import func, select

pytestmark = [pytest.mark.integration, pytest.mark.clock]


def kecamatan() -> str:
    """A kecamatan code of the test's own, so other tests' officers are never in scope."""
    return f"35.{random.randint(10, 99)}.{random.randint(10, 99)}"


def stalled(
    cooperative_id: str, kecamatan_code: str, commodity: str = "beras_medium", **overrides: object
) -> StockStalled:
    values: dict[str, object] = {
        "cooperative_id": cooperative_id,
        "kelurahan_code": f"{kecamatan_code}.1004",
        "kecamatan_code": kecamatan_code,
        "commodity": commodity,
        "on_hand": Decimal("120"),
        "unit": "kg",
        "days_since_sale": 21,
        "value": 8_100_000,
        "detected_at": clock.now(),
    }
    values.update(overrides)
    return StockStalled(**values)  # type: ignore[arg-type]


def stock_low(
    cooperative_id: str, kecamatan_code: str, commodity: str, kelurahan: str = "1004", **overrides: object
) -> StockLow:
    values: dict[str, object] = {
        "cooperative_id": cooperative_id,
        "kelurahan_code": f"{kecamatan_code}.{kelurahan}",
        "kecamatan_code": kecamatan_code,
        "commodity": commodity,
        "on_hand": Decimal("3"),
        "unit": "kg",
        "avg_daily_sales": Decimal("2"),
        "days_of_cover": Decimal("1.5"),
        "detected_at": clock.now(),
    }
    values.update(overrides)
    return StockLow(**values)  # type: ignore[arg-type]


async def test_stalled_reaches_managers_and_officers_in_scope_and_nobody_else(env: Env) -> None:
    here, there = kecamatan(), kecamatan()
    coop = await env.add_cooperative("KKMP Ketintang", here)
    other = await env.add_cooperative("KKMP Lain", there)
    manager = await env.add_user("coop_manager", cooperative_id=coop)
    second_manager = await env.add_user("coop_manager", cooperative_id=coop)
    other_manager = await env.add_user("coop_manager", cooperative_id=other)
    officer = await env.add_user("officer", kecamatan_codes=[here, there])
    far_officer = await env.add_user("officer", kecamatan_codes=[there])
    # The only whole-city officer of the whole module: every other test scopes its officers.
    city_officer = await env.add_user("officer", kecamatan_codes=[])
    await env.add_user("admin")
    await env.add_user("supplier", supplier_id=str(uuid.uuid4()))

    event = await env.publish(stalled(coop, here))
    await eventually(lambda: env.processed(event.id), timeout=15)

    assert await env.recipients_of(event.id) == {manager, second_manager, officer, city_officer}
    [note] = await env.inbox(manager)
    assert note["event_type"] == "stock.stalled.v1" and note["event_id"] == event.id
    assert note["commodity"] == "beras_medium"
    assert note["cooperative_id"] == coop and note["read_at"] is None
    assert (
        note["body"]
        == "Stok beras medium di KKMP Ketintang tidak terjual selama 21 hari (120 kg, ± Rp8,1 juta)."
    )
    assert note["link"] == f"http://127.0.0.1:8000/koperasi/{coop}"
    assert [n["id"] for n in await env.inbox(officer, "officer")] != []
    for nobody in (other_manager, far_officer):
        assert [n for n in await env.inbox(nobody) if n["cooperative_id"] == coop] == []
    # The inbox delivery is announced on the bus.
    delivered = await env.probe.wait_for(
        "notification.delivered.v1", lambda e: e.data["source_event_id"] == event.id, count=4
    )
    assert {e.data["recipient"] for e in delivered} == {manager, second_manager, officer, city_officer}
    assert {e.data["channel"] for e in delivered} == {"inbox"}


async def test_one_notification_per_recipient_under_duplicate_delivery(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Kebraon", here)
    manager = await env.add_user("coop_manager", cooperative_id=coop)
    officer = await env.add_user("officer", kecamatan_codes=[here])
    event = new_event(stalled(coop, here, "gula"), source="/inventory")
    body = orjson.dumps(event.model_dump(mode="json", exclude_none=True))
    for _ in range(4):  # the relay re-sent it, the broker redelivered it...
        await env.probe.publish_raw(body, event.type)
    await eventually(lambda: env.processed(event.id), timeout=15)
    runner = env.app.state.runner
    await eventually(lambda: runner.stats["duplicates"] >= 3, timeout=15)
    n = orm.notifications
    rows = await env.rows(
        select(n.c.user_id, func.count()).where(n.c.event_id == event.id).group_by(n.c.user_id)
    )
    assert {user: count for user, count in rows if user not in env.city_wide} == {manager: 1, officer: 1}
    assert all(count == 1 for _, count in rows)
    assert len(await env.inbox(manager)) == 1


async def test_redistribution_reaches_both_cooperatives(env: Env) -> None:
    here, there = kecamatan(), kecamatan()
    giver = await env.add_cooperative("KKMP Pemberi", here)
    taker = await env.add_cooperative("KKMP Penerima", there)
    giver_manager = await env.add_user("coop_manager", cooperative_id=giver)
    taker_manager = await env.add_user("coop_manager", cooperative_id=taker)
    officer = await env.add_user("officer", kecamatan_codes=[here, there])
    event = await env.publish(
        RedistributionProposed(
            cooperative_id=giver,
            kelurahan_code=f"{here}.1001",
            kecamatan_code=here,
            proposal_id=str(uuid.uuid4()),
            commodity="minyakita",
            quantity=Decimal("40"),
            unit="liter",
            from_cooperative_id=giver,
            to_cooperative_id=taker,
            to_kelurahan_code=f"{there}.1002",
            to_kecamatan_code=there,
            distance_km=3.2,
            proposed_at=clock.now(),
        )
    )
    await eventually(lambda: env.processed(event.id), timeout=15)
    assert await env.local_recipients(event.id) == {giver_manager, taker_manager}
    [note] = await env.inbox(taker_manager)
    assert "dari KKMP Pemberi ke KKMP Penerima" in note["body"]
    assert officer not in await env.local_recipients(event.id)


async def test_health_changed_only_to_tidak_aktif_reaches_officers(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Sehat", here)
    officer = await env.add_user("officer", kecamatan_codes=[here])
    manager = await env.add_user("coop_manager", cooperative_id=coop)

    def health(new: str) -> CooperativeHealthChanged:
        return CooperativeHealthChanged(
            cooperative_id=coop,
            kelurahan_code=f"{here}.1001",
            kecamatan_code=here,
            old_level="aktif",
            new_level=new,
            score=31.0,
            changed_at=clock.now(),  # type: ignore[arg-type]
        )

    milder = await env.publish(health("kurang_aktif"))
    worse = await env.publish(health("tidak_aktif"))
    await eventually(lambda: env.processed(worse.id), timeout=15)
    assert await env.processed(milder.id)
    assert await env.local_recipients(milder.id) == set()
    assert await env.local_recipients(worse.id) == {officer}
    [note] = await env.inbox(officer, "officer")
    assert (
        note["body"] == "Tingkat kesehatan KKMP Sehat berubah dari aktif menjadi tidak aktif (skor 31/100)."
    )
    assert await env.inbox(manager) == []


async def test_repeat_window_holds_back_the_same_condition(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Badai", here)
    manager = await env.add_user("coop_manager", cooperative_id=coop)
    first = await env.publish(stalled(coop, here, "telur"))
    again = await env.publish(stalled(coop, here, "telur", days_since_sale=22))
    other_commodity = await env.publish(stalled(coop, here, "gula"))
    # The same condition a day and a bit later (the window is 24 h) is news again.
    later = new_event(stalled(coop, here, "telur", days_since_sale=47), source="/inventory")
    later = later.model_copy(update={"time": clock.now() + timedelta(hours=25)})
    await env.probe.publish_raw(orjson.dumps(later.model_dump(mode="json", exclude_none=True)), later.type)
    await eventually(lambda: env.processed(later.id), timeout=15)
    assert await env.local_recipients(first.id) == {manager}
    assert await env.local_recipients(again.id) == set()
    assert await env.local_recipients(other_commodity.id) == {manager}
    assert await env.local_recipients(later.id) == {manager}
    w = orm.alert_windows
    [(suppressed,)] = await env.rows(
        select(w.c.suppressed).where(w.c.condition_key == f"stock.stalled.v1|{coop}|telur")
    )
    assert suppressed == 1


async def test_muted_types_are_not_delivered(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Sunyi", here)
    manager = await env.add_user("coop_manager", cooperative_id=coop)
    officer = await env.add_user("officer", kecamatan_codes=[here])
    response = await env.client.put(
        "/me/preferences",
        headers=env.headers_for(manager, "coop_manager"),
        json={"muted_event_types": ["stock.low.v1"]},
    )
    assert response.status_code == 200 and response.json()["muted_event_types"] == ["stock.low.v1"]
    low = await env.publish(
        stock_low(
            coop,
            here,
            "lpg_3kg",
            kelurahan="1001",
            on_hand=Decimal("6"),
            unit="tabung",
            avg_daily_sales=Decimal("3"),
            days_of_cover=Decimal("2"),
        )
    )
    still = await env.publish(stalled(coop, here))
    await eventually(lambda: env.processed(still.id), timeout=15)
    assert await env.local_recipients(low.id) == {officer}
    assert await env.local_recipients(still.id) == {manager, officer}


async def test_officer_digest_instead_of_one_message_per_event(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Ringkas", here)
    email = f"petugas-{uuid.uuid4().hex[:6]}@dinkop.surabaya.go.id"
    officer = await env.add_user("officer", kecamatan_codes=[here], email=email)
    manager = await env.add_user("coop_manager", cooperative_id=coop)
    headers = env.headers_for(officer, "officer", kecamatan_codes=[here])
    response = await env.client.put("/me/preferences", headers=headers, json={"digest": "daily"})
    assert response.status_code == 200 and response.json()["digest"] == "daily"
    # A pengurus cannot choose it.
    refused = await env.client.put(
        "/me/preferences", headers=env.headers_for(manager, "coop_manager"), json={"digest": "daily"}
    )
    assert refused.status_code == 422

    events = [await env.publish(stalled(coop, here, c)) for c in ("beras_premium", "garam", "kedelai")]
    await eventually(lambda: env.processed(events[-1].id), timeout=15)
    assert await env.inbox(officer, "officer") == []
    for event in events:
        assert manager in await env.local_recipients(event.id)
    assert (await env.client.get("/me/preferences", headers=headers)).json()["held_for_digest"] == 3

    admin = env.tokens.headers("admin")
    # Not due yet: the first digest comes at the next 07:00 WIB after choosing it.
    now_run = await env.client.post("/digests/run", headers=admin, json={})
    assert now_run.status_code == 200
    assert await env.inbox(officer, "officer") == []
    tomorrow = (clock.now() + timedelta(days=1, hours=1)).isoformat()
    run = await env.client.post("/digests/run", headers=admin, json={"as_of": tomorrow})
    assert run.status_code == 200 and run.json()["digests"] >= 1
    [digest] = await env.inbox(officer, "officer")
    assert digest["event_type"] == "digest.daily"
    assert digest["title"].endswith(": 3 pemberitahuan")
    assert "KKMP Ringkas" in digest["body"] and digest["body"].count("\u2022") == 3
    # It also goes out by email, once.
    messages = await eventually(lambda: env.smtp.mailbox.to(email), timeout=15)
    assert len(messages) == 1 and "Ringkasan harian" in str(messages[0]["Subject"])
    again = await env.client.post("/digests/run", headers=admin, json={"as_of": tomorrow})
    assert again.json()["digests"] == 0
    assert len(await env.inbox(officer, "officer")) == 1


async def test_stopping_the_digest_releases_what_was_held(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Lepas", here)
    officer = await env.add_user("officer", kecamatan_codes=[here])
    headers = env.headers_for(officer, "officer", kecamatan_codes=[here])
    assert (
        await env.client.put("/me/preferences", headers=headers, json={"digest": "daily"})
    ).status_code == 200
    event = await env.publish(stalled(coop, here, "bawang_merah"))
    await eventually(lambda: env.processed(event.id), timeout=15)
    assert await env.inbox(officer, "officer") == []
    assert (
        await env.client.put("/me/preferences", headers=headers, json={"digest": "off"})
    ).status_code == 200
    [note] = await env.inbox(officer, "officer")
    assert note["event_type"] == "stock.stalled.v1" and "bawang merah" in note["body"]


async def test_unacknowledged_need_escalates_to_supervisors_after_the_configured_time(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Menunggu", here)
    officer = await env.add_user("officer", kecamatan_codes=[here])
    supervisor = await env.add_user("officer", kecamatan_codes=[here], supervisor=True)
    submitted_at = clock.now() - timedelta(hours=1)

    def need(need_id: str) -> NeedSubmitted:
        return NeedSubmitted(
            cooperative_id=coop,
            kelurahan_code=f"{here}.1003",
            kecamatan_code=here,
            need_id=need_id,
            kind="supply",
            commodity="lpg_3kg",
            quantity=Decimal("100"),
            unit="tabung",
            description="Pasokan LPG terlambat",
            submitted_at=submitted_at,
        )

    # A supervisor on the daily digest still hears about an escalation at once.
    chose = await env.client.put(
        "/me/preferences",
        headers=env.headers_for(supervisor, "officer", kecamatan_codes=[here]),
        json={"digest": "daily"},
    )
    assert chose.status_code == 200
    waiting, answered = str(uuid.uuid4()), str(uuid.uuid4())
    first = await env.publish(need(waiting))
    await env.publish(need(answered))
    ack = await env.publish(
        NeedStatusChanged(
            cooperative_id=coop,
            kelurahan_code=f"{here}.1003",
            kecamatan_code=here,
            need_id=answered,
            kind="supply",
            commodity="lpg_3kg",
            old_status="open",
            new_status="acknowledged",
            submitted_at=submitted_at,
            changed_at=clock.now(),
        )
    )
    await eventually(lambda: env.processed(ack.id, "notifications.escalation"), timeout=15)
    await eventually(lambda: env.processed(first.id), timeout=15)
    # need.submitted itself reaches the officers in scope (the supervisor's copy waits for the digest).
    assert await env.local_recipients(first.id) == {officer}
    admin = env.tokens.headers("admin")
    # One hour in, with the default 48 h: nothing to escalate (the scheduler runs too, and agrees).
    early = await env.client.post("/escalations/run", headers=admin, json={})
    assert early.status_code == 200
    w = orm.need_watch
    [(escalated_at,)] = await env.rows(select(w.c.escalated_at).where(w.c.need_id == waiting))
    assert escalated_at is None
    late = (clock.now() + timedelta(hours=48)).isoformat()
    run = await env.client.post("/escalations/run", headers=admin, json={"as_of": late})
    assert run.status_code == 200 and run.json()["escalated"] >= 1
    n = orm.notifications
    rows = await env.rows(
        select(n.c.user_id, n.c.title, n.c.link).where(
            n.c.event_type == "need.escalated", n.c.link.like(f"%{waiting}")
        )
    )
    assert [r.user_id for r in rows] == [supervisor]
    assert rows[0].title == "Eskalasi: kebutuhan KKMP Menunggu belum ditanggapi"
    assert (
        await env.rows(
            select(n.c.id).where(n.c.event_type == "need.escalated", n.c.link.like(f"%{answered}"))
        )
        == []
    )
    # Once only.
    await env.client.post("/escalations/run", headers=admin, json={"as_of": late})
    assert (
        len(
            await env.rows(
                select(n.c.id).where(n.c.event_type == "need.escalated", n.c.link.like(f"%{waiting}"))
            )
        )
        == 1
    )


async def test_the_routing_table_is_extended_by_the_admin(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Pulih", here)
    manager = await env.add_user("coop_manager", cooperative_id=coop)

    def recovered() -> StockRecovered:
        return StockRecovered(
            cooperative_id=coop,
            kelurahan_code=f"{here}.1001",
            kecamatan_code=here,
            commodity=random.choice(["beras_medium", "gula", "telur", "garam", "kedelai", "cabai_rawit"])
            + uuid.uuid4().hex[:4],
            condition="stalled",
            on_hand=Decimal("10"),
            unit="kg",
            detected_at=clock.now(),
        )

    before = await env.publish(recovered())
    await eventually(lambda: env.processed(before.id), timeout=15)
    assert await env.local_recipients(before.id) == set()
    admin = env.tokens.headers("admin")
    listed = await env.client.get(
        "/routing-rules", headers=admin, params={"event_type": "stock.recovered.v1"}
    )
    existing = [r for r in listed.json() if r["audience"] == "cooperative_managers"]
    if existing:  # the SQLite and PostgreSQL runs each have their own database, but be safe
        rule_id = existing[0]["id"]
    else:
        created = await env.client.post(
            "/routing-rules",
            headers=admin,
            json={"event_type": "stock.recovered.v1", "audience": "cooperative_managers"},
        )
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
    after = await env.publish(recovered())
    await eventually(lambda: env.processed(after.id), timeout=15)
    assert await env.local_recipients(after.id) == {manager}
    # Disabled, it stops.
    assert (
        await env.client.patch(f"/routing-rules/{rule_id}", headers=admin, json={"enabled": False})
    ).status_code == 200
    off = await env.publish(recovered())
    await eventually(lambda: env.processed(off.id), timeout=15)
    assert await env.local_recipients(off.id) == set()


async def test_announcement_reaches_managers_in_the_chosen_kecamatan(env: Env) -> None:
    here, there = kecamatan(), kecamatan()
    coop = await env.add_cooperative("KKMP Pengumuman", here)
    far = await env.add_cooperative("KKMP Jauh", there)
    manager = await env.add_user("coop_manager", cooperative_id=coop)
    far_manager = await env.add_user("coop_manager", cooperative_id=far)
    back_dated = (clock.now() - timedelta(days=3)).isoformat()
    response = await env.client.post(
        "/announcements",
        headers=env.tokens.headers("admin"),
        json={
            "title": "Rapat koordinasi KKMP",
            "body": "Rapat hari Senin pukul 09.00 di Dinkopdag.",
            "kecamatan_codes": [here],
            "link": f"/koperasi/{coop}",
            "created_at": back_dated,
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["recipients"] >= 1
    [note] = await env.inbox(manager)
    assert note["event_type"] == "announcement" and note["created_at"].startswith(back_dated[:10])
    assert await env.inbox(far_manager) == []


async def test_a_batch_is_routed_as_if_one_by_one(env: Env) -> None:
    """A consumer batch (`announce_many`) has the effect of `announce` for each event in order: the
    same recipients, mutes, subscriptions in scope, and repeat-window decisions (a condition twice in
    the batch, again past the window)."""
    notifier: Notifier = env.app.state.notifier

    async def world() -> tuple[list[Announcement], dict[str, str], str]:
        here = kecamatan()
        a = await env.add_cooperative("KKMP Sekawan", here)
        b = await env.add_cooperative("KKMP Sejahtera", here)
        labels = {
            await env.add_user("coop_manager", cooperative_id=a): "manager of a",
            await env.add_user("coop_manager", cooperative_id=b): "manager of b",
            await env.add_user("officer", kecamatan_codes=[here]): "officer",
        }
        muted = next(user for user, label in labels.items() if label == "manager of b")
        response = await env.client.put(
            "/me/preferences",
            headers=env.headers_for(muted, "coop_manager"),
            json={"muted_event_types": ["stock.stalled.v1"]},
        )
        assert response.status_code == 200, response.text
        response = await env.client.post(
            "/subscriptions",
            headers=env.tokens.headers("admin"),
            json={
                "channel": "webhook",
                "target": env.receiver.url(f"/hook/{uuid.uuid4().hex}"),
                "event_types": ["stock.stalled.v1", "stock.low.v1"],
                "kecamatan_codes": [here],
            },
        )
        assert response.status_code == 201, response.text
        later = clock.now() + timedelta(hours=25)
        events = [
            new_event(stalled(a, here, "telur"), source="/inventory"),
            new_event(stalled(a, here, "gula"), source="/inventory"),
            new_event(stalled(a, here, "telur", days_since_sale=22), source="/inventory"),
            new_event(stalled(b, here, "telur"), source="/inventory"),
            new_event(stock_low(b, here, "gula"), source="/inventory"),
            new_event(stalled(a, here, "telur", days_since_sale=47), source="/inventory").model_copy(
                update={"time": later}
            ),
        ]
        items = [Announcement(e.id, e.type, e.data, e.time, e) for e in events]
        return items, labels, f"stock.stalled.v1|{a}|telur"

    def seen(outcomes: list[Outcome], labels: dict[str, str]) -> list[tuple[object, ...]]:
        return [
            (o.suppressed, o.inbox, o.deliveries, sorted(labels.get(u, "city-wide") for u in o.recipients))
            for o in outcomes
        ]

    one_by_one, labels_1, key_1 = await world()
    platform = env.app.state.platform
    async with platform.unit_of_work() as uow:
        first = [
            await notifier.announce(
                uow,
                event_id=i.event_id,
                event_type=i.event_type,
                data=i.data,
                occurred_at=i.occurred_at,
                cloudevent=i.cloudevent,
            )
            for i in one_by_one
        ]
    batch, labels_2, key_2 = await world()
    async with platform.unit_of_work() as uow:
        second = await notifier.announce_many(uow, batch)

    assert seen(second, labels_2) == seen(first, labels_1)
    assert [o.suppressed for o in second] == [False, False, True, False, False, False]
    assert sorted(labels_2.get(u, "city-wide") for u in second[0].recipients if u in labels_2) == [
        "manager of a",
        "officer",
    ]
    assert "manager of b" not in {labels_2.get(u) for u in second[3].recipients}  # muted
    assert second[4].deliveries == 1 and second[0].deliveries == 1  # the webhook in scope
    w = orm.alert_windows
    for key in (key_1, key_2):
        [(suppressed,)] = await env.rows(select(w.c.suppressed).where(w.c.condition_key == key))
        assert suppressed == 1


async def test_audiences_are_resolved_for_a_batch_in_one_query(env: Env) -> None:
    """`resolve_many` for every audience kind at once: each request gets exactly the people of its
    audiences, without those who muted its type, each once and in user id order; an audience nobody
    is in, or one the vocabulary does not know, reaches nobody."""
    from notifications.domain.routing import Target
    from notifications.service_layer.recipients import resolve_many

    # Codes of this test alone: another test's officer scoped to a random code like kecamatan()'s
    # would be in these audiences too (it happened once in CI).
    here, there = f"99.{uuid.uuid4().hex[:8]}", f"99.{uuid.uuid4().hex[:8]}"
    coop_a, coop_b = str(uuid.uuid4()), str(uuid.uuid4())
    supplier = str(uuid.uuid4())
    manager_a = await env.add_user("coop_manager", cooperative_id=coop_a)
    manager_b = await env.add_user("coop_manager", cooperative_id=coop_b)
    officer_here = await env.add_user("officer", kecamatan_codes=[here])
    officer_both = await env.add_user("officer", kecamatan_codes=[here, there])
    supervisor_there = await env.add_user("officer", kecamatan_codes=[there], supervisor=True)
    seller = await env.add_user("supplier", supplier_id=supplier)
    muted = await env.client.put(
        "/me/preferences",
        headers=env.headers_for(officer_both, "officer", kecamatan_codes=[here, there]),
        json={"muted_event_types": ["stock.low.v1"]},
    )
    assert muted.status_code == 200
    r = orm.recipients
    city_wide = {
        row.user_id
        for row in await env.rows(select(r.c.user_id).where(r.c.whole_city, r.c.role == "officer"))
    }
    admins = {row.user_id for row in await env.rows(select(r.c.user_id).where(r.c.role == "admin"))}

    stalled_here = [Target("cooperative_managers", coop_a), Target("officers_in_scope", here)]
    requests = [
        (stalled_here, "stock.stalled.v1"),
        (stalled_here, "stock.low.v1"),  # muted by one officer
        ([Target("cooperative_managers", coop_b), Target("supervisors_in_scope", there)], "need.escalated"),
        ([Target("supplier", supplier), Target("admins", None)], "order.placed.v1"),
        ([Target("officers_in_scope", None)], "report.overdue.v1"),  # no kecamatan: the whole city only
        ([Target("cooperative_managers", str(uuid.uuid4())), Target("nobody_knows", "x")], "stock.low.v1"),
        ([], "stock.stalled.v1"),
    ]
    async with env.app.state.db.session() as session:
        found = await resolve_many(session, requests)
    got = [[p.user_id for p in people] for people in found]
    assert got == [
        sorted({manager_a, officer_here, officer_both} | city_wide),
        sorted({manager_a, officer_here} | city_wide),
        sorted({manager_b, supervisor_there}),
        sorted({seller} | admins),
        sorted(city_wide),
        [],
        [],
    ]
    assert {p.role for p in found[3]} <= {"supplier", "admin"}


async def test_the_relay_publishes_after_the_webhooks_in_flight(env: Env) -> None:
    """The service's relay waits for the delivery worker's sends (`sends_first`, tested with the
    worker) before it publishes the inbox's bookkeeping events."""
    assert env.app.state.relay.before_drain == env.app.state.delivery_worker.sends_first
