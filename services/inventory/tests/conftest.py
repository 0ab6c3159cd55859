"""Fixtures of the inventory's tests: the service running in-process against the real RabbitMQ (a vhost
of its own) and a real database, once on SQLite and once on PostgreSQL, shared by the tests of a module.

Tests feed the service the way other services would (cooperative.registered.v1, order.delivered.v1 and
redistribution.accepted.v1 published on the broker) and read what it publishes with an `EventProbe`
bound to every routing key for the whole module, so every event the relay sends is routable.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inventory.bootstrap import create_app
from kkmp_testkit.harness import EventProbe, app_on_database, running_app, wait_ready
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.tokens import TokenFactory

# Whatever pytest's import mode, the tests import their helpers by this unique module name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from inventory_testkit import Inventory, inventory_settings


@pytest.fixture(scope="session")
def broker_url() -> str:
    return ensure_broker()


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def inventory(
    request: pytest.FixtureRequest,
    broker_url: str,
    tokens: TokenFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Inventory]:
    backend = request.param
    tmp: Path = tmp_path_factory.mktemp(f"inventory-{backend}")
    if backend == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp / 'inventory.db'}"
    else:
        ensure_postgres()
        database_url = await acreate_database("inventory_test")
    with temporary_vhost(broker_url, prefix="inventory") as amqp_url:
        app = app_on_database(create_app, inventory_settings(amqp_url, tmp), database_url, tokens)
        async with EventProbe(amqp_url) as probe, running_app(app) as client:
            await wait_ready(client, timeout=30)
            yield Inventory(
                app=app, client=client, probe=probe, tokens=tokens, amqp_url=amqp_url, backend=backend
            )
    if backend == "postgres":
        await adrop_database(database_url)
