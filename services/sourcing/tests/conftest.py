"""Fixtures of sourcing's tests: the service running in-process against the real broker (a vhost of its
own) and a real database, once on SQLite and once on PostgreSQL, shared by every integration test.

One app per database keeps the suite fast; tests stay independent by working on their own cooperatives
and commodity codes (see `sourcing_testkit`). The `EventProbe` bound to every routing key is open before
the app starts, so every event sourcing publishes is routable and seen.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kkmp_testkit.harness import EventProbe, app_on_database, running_app, wait_ready
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.tokens import TokenFactory
from sourcing.bootstrap import create_app
from sourcing.settings import SourcingSettings

# Whatever pytest's import mode, the test kit (next to this file) is importable by its unique name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sourcing_testkit import Service, write_test_commodities


@pytest.fixture(scope="session")
def broker_url() -> str:
    return ensure_broker()


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="session")
def commodities_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_commodities(tmp_path_factory.mktemp("reference") / "commodities.csv")


@pytest.fixture(scope="session")
def amqp_url(broker_url: str) -> Iterator[str]:
    with temporary_vhost(broker_url, prefix="sourcing") as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def service(
    request: pytest.FixtureRequest,
    amqp_url: str,
    tokens: TokenFactory,
    commodities_csv: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Service]:
    backend = request.param
    data_dir = tmp_path_factory.mktemp(f"sourcing-{backend}")
    if backend == "sqlite":
        database_url = f"sqlite+aiosqlite:///{data_dir / 'sourcing.db'}"
    else:
        ensure_postgres()
        database_url = await acreate_database("kkmp_sourcing")
    settings = SourcingSettings(
        amqp_url=amqp_url,
        demo=True,
        data_dir=data_dir,
        commodities_csv=commodities_csv,
        retry_delays_ms=[200, 500],
        relay_poll_interval_s=0.1,
        log_json=False,
        log_level="WARNING",
    )
    app = app_on_database(create_app, settings, database_url, tokens)
    try:
        async with EventProbe(amqp_url) as probe, running_app(app) as client:
            await wait_ready(client, timeout=30)
            yield Service(app=app, client=client, probe=probe, tokens=tokens, backend=backend)
    finally:
        if backend == "postgres":
            await adrop_database(database_url)
