"""Rebuild the read model from the event store: wipe every projection, replay every stored event in
arrival order through the same projections the consumers use (a page at a time, as a batch), then
recompute every derived figure.

On PostgreSQL the event store is locked (EXCLUSIVE: reads go on, writes wait) for the replay, so an
event consumed meanwhile waits and lands on the rebuilt rows instead of being wiped with the old
ones. SQLite serialises writers anyway. Health levels are recomputed against the levels last
announced, so a rebuild that arrives at the same figures announces nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from kkmp_shared.events.contracts import EVENT_MODELS

from reporting.adapters import event_store, refresh_store
from reporting.adapters import projection_store as store
from reporting.adapters.sql import forget_dirty_marks
from reporting.service_layer.projections import Projector
from reporting.service_layer.refresh import Refresher

log = logging.getLogger("kkmp.reporting.rebuild")


@dataclass
class RebuildResult:
    events_stored: int
    events_replayed: int
    cooperatives: int
    kecamatan: int
    seconds: float


async def rebuild(projector: Projector, refresher: Refresher) -> RebuildResult:
    async with refresher.lock:
        return await _rebuild(projector, refresher)


async def _rebuild(projector: Projector, refresher: Refresher) -> RebuildResult:
    started = time.perf_counter()
    replayed = 0
    platform = refresher.platform
    async with platform.unit_of_work() as uow:
        # Another replica's refresher transactions wait for the replay, as this process's do.
        await refresher.take_turn(uow)
        await event_store.hold_writers(uow.session)
        await store.wipe(uow.session)
        stored = await event_store.count(uow.session)
        projected = projector.projected_types
        async for rows in event_store.read_in_order(uow.session):
            page = [
                (event_store.to_event(row), EVENT_MODELS[row.event_type].model_validate(row.data))
                for row in rows
                if row.event_type in projected and row.event_type in EVENT_MODELS
            ]
            await projector.apply_many(uow, page)
            replayed += len(page)
        await store.forget_unknown_health(uow.session)
        forget_dirty_marks(uow.session)
        await refresh_store.mark_all(uow.session, cooperatives=False, kecamatan=True)
    result = await refresher.recompute_all_health(locked=True)
    async with platform.db.session() as session:
        cooperatives = await store.cooperative_count(session)
    seconds = time.perf_counter() - started
    log.info("read model rebuilt: %d of %d stored events replayed in %.2fs", replayed, stored, seconds)
    return RebuildResult(
        events_stored=stored,
        events_replayed=replayed,
        cooperatives=cooperatives,
        kecamatan=result.kecamatan,
        seconds=round(seconds, 3),
    )
