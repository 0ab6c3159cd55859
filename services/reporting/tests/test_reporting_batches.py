"""A batch of events projected set-based (`Projector.apply_many`, what the consumers use for a batch)
leaves exactly the rows that projecting the same events one by one leaves, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kkmp_shared.db import Database
from kkmp_shared.events.contracts import EVENT_MODELS
from kkmp_shared.events.envelope import CloudEvent, new_event
from kkmp_shared.messaging.outbox import Outbox
from kkmp_shared.unit_of_work import UnitOfWork
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from reporting.adapters import orm
from reporting.bootstrap import MIGRATIONS
from reporting.domain.periods import zone
from reporting.service_layer.projections import MOVED_RUN, Projector
from reporting_testkit import Coop, days_ago, fresh_kecamatan
from sqlalchemy import select
from test_reporting_read_model import Stream

pytestmark = [pytest.mark.integration, pytest.mark.clock]
OUTBOX = Outbox(orm.messaging, source="/reporting")


@pytest.fixture(params=["sqlite", "postgres"])
async def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Database]]:
    if request.param == "sqlite":
        urls = [f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in ("one", "many")]
    else:
        ensure_postgres()
        urls = [await acreate_database("kkmp_reporting_batch") for _ in range(2)]
    databases = [Database(url) for url in urls]
    for db in databases:
        await db.migrate(MIGRATIONS)
    yield databases
    for db in databases:
        await db.dispose()
    if request.param == "postgres":
        for url in urls:
            await adrop_database(url)


def busy_stream() -> list[CloudEvent]:
    """The fixture stream, then a busy week: hundreds of interleaved movements over two kecamatan,
    several of them on the same item, day and week, with conditions (stalls in bursts among them)
    starting and ending between."""
    s = Stream()
    extra = Coop(fresh_kecamatan(), "KKMP Gamma")
    data: list[Any] = [*s.events(), extra.registered(days_ago(100))]
    rng = random.Random(7)
    coops, commodities = [s.a1, s.a2, s.b1, extra], ["beras_medium", "gula", "telur"]
    on_hand = {(c.id, k): 1000 for c in coops for k in commodities}
    for i in range(3 * MOVED_RUN // 2):
        coop, commodity = rng.choice(coops), rng.choice(commodities)
        at = days_ago(14) + timedelta(minutes=20 * i)
        if i % 61 == 0:
            # A detection scan's burst: stalls one after another, an item stalled again within its
            # episode (its figures refreshed) and one stalled anew after recovering.
            data.append(coop.stalled(commodity, 100_000 + i, at))
            data.append(coops[(i + 1) % len(coops)].stalled("telur", 200_000 + i, at))
            data.append(coop.stalled(commodity, 300_000 + i, at + timedelta(minutes=1)))
            if i % 2:
                data.append(coop.recovered(commodity, "stalled", at + timedelta(minutes=2)))
                data.append(coop.stalled(commodity, 400_000 + i, at + timedelta(minutes=3)))
        elif i % 97 == 0:
            data.append(coop.low(commodity, at))
        elif i % 89 == 0:
            data.append(coop.recovered(commodity, "low", at))
        elif rng.random() < 0.2:
            on_hand[(coop.id, commodity)] += 50
            data.append(coop.receipt(commodity, "50", at, str(on_hand[(coop.id, commodity)])))
        else:
            quantity = rng.randint(1, 5)
            on_hand[(coop.id, commodity)] -= quantity
            data.append(
                coop.sale(commodity, str(quantity), quantity * 13_000, at, str(on_hand[(coop.id, commodity)]))
            )
    return [new_event(d, source="/inventory") for d in data]


async def contents(db: Database) -> dict[str, Any]:
    """Every projection row, and which cooperatives and kecamatan wait for the refresher."""
    q = orm.refresh_queue
    async with db.session() as session:
        rows = {
            # The directory stamps its rows with the moment of writing: left out of the comparison.
            table.name: sorted(
                (await session.execute(select(*(c for c in table.c if c.name != "updated_at")))).all(),
                key=repr,
            )
            for table in orm.PROJECTION_TABLES
            if table is not q
        }
        rows["dirty"] = sorted(set((await session.execute(select(q.c.kind, q.c.key))).all()))
    return rows


async def test_batches_leave_the_same_rows_as_one_by_one(two_databases: list[Database]) -> None:
    one, many = two_databases
    projector = Projector(zone("Asia/Jakarta"))
    events = busy_stream()
    models = [(event, EVENT_MODELS[event.type].model_validate(event.data)) for event in events]
    for event, data in models:
        async with UnitOfWork(one.session(), OUTBOX) as uow:
            await projector.apply(uow, event, data)
    # Batches of uneven sizes, as the consumer cuts them from what has arrived.
    rng, position = random.Random(11), 0
    while position < len(models):
        size = rng.choice([1, 2, 37, 100, MOVED_RUN + 3])
        async with UnitOfWork(many.session(), OUTBOX) as uow:
            await projector.apply_many(uow, models[position : position + size])
        position += size

    expected, actual = await contents(one), await contents(many)
    assert len(expected["stock_items"]) >= 12 and expected["coop_sales_daily"] and expected["sales_weekly"]
    assert len(expected["stalled_episodes"]) >= 10
    assert actual == expected
