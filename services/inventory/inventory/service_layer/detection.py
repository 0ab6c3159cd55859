"""Detection runs: the set-based scan of every stock item, on demand and on a schedule.

One scan is one unit of work: it records each item's new episode and stages the announcements in the
outbox together, so an episode is announced exactly when it is recorded, and a rescan finds nothing new.
Scans take turns: across replicas by the database's scan lock (`detection_sql.begin_scan`), within a
process by `scan_lock` (SQLite's single-process mode has only that one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from kkmp_shared import clock
from kkmp_shared.bootstrap import Platform
from kkmp_shared.events.contracts import EventData
from kkmp_shared.unit_of_work import UnitOfWork
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from inventory.adapters import detection_sql, idempotency, repository
from inventory.domain.detection import episode_change
from inventory.domain.ledger import from_milli, utc
from inventory.service_layer.announcements import ItemSnapshot, episode_events
from inventory.service_layer.commands import RunDetection
from inventory.settings import InventorySettings

log = logging.getLogger("kkmp.inventory.detection")

OUTBOX_CHUNK = 2000

SCAN_SECONDS = Histogram("kkmp_inventory_detection_scan_seconds", "Duration of a detection scan", ["trigger"])
EPISODES = PromCounter("kkmp_inventory_episodes_total", "Episode changes announced", ["condition", "change"])


async def run_detection(
    platform: Platform, command: RunDetection, *, scan_lock: asyncio.Lock | None = None
) -> dict[str, Any] | None:
    """Scan every item (in the kecamatan given, or all) in a unit of work of its own, once this
    process's other scans are done; None when `command.wait` is False and another scan runs."""
    async with AsyncExitStack() as stack:
        if scan_lock is not None:
            if not command.wait and scan_lock.locked():
                return None
            await stack.enter_async_context(scan_lock)
        async with platform.unit_of_work() as uow:
            scanned = await scan(uow, command)
    if scanned is None:
        log.info("detection scan skipped: another replica is scanning")
        return None
    result, started_counts, ended_counts = scanned
    SCAN_SECONDS.labels(command.trigger).observe(result["duration_ms"] / 1000)
    for condition, n in started_counts.items():
        EPISODES.labels(condition, "started").inc(n)
    for condition, n in ended_counts.items():
        EPISODES.labels(condition, "ended").inc(n)
    log.info(
        "detection (%s) as of %s: %d announcements in %.2fs",
        command.trigger,
        result["as_of"].isoformat(),
        result["announced"],
        result["duration_ms"] / 1000,
    )
    return result


async def scan(
    uow: UnitOfWork, command: RunDetection
) -> tuple[dict[str, Any], Counter[str], Counter[str]] | None:
    """The scan itself, in the caller's unit of work: the run's counts, and the episodes started and
    ended by condition. None when `command.wait` is False and another replica holds the scan lock."""
    as_of = utc(command.as_of) if command.as_of is not None else clock.now()
    started_at = clock.now()
    started = time.perf_counter()
    session = uow.session
    if not await detection_sql.begin_scan(session, wait=command.wait):
        return None
    thresholds = await repository.load_thresholds(session)
    rows = (
        await detection_sql.apply_changed_conditions(session, as_of, thresholds, command.kecamatan_codes)
        if thresholds
        else []
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
        await uow.publish_many(events[start : start + OUTBOX_CHUNK])
    totals = await detection_sql.condition_totals(session, command.kecamatan_codes)
    result = {
        "as_of": as_of,
        "trigger": command.trigger,
        "items_scanned": sum(totals.values()),
        "stalled": totals.get("stalled", 0),
        "low": totals.get("low", 0),
        "stockout": totals.get("stockout", 0),
        "started": {c: started_counts.get(c, 0) for c in ("stalled", "low", "stockout")},
        "recovered": {c: ended_counts.get(c, 0) for c in ("stalled", "low", "stockout")},
        "announced": len(events),
        "duration_ms": int((time.perf_counter() - started) * 1000),
    }
    await detection_sql.record_run(
        session,
        {
            "trigger": command.trigger,
            "as_of": as_of,
            "started_at": started_at,
            "duration_ms": result["duration_ms"],
            "scope": {"kecamatan_codes": command.kecamatan_codes},
            "counts": {k: v for k, v in result.items() if k not in ("as_of", "trigger", "duration_ms")},
            "requested_by": command.requested_by,
        },
    )
    return result, started_counts, ended_counts


async def scheduled_detection(
    platform: Platform, scan_lock: asyncio.Lock, settings: InventorySettings
) -> None:
    """The scheduled scan, every DETECTION_INTERVAL_S (0 disables it); also forgets old idempotency keys."""
    interval = float(settings.detection_interval_s)
    if interval <= 0:
        log.info("scheduled detection disabled (DETECTION_INTERVAL_S=0)")
        return
    while True:
        await asyncio.sleep(interval)
        try:
            await run_detection(platform, RunDetection(trigger="schedule", wait=False), scan_lock=scan_lock)
            async with platform.unit_of_work() as uow:
                cutoff = clock.now() - timedelta(hours=settings.idempotency_ttl_h)
                await idempotency.forget_older_than(uow.session, cutoff)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled detection failed; trying again at the next interval")
