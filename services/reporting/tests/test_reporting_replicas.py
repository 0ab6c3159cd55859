"""Two refreshers (two replicas' worth: each its own engine) on one PostgreSQL database: the marked work
is done once and all of it is done, each level change is announced once, and when the lease holder
dies the other refresher takes the lease over once it has expired.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from kkmp_shared import clock
from kkmp_shared.bootstrap import Platform
from kkmp_shared.db import Database
from kkmp_shared.messaging.outbox import Outbox
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.wait import eventually
from reporting.adapters import orm, refresh_store
from reporting.bootstrap import MIGRATIONS
from reporting.service_layer.context import build_context
from reporting.service_layer.refresh import Refresher
from reporting.settings import ReportingSettings
from sqlalchemy import func, select, text

pytestmark = pytest.mark.integration

COOPERATIVES = 600
LEASE_S = 2.0


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    ensure_postgres()
    url = await acreate_database("reporting_replicas")
    db = Database(url, pool_size=2)
    await db.migrate(MIGRATIONS)
    await db.dispose()
    yield url
    await adrop_database(url)


def replica(url: str) -> tuple[Database, Refresher]:
    """One replica's refresher: its own engine (pool), its own holder id."""
    settings = ReportingSettings(demo=True, refresh_chunk=50, refresh_lease_s=LEASE_S)
    db = Database(url, pool_size=2)
    platform = Platform(settings, orm.messaging, db, Outbox(orm.messaging, source="/reporting"))
    return db, build_context(settings, platform).refresher


async def seed(url: str) -> None:
    """Cooperatives recorded as active (aktif) though nothing shows it, all marked: each one's recompute is a
    level change, announced through the outbox."""
    db = Database(url, pool_size=1)
    now = clock.now()
    kecamatan = [f"35.78.{n:02d}" for n in range(1, 11)]
    coops = [
        {
            "id": f"coop-{n:05d}",
            "name": f"KKMP {n}",
            "kelurahan_code": f"{kecamatan[n % 10]}.{1001 + n}",
            "kecamatan_code": kecamatan[n % 10],
            "status": "operating",
            "business_units": [],
            "member_count": 9,
            "updated_at": now,
        }
        for n in range(COOPERATIVES)
    ]
    async with db.transaction() as session:
        await session.execute(orm.known_cooperatives.insert(), coops)
        await session.execute(
            orm.cooperative_health.insert(),
            [
                {
                    "cooperative_id": c["id"],
                    "kecamatan_code": c["kecamatan_code"],
                    "score": 0.0,
                    "level": "aktif",
                    "factors": [],
                    "computed_at": now,
                    "level_since": now,
                }
                for c in coops
            ],
        )
        await refresh_store.mark_all(session)
    await db.dispose()


async def scalar(db: Database, statement: object) -> int:
    async with db.session() as session:
        return int((await session.execute(statement)).scalar_one())  # type: ignore[call-overload]


async def waiting_for_locks(db: Database) -> int:
    return await scalar(db, text("SELECT count(*) FROM pg_locks WHERE NOT granted"))


async def test_two_refreshers_do_the_marked_work_once_and_all_of_it(database_url: str) -> None:
    await seed(database_url)
    (db_a, a), (db_b, b) = replica(database_url), replica(database_url)
    watcher = Database(database_url, pool_size=1)
    try:
        # A claims a chunk and is still working on it when B starts a cycle: B must not take (and
        # recompute) A's chunk, whose marks A deleted but has not committed yet.
        async with a.platform.unit_of_work() as uow:
            await a.take_turn(uow)
            up_to = await refresh_store.last_mark(uow.session)
            claimed = await refresh_store.claim(uow.session, "cooperative", up_to, a.chunk)
            cycle = asyncio.create_task(b.run_once())
            await eventually(lambda: waiting_for_locks(watcher), timeout=10, message="B waits for A")
            await a.recompute_health(uow, claimed, clock.now())
        result = await asyncio.wait_for(cycle, timeout=60)
        assert len(claimed) == 50
        assert result.cooperatives == COOPERATIVES - len(claimed)
        # Then both at once, on new marks: the counts add up to the cooperatives marked.
        await mark_all(database_url)
        results = await asyncio.gather(a.run_once(), b.run_once())
        assert sum(r.cooperatives for r in results) == COOPERATIVES
        assert await scalar(db_a, select(func.count()).select_from(orm.refresh_queue)) == 0
        h, o = orm.cooperative_health, orm.messaging.outbox
        assert await scalar(db_a, select(func.count()).where(h.c.level == "aktif")) == 0
        announced = select(o.c.subject, func.count().label("n")).where(
            o.c.event_type == "cooperative.health_changed.v1"
        )
        async with db_a.session() as session:
            per_coop = (await session.execute(announced.group_by(o.c.subject))).all()
        assert len(per_coop) == COOPERATIVES and {row.n for row in per_coop} == {1}
        city = orm.kecamatan_figures
        assert await scalar(db_b, select(func.count()).where(city.c.kecamatan_code == orm.ALL)) == 1
    finally:
        await db_a.dispose()
        await db_b.dispose()
        await watcher.dispose()


async def mark_all(url: str) -> None:
    db = Database(url, pool_size=1)
    async with db.transaction() as session:
        await refresh_store.mark_all(session)
    await db.dispose()


async def test_the_lease_passes_to_the_other_refresher_once_its_holder_has_died(database_url: str) -> None:
    (db_a, a), (db_b, b) = replica(database_url), replica(database_url)
    try:
        assert await a.hold_lease()
        assert not await b.hold_lease()
        assert await a.hold_lease()  # the holder renews
        renewed_at = time.monotonic()
        assert not await b.hold_lease()
        await db_a.dispose()  # the holder dies without a word: it stops renewing

        async def taken() -> bool:
            return await b.hold_lease()

        await eventually(taken, timeout=LEASE_S * 5, interval=0.1, message="b takes the lease over")
        assert time.monotonic() - renewed_at >= LEASE_S * 0.9  # not before the lease had run out
        await seed(database_url)
        result = await b.run_once()
        assert result.cooperatives == COOPERATIVES
        # A holder shutting down gives the lease up: the next replica needs no wait.
        await b.release_lease()
        (db_c, c) = replica(database_url)
        try:
            assert await c.hold_lease()
        finally:
            await db_c.dispose()
    finally:
        await db_a.dispose()
        await db_b.dispose()
