"""The inventory through a real PgBouncer (Debian's, transaction pooling, a server pool of 3) with
`DATABASE_POOLER=pgbouncer`: migrations at start, the inbox (cooperatives registered on the broker),
HTTP writes and reads from many concurrent sessions, and the outbox relay all work, with no
prepared-statement error. The control: the same engine without the setting fails through it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inventory.bootstrap import create_app
from kkmp_shared.db import make_engine
from kkmp_testkit.harness import EventProbe, app_on_database, running_app, wait_ready
from kkmp_testkit.pgbouncer import PgBouncer, pgbouncer
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.tokens import TokenFactory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inventory_testkit import Inventory, inventory_settings

pytestmark = pytest.mark.integration

SERVER_POOL = 3


@pytest.fixture(scope="module")
def bouncer() -> AsyncIterator[PgBouncer]:
    with pgbouncer(ensure_postgres(), pool_size=SERVER_POOL) as running:
        yield running  # type: ignore[misc]


@pytest.fixture(scope="module")
async def database(bouncer: PgBouncer) -> AsyncIterator[str]:
    url = await acreate_database("inventory_pgbouncer")
    yield url
    await adrop_database(url)


@pytest.fixture(scope="module")
async def inventory(
    bouncer: PgBouncer, database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Inventory]:
    tokens = TokenFactory()
    tmp = tmp_path_factory.mktemp("inventory-pgbouncer")
    with temporary_vhost(ensure_broker(), prefix="inventory-pgbouncer") as amqp_url:
        settings = inventory_settings(
            amqp_url, tmp, database_pooler="pgbouncer", database_pool_size=8, stock_cache_ttl_s=0
        )
        app = app_on_database(create_app, settings, bouncer.url(database), tokens)
        async with EventProbe(amqp_url) as probe, running_app(app) as client:
            await wait_ready(client, timeout=30)
            yield Inventory(
                app=app, client=client, probe=probe, tokens=tokens, amqp_url=amqp_url, backend="pgbouncer"
            )


async def test_concurrent_movements_and_reads_work_through_pgbouncer(inventory: Inventory) -> None:
    coops = await asyncio.gather(*(inventory.register() for _ in range(4)))
    rounds = 10

    async def writer(coop: str, commodity: str) -> None:
        for n in range(rounds):
            await inventory.move(coop, commodity=commodity, kind="receipt", quantity="10", unit_price=12000)
            if n % 3 == 0:
                await inventory.stock(coop)
            await inventory.move(coop, commodity=commodity, kind="sale", quantity="4", unit_price=13000)

    commodities = ("beras_medium", "beras_premium")
    # 8 sessions at once over 3 server connections: each transaction lands on whichever is free.
    await asyncio.gather(*(writer(coop, commodity) for coop in coops for commodity in commodities))
    for coop in coops:
        stock = await inventory.stock(coop)
        for commodity in commodities:
            assert stock[commodity]["on_hand"] == rounds * 6
    await inventory.settle()
    for coop in coops:
        assert len(inventory.events("stock.moved.v1", coop)) == rounds * 2 * len(commodities)


async def varied_statements(url: str, pooler: str) -> None:
    """Twelve sessions, each running transactions of a few distinct statements."""
    engine = make_engine(url, pool_size=12, pooler=pooler)

    async def session(n: int) -> None:
        for i in range(20):
            async with engine.begin() as conn:
                await conn.execute(text(f"SELECT {i % 5} + :n"), {"n": n})

    try:
        await asyncio.gather(*(session(n) for n in range(12)))
    finally:
        await engine.dispose()


async def test_without_the_pooler_setting_prepared_statements_break_through_pgbouncer(
    bouncer: PgBouncer, database: str
) -> None:
    with pytest.raises(DBAPIError, match="prepared statement"):
        await varied_statements(bouncer.url(database), "none")
    await varied_statements(bouncer.url(database), "pgbouncer")
