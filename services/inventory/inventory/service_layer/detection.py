"""Detection runs: the set-based scan of every stock item, on demand and on a schedule.

One scan is one transaction: it records each item's new episode and stages the announcements in the
outbox together, so an episode is announced exactly when it is recorded, and a rescan finds nothing
new. On PostgreSQL a transaction-level advisory lock makes scans take turns: the scheduled scan of a
replica skips its turn when another replica is scanning, an on-demand run waits for it. SQLite is the
single-process mode, where an in-process lock does the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from kkmp_shared import clock
from kkmp_shared.db import Database
from kkmp_shared.events.contracts import EventData
from kkmp_shared.messaging.outbox import Outbox
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram
from sqlalchemy import delete, insert, text

from inventory.adapters import orm, repository
from inventory.adapters.detection_sql import apply_changed_conditions, condition_totals_query
from inventory.domain.detection import episode_change
from inventory.domain.ledger import from_milli, utc
from inventory.service_layer.announcements import ItemSnapshot, episode_events

log = logging.getLogger("kkmp.inventory.detection")

# pg advisory lock key of the detection scan ("KKMPINV" as an integer): one scan at a time per database.
SCAN_LOCK_KEY = int.from_bytes(b"KKMPINV", "big")
OUTBOX_CHUNK = 2000
SCAN_WORK_MEM = "256MB"

SCAN_SECONDS = Histogram("kkmp_inventory_detection_scan_seconds", "Duration of a detection scan", ["trigger"])
EPISODES = PromCounter("kkmp_inventory_episodes_total", "Episode changes announced", ["condition", "change"])


async def run_detection(
    db: Database,
    outbox: Outbox,
    *,
    as_of: datetime | None = None,
    trigger: str = "api",
    kecamatan_codes: list[str] | None = None,
    requested_by: str | None = None,
    wait: bool = True,
    local_lock: asyncio.Lock | None = None,
) -> dict[str, Any] | None:
    """Scan every item (in the kecamatan given, or all); None when `wait` is False and another scan runs."""
    as_of = utc(as_of) if as_of is not None else clock.now()
    async with AsyncExitStack() as stack:
        if local_lock is not None:
            if not wait and local_lock.locked():
                return None
            await stack.enter_async_context(local_lock)
        started_at = clock.now()
        started = time.perf_counter()
        session = await stack.enter_async_context(db.session())
        await stack.enter_async_context(session.begin())
        if not db.is_sqlite:
            if wait:
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCAN_LOCK_KEY})
            else:
                got = (
                    await session.execute(
                        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SCAN_LOCK_KEY}
                    )
                ).scalar()
                if not got:
                    log.info("detection scan skipped: another replica is scanning")
                    return None
            # The 28-day sales of every item are aggregated in memory rather than spilled to disk.
            await session.execute(text(f"SET LOCAL work_mem = '{SCAN_WORK_MEM}'"))
        thresholds = await repository.load_thresholds(session)
        rows = (
            await apply_changed_conditions(session, as_of, thresholds, kecamatan_codes) if thresholds else []
        )
        events: list[EventData] = []
        started_counts: Counter[str] = Counter()
        ended_counts: Counter[str] = Counter()
        for row in rows:
            limits, unit = thresholds[row.commodity]
            change = episode_change(row.previous_condition, row.new_condition)
            snapshot = ItemSnapshot(
                cooperative_id=row.cooperative_id,
                kelurahan_code=row.kelurahan_code,
                kecamatan_code=row.kecamatan_code,
                commodity=row.commodity,
                unit=unit,
                on_hand=from_milli(row.on_hand_milli),
                stock_value=int(row.stock_value),
                last_unit_cost=row.last_unit_cost,
                last_sale_at=repository.aware(row.last_sale_at),
                stall_clock_at=repository.aware(row.stall_clock_at),
                sold_in_window=from_milli(int(row.sold_milli or 0)),
                stall_days=limits.stall_days,
                low_cover_days=limits.low_cover_days,
            )
            events.extend(episode_events(snapshot, change, as_of))
            if change.started:
                started_counts[change.started] += 1
            if change.ended:
                ended_counts[change.ended] += 1
        for start in range(0, len(events), OUTBOX_CHUNK):
            await outbox.add_many(session, events[start : start + OUTBOX_CHUNK])
        totals = {
            c: int(n) for c, n in (await session.execute(condition_totals_query(kecamatan_codes))).all()
        }
        duration = time.perf_counter() - started
        result = {
            "as_of": as_of,
            "trigger": trigger,
            "items_scanned": sum(totals.values()),
            "stalled": totals.get("stalled", 0),
            "low": totals.get("low", 0),
            "stockout": totals.get("stockout", 0),
            "started": {c: started_counts.get(c, 0) for c in ("stalled", "low", "stockout")},
            "recovered": {c: ended_counts.get(c, 0) for c in ("stalled", "low", "stockout")},
            "announced": len(events),
            "duration_ms": int(duration * 1000),
        }
        await session.execute(
            insert(orm.detection_runs).values(
                trigger=trigger,
                as_of=as_of,
                started_at=started_at,
                duration_ms=result["duration_ms"],
                scope={"kecamatan_codes": kecamatan_codes},
                counts={k: v for k, v in result.items() if k not in ("as_of", "trigger", "duration_ms")},
                requested_by=requested_by,
            )
        )
    SCAN_SECONDS.labels(trigger).observe(duration)
    for condition, n in started_counts.items():
        EPISODES.labels(condition, "started").inc(n)
    for condition, n in ended_counts.items():
        EPISODES.labels(condition, "ended").inc(n)
    log.info(
        "detection (%s) as of %s: %d announcements in %.2fs",
        trigger,
        as_of.isoformat(),
        len(events),
        duration,
    )
    return result


async def detection_loop(app: FastAPI) -> None:
    """The scheduled scan, every DETECTION_INTERVAL_S (0 disables it); also forgets old idempotency keys."""
    settings = app.state.settings
    interval = float(settings.detection_interval_s)
    if interval <= 0:
        log.info("scheduled detection disabled (DETECTION_INTERVAL_S=0)")
        return
    while True:
        await asyncio.sleep(interval)
        try:
            await run_detection(
                app.state.db,
                app.state.outbox,
                trigger="schedule",
                wait=False,
                local_lock=app.state.scan_lock,
            )
            async with app.state.db.transaction() as session:
                cutoff = clock.now() - timedelta(hours=settings.idempotency_ttl_h)
                await session.execute(
                    delete(orm.idempotency_keys).where(orm.idempotency_keys.c.created_at < cutoff)
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled detection failed; trying again at the next interval")
