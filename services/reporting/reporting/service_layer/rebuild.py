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

from kkmp_shared.db import Database
from kkmp_shared.events.contracts import EVENT_MODELS
from sqlalchemy import delete, func, select, text

from reporting.adapters import event_store, orm
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


async def rebuild(db: Database, projector: Projector, refresher: Refresher) -> RebuildResult:
    async with refresher.lock:
        return await _rebuild(db, projector, refresher)


async def _rebuild(db: Database, projector: Projector, refresher: Refresher) -> RebuildResult:
    started = time.perf_counter()
    replayed = 0
    async with db.transaction() as session:
        # Another replica's refresher transactions wait for the replay, as this process's do.
        await refresher.take_turn(session)
        if not db.is_sqlite:
            await session.execute(text("LOCK TABLE event_store IN EXCLUSIVE MODE"))
        for table in orm.PROJECTION_TABLES:
            await session.execute(delete(table))
        stored = await event_store.count(session)
        projected = projector.projected_types
        async for rows in event_store.read_in_order(session):
            page = [
                (event_store.to_event(row), EVENT_MODELS[row.event_type].model_validate(row.data))
                for row in rows
                if row.event_type in projected and row.event_type in EVENT_MODELS
            ]
            await projector.apply_many(session, page)
            replayed += len(page)
        # Health rows of cooperatives the store no longer knows would count in no kecamatan.
        h = orm.cooperative_health
        await session.execute(delete(h).where(h.c.cooperative_id.not_in(select(orm.known_cooperatives.c.id))))
        forget_dirty_marks(session)
        await Refresher.mark_all(session, cooperatives=False, kecamatan=True)
    result = await refresher.recompute_all_health(locked=True)
    async with db.session() as session:
        cooperatives = int(
            (await session.execute(select(func.count()).select_from(orm.known_cooperatives))).scalar_one()
        )
    seconds = time.perf_counter() - started
    log.info("read model rebuilt: %d of %d stored events replayed in %.2fs", replayed, stored, seconds)
    return RebuildResult(
        events_stored=stored,
        events_replayed=replayed,
        cooperatives=cooperatives,
        kecamatan=result.kecamatan,
        seconds=round(seconds, 3),
    )
