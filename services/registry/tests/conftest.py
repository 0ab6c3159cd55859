"""Fixtures of the registry's tests: the registry running in-process against the real broker (a vhost of
its own) and a real database, once on SQLite and once on PostgreSQL.

One app per database for the whole session keeps the suite fast on a small machine (migrations, region
loading and argon2 are paid twice, not per module); tests share it and stay independent by using their
own cooperatives (each takes a free kelurahan), their own users and their own client addresses for the
login throttle. An `EventProbe` bound to every routing key is open before the app starts, so every
event the registry publishes is routable and seen (events are told apart by their ids).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kkmp_testkit.harness import EventProbe, running_app, wait_ready
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.tokens import TokenFactory
from registry.bootstrap import create_app

# Whatever pytest's import mode, the test kit (next to this file) is importable by its unique name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry_testkit import ADMIN_PASSWORD, KELURAHAN, SERVICE_CLIENT, Registry, RegistryTestSettings


@pytest.fixture(scope="session")
def broker_url() -> str:
    return ensure_broker()


async def start_registry(
    database: str, broker_url: str, data_dir: Path, **settings: Any
) -> AsyncIterator[Registry]:
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'registry.db'}"
    else:
        ensure_postgres()
        url = await acreate_database("registry")
    try:
        with temporary_vhost(broker_url, prefix="registry") as amqp_url:
            tokens = TokenFactory()
            config = RegistryTestSettings(
                test_database_url=url,
                amqp_url=amqp_url,
                demo=True,
                data_dir=data_dir,
                admin_password=ADMIN_PASSWORD,
                service_clients=f"{SERVICE_CLIENT[0]}:{SERVICE_CLIENT[1]}",
                relay_poll_interval_s=0.1,
                log_json=True,
                log_level=os.environ.get("REGISTRY_TEST_LOG_LEVEL", "WARNING"),
                **settings,
            )
            app = create_app(config, key_source=lambda _s: tokens.key_source())
            async with EventProbe(amqp_url) as probe, running_app(app) as client:
                await wait_ready(client)
                registry = Registry(
                    app=app,
                    client=client,
                    probe=probe,
                    tokens=tokens,
                    amqp_url=amqp_url,
                    database=database,
                    data_dir=data_dir,
                    free_kelurahan=[k.code for k in KELURAHAN],
                )
                try:
                    yield registry
                finally:
                    for extra in registry.extra_clients:
                        await extra.aclose()
    finally:
        if database != "sqlite":
            await adrop_database(url)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def registry(
    request: pytest.FixtureRequest, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Registry]:
    data_dir = tmp_path_factory.mktemp(f"registry-{request.param}")
    async for running in start_registry(
        request.param, broker_url, data_dir, login_max_failures=3, login_max_failures_per_ip=5
    ):
        yield running
