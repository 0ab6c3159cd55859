"""Detection against the real broker and database (SQLite and PostgreSQL): the stall rule at its
boundaries, low and stockout by days of cover, each episode announced once, recovery, the price
ceiling, the scan lock, and the SQL scan agreeing with the domain rules."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inventory.adapters import orm
from inventory.adapters.detection_sql import SCAN_LOCK_KEY, classified_items, roll_sales_window
from inventory.adapters.repository import load_thresholds
from inventory.domain.detection import Thresholds, classify_stock, sales_window
from inventory.domain.ledger import from_milli
from inventory.service_layer.commands import RunDetection
from inventory.service_layer.detection import run_detection
from inventory_testkit import Inventory
from kkmp_shared import clock
from kkmp_testkit.wait import quiet_period
from sqlalchemy import event, insert, select, text

pytestmark = [pytest.mark.integration, pytest.mark.clock]

STALLED_FIELDS = {
    "cooperative_id",
    "kelurahan_code",
    "kecamatan_code",
    "commodity",
    "on_hand",
    "unit",
    "last_sale_at",
    "days_since_sale",
    "value",
    "detected_at",
}


def ago(days: float) -> datetime:
    return clock.now() - timedelta(days=days)


async def quiet(inventory: Inventory) -> None:
    """Everything committed has been published: counts seen on the probe are final."""
    await inventory.settle()
    await quiet_period()


async def test_receipts_20_days_old_stall_once_and_a_sale_recovers(inventory: Inventory) -> None:
    coop = await inventory.register()
    await inventory.batch(
        coop,
        [
            {
                "commodity": "beras_medium",
                "kind": "receipt",
                "quantity": 40,
                "unit_price": 12000,
                "occurred_at": ago(20),
            },
            {
                "commodity": "beras_medium",
                "kind": "receipt",
                "quantity": 10,
                "unit_price": 12600,
                "occurred_at": ago(20) + timedelta(hours=2),
            },
        ],
    )
    # Back-dated history is judged by the scan, not when it is imported.
    await quiet(inventory)
    assert inventory.events("stock.stalled.v1", coop) == []
    found = await inventory.detect()
    assert found["stalled"] >= 1 and found["started"]["stalled"] >= 1
    [stalled] = await inventory.probe.wait_for("stock.stalled.v1", lambda e: e.data["cooperative_id"] == coop)
    assert STALLED_FIELDS <= set(stalled.data)
    assert stalled.subject == coop and stalled.source == "/inventory"
    assert Decimal(stalled.data["on_hand"]) == 50 and stalled.data["unit"] == "kg"
    assert stalled.data["last_sale_at"] is None and stalled.data["days_since_sale"] == 20
    assert stalled.data["value"] == 40 * 12000 + 10 * 12600 and stalled.data["unit_cost"] == 12120
    assert stalled.data["kecamatan_code"] == "35.78.01"
    again = await inventory.detect()
    assert again["stalled"] >= 1
    await quiet(inventory)
    assert len(inventory.events("stock.stalled.v1", coop)) == 1
    assert (await inventory.stock(coop))["beras_medium"]["status"] == "stalled"
    await inventory.move(coop, commodity="beras_medium", kind="sale", quantity=5, unit_price=13000)
    [recovered] = await inventory.probe.wait_for(
        "stock.recovered.v1", lambda e: e.data["cooperative_id"] == coop
    )
    assert recovered.data["condition"] == "stalled" and Decimal(recovered.data["on_hand"]) == 45
    await inventory.detect()
    await quiet(inventory)
    assert len(inventory.events("stock.stalled.v1", coop)) == 1
    assert len(inventory.events("stock.recovered.v1", coop)) == 1


async def test_stall_rule_boundaries(inventory: Inventory) -> None:
    coop = await inventory.register()
    # All five commodities stall after 14 days without a sale.
    await inventory.batch(
        coop,
        [
            {"commodity": "beras_medium", "kind": "receipt", "quantity": 10, "occurred_at": ago(13)},
            {"commodity": "beras_premium", "kind": "receipt", "quantity": 10, "occurred_at": ago(15)},
            {"commodity": "beras_sphp", "kind": "receipt", "quantity": 10, "occurred_at": ago(30)},
            {"commodity": "beras_sphp", "kind": "sale", "quantity": 3, "occurred_at": ago(15)},
            {"commodity": "lpg_3kg", "kind": "receipt", "quantity": 10, "occurred_at": ago(30)},
            {"commodity": "lpg_3kg", "kind": "sale", "quantity": 3, "occurred_at": ago(13)},
            {"commodity": "bawang_putih", "kind": "receipt", "quantity": 10, "occurred_at": ago(30)},
            {"commodity": "bawang_putih", "kind": "sale", "quantity": 1, "occurred_at": ago(0)},
        ],
    )
    await inventory.detect()
    statuses = {c: line["status"] for c, line in (await inventory.stock(coop)).items()}
    assert statuses == {
        "beras_medium": "ok",  # never sold, 13 days
        "beras_premium": "stalled",  # never sold, 15 days
        "beras_sphp": "stalled",  # partly sold, last sale 15 days ago
        "lpg_3kg": "ok",  # partly sold, last sale 13 days ago
        "bawang_putih": "ok",  # sold today
    }
    await quiet(inventory)
    stalled = {e.data["commodity"]: e.data for e in inventory.events("stock.stalled.v1", coop)}
    assert set(stalled) == {"beras_premium", "beras_sphp"}
    assert stalled["beras_sphp"]["days_since_sale"] == 15 and stalled["beras_sphp"]["last_sale_at"]
    # Two days on, the 13-day-old items pass the boundary; the one sold today does not.
    found = await inventory.detect(as_of=clock.now() + timedelta(days=2))
    assert found["started"]["stalled"] >= 2
    await quiet(inventory)
    later = [e.data["commodity"] for e in inventory.events("stock.stalled.v1", coop)]
    assert sorted(later) == ["beras_medium", "beras_premium", "beras_sphp", "lpg_3kg"]


async def test_low_then_stockout_then_recovered_each_once(inventory: Inventory) -> None:
    coop = await inventory.register()
    await inventory.batch(
        coop,
        [
            {
                "commodity": "gula",
                "kind": "receipt",
                "quantity": 100,
                "unit_price": 15000,
                "occurred_at": ago(10),
            },
            {"commodity": "gula", "kind": "sale", "quantity": 56, "unit_price": 17000, "occurred_at": ago(5)},
        ],
    )
    assert (await inventory.stock(coop))["gula"]["status"] == "ok"  # 44 left at 2 a day: 22 days of cover
    await inventory.move(coop, commodity="gula", kind="sale", quantity=34, unit_price=17000)
    [low] = await inventory.probe.wait_for("stock.low.v1", lambda e: e.data["cooperative_id"] == coop)
    assert Decimal(low.data["on_hand"]) == 10 and Decimal(low.data["days_of_cover"]) == Decimal("3.11")
    assert Decimal(low.data["avg_daily_sales"]) == Decimal("3.214")
    line = (await inventory.stock(coop))["gula"]
    assert line["status"] == "low" and line["days_of_cover"] == pytest.approx(3.11)
    await inventory.detect()
    await inventory.move(coop, commodity="gula", kind="sale", quantity=10, unit_price=17000)
    [out] = await inventory.probe.wait_for("stock.stockout.v1", lambda e: e.data["cooperative_id"] == coop)
    assert out.data["last_sale_at"] is not None and out.data["unit"] == "kg"
    await inventory.probe.wait_for(
        "stock.recovered.v1", lambda e: e.data["cooperative_id"] == coop and e.data["condition"] == "low"
    )
    await inventory.detect()
    await inventory.move(coop, commodity="gula", kind="receipt", quantity=200, unit_price=15000)
    await inventory.probe.wait_for(
        "stock.recovered.v1", lambda e: e.data["cooperative_id"] == coop and e.data["condition"] == "stockout"
    )
    await inventory.detect()
    await quiet(inventory)
    assert len(inventory.events("stock.low.v1", coop)) == 1
    assert len(inventory.events("stock.stockout.v1", coop)) == 1
    assert sorted(e.data["condition"] for e in inventory.events("stock.recovered.v1", coop)) == [
        "low",
        "stockout",
    ]
    assert (await inventory.stock(coop))["gula"]["status"] == "ok"


async def test_thresholds_are_overridable_per_commodity(inventory: Inventory) -> None:
    coop = await inventory.register()
    code = f"kerupuk_{uuid.uuid4().hex[:6]}"
    created = await inventory.client.post(
        "/commodities",
        json={"code": code, "name": "Kerupuk", "unit": "bungkus", "stall_days": 30},
        headers=inventory.headers(),
    )
    assert created.status_code == 201
    await inventory.move(coop, commodity=code, kind="receipt", quantity=10, occurred_at=ago(20))
    assert (await inventory.stock(coop))[code]["status"] == "ok"
    patched = await inventory.client.patch(
        f"/commodities/{code}", json={"stall_days": 10}, headers=inventory.headers()
    )
    assert patched.status_code == 200
    await inventory.detect()
    await inventory.probe.wait_for("stock.stalled.v1", lambda e: e.data["commodity"] == code)
    assert (await inventory.stock(coop))[code]["status"] == "stalled"


async def test_sale_above_the_ceiling_is_kept_and_announced(inventory: Inventory) -> None:
    coop = await inventory.register()
    await inventory.move(
        coop,
        commodity="beras_medium",
        kind="receipt",
        quantity=50,
        unit_price=12000,
        occurred_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    sale = (
        await inventory.move(coop, commodity="beras_medium", kind="sale", quantity=5, unit_price=14000)
    ).json()
    assert sale["ceiling_excess"] == 500 and sale["price_ceiling"] == 13500
    [event] = await inventory.probe.wait_for(
        "price.ceiling_exceeded.v1", lambda e: e.data["cooperative_id"] == coop
    )
    assert event.data["excess"] == 500 and event.data["price_ceiling"] == 13500
    assert event.data["unit_price"] == 14000 and event.data["movement_id"] == sale["id"]
    assert event.data["ceiling_kind"] == "HET" and event.data["total_excess"] == 2500
    await inventory.move(coop, commodity="beras_medium", kind="sale", quantity=5, unit_price=13500)
    # A sale in January 2025 is judged against the HET of then (Rp12.500), not today's.
    old = (
        await inventory.move(
            coop,
            commodity="beras_medium",
            kind="sale",
            quantity=1,
            unit_price=13000,
            occurred_at=datetime(2025, 1, 2, tzinfo=UTC),
        )
    ).json()
    assert old["ceiling_excess"] == 500 and old["price_ceiling"] == 12500
    await quiet(inventory)
    assert len(inventory.events("price.ceiling_exceeded.v1", coop)) == 2


async def test_only_one_scheduled_scan_at_a_time(inventory: Inventory) -> None:
    app = inventory.app
    scheduled = RunDetection(trigger="schedule", wait=False)
    if inventory.backend == "postgres":
        # Another replica's scan holds the lock: this replica's scheduled scan skips its turn.
        async with app.state.db.engine.connect() as other:
            await other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCAN_LOCK_KEY})
            skipped = await run_detection(app.state.platform, scheduled)
            await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCAN_LOCK_KEY})
            await other.commit()
    else:
        lock: asyncio.Lock = app.state.scan_lock
        async with lock:
            skipped = await run_detection(app.state.platform, scheduled, scan_lock=lock)
    assert skipped is None
    ran = await run_detection(app.state.platform, scheduled)
    assert ran is not None and ran["trigger"] == "schedule"
    runs = (await inventory.client.get("/detections", headers=inventory.headers())).json()
    assert runs[0]["trigger"] == "schedule"


# --- the SQL scan and the domain rules agree -------------------------------------------------------

item_state = st.fixed_dictionaries(
    {
        "commodity": st.sampled_from(["beras_medium", "telur", "gula", "garam"]),
        "on_hand": st.integers(min_value=0, max_value=50_000),
        "clock_hours_ago": st.one_of(st.none(), st.integers(min_value=0, max_value=24 * 70)),
        "sold": st.lists(
            st.tuples(st.integers(min_value=0, max_value=35), st.integers(min_value=1, max_value=20_000)),
            max_size=4,
        ),
    }
)


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(item_state, min_size=10, max_size=25))
async def test_sql_scan_classifies_like_the_domain_rules(inventory: Inventory, items: list[dict]) -> None:  # type: ignore[type-arg]
    now = clock.now().replace(microsecond=0)
    coop = str(uuid.uuid4())
    first_day, last_day = sales_window(now)
    expected = {}
    async with inventory.app.state.db.transaction() as session:
        await session.execute(
            insert(orm.known_cooperatives).values(
                id=coop,
                name="generated",
                kelurahan_code="35.78.09.1001",
                kecamatan_code="35.78.09",
                status="operating",
                business_units=[],
                member_count=0,
                updated_at=now,
            )
        )
        thresholds = await load_thresholds(session)
        seen = set()
        for item in items:
            if item["commodity"] in seen:
                continue
            seen.add(item["commodity"])
            started = None
            if item["clock_hours_ago"] is not None and item["on_hand"] > 0:
                started = now - timedelta(hours=item["clock_hours_ago"])
            sales: dict = {}
            for days_ago, quantity in item["sold"]:
                day = (now - timedelta(days=days_ago)).date()
                sales[day] = sales.get(day, 0) + quantity
            await session.execute(
                insert(orm.stock_items).values(
                    cooperative_id=coop,
                    commodity=item["commodity"],
                    on_hand_milli=item["on_hand"],
                    stall_clock_at=started,
                    updated_at=now,
                )
            )
            for day, quantity in sales.items():
                await session.execute(
                    insert(orm.daily_sales).values(
                        cooperative_id=coop, commodity=item["commodity"], day=day, quantity_milli=quantity
                    )
                )
            in_window = sum(q for d, q in sales.items() if first_day <= d <= last_day)
            limits: Thresholds = thresholds[item["commodity"]][0]
            expected[item["commodity"]] = classify_stock(
                from_milli(item["on_hand"]), started, from_milli(in_window), now, limits
            )
        # The scan reads each item's 28-day sales as rolled to its day from daily_sales.
        await roll_sales_window(session, last_day)
    async with inventory.app.state.db.session() as session:
        query = classified_items(now, thresholds, only_changed=False).subquery()
        rows = await session.execute(select(query).where(query.c.cooperative_id == coop))
        got = {r.commodity: r.new_condition for r in rows}
    assert got == expected


async def test_a_day_already_rolled_is_checked_on_the_index_not_rolled_again(inventory: Inventory) -> None:
    """Every scan but the day's first finds every item's 28-day window rolled already: two probes of
    the `sold_window_day` index tell, instead of an UPDATE that reads every item to find nothing to do.
    An item whose window is missing (new) or on another day is rolled, with its sales summed."""
    db = inventory.app.state.db
    day = sales_window(clock.now())[1]
    coop = str(uuid.uuid4())
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The running service's background tasks (relay, consumers) use the same engine: only the
        # statements on the items' windows are the roll's.
        text = " ".join(statement.split()).upper()
        if "SOLD_WINDOW" in text:
            sent.append(text)

    async with db.transaction() as session:
        await roll_sales_window(session, day)  # whatever earlier tests left
        await session.execute(
            insert(orm.stock_items).values(
                cooperative_id=coop,
                commodity="beras_medium",
                on_hand_milli=5_000,
                updated_at=clock.now(),
            )
        )
        await session.execute(
            insert(orm.daily_sales).values(
                cooperative_id=coop, commodity="beras_medium", day=day, quantity_milli=700
            )
        )
    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.transaction() as session:
            assert await roll_sales_window(session, day) == 1  # the new item only
        rolled_statements = [s for s in sent if s.startswith("UPDATE")]
        sent.clear()
        async with db.transaction() as session:
            assert await roll_sales_window(session, day) == 0
        assert len(rolled_statements) == 1
        assert [s for s in sent if s.startswith("UPDATE")] == []
        reads = [s for s in sent if s.startswith("SELECT")]
        assert len(reads) == 2 and all("ORDER BY" in s and "LIMIT" in s for s in reads)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    async with db.session() as session:
        window = (
            await session.execute(
                select(orm.stock_items.c.sold_window_milli, orm.stock_items.c.sold_window_day).where(
                    orm.stock_items.c.cooperative_id == coop
                )
            )
        ).one()
    assert tuple(window) == (700, day)
    async with db.transaction() as session:
        assert await roll_sales_window(session, day + timedelta(days=1)) >= 1  # a new day rolls again
