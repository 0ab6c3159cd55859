"""Fixtures for reporting's tests: the real broker (a vhost of its own), SQLite and PostgreSQL, the
app running in-process, tokens, and a builder of contract events for the fixture streams.

One app per database backend is shared by the integration tests of the whole session (starting one
costs seconds: migrations, broker topology); tests stay independent by using cooperatives and
kecamatan codes of their own, and officers scoped to those codes when they assert city figures.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kkmp_testkit.harness import EventProbe, app_on_database, running_app, wait_ready
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.tokens import TokenFactory
from reporting.bootstrap import create_app
from reporting.settings import ReportingSettings

# pytest may import tests without putting their directory on sys.path: make the testkit importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting_testkit import Running


@pytest.fixture(scope="session")
def broker_url() -> str:
    return ensure_broker()


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="session")
def amqp_url(broker_url: str) -> Iterator[str]:
    with temporary_vhost(broker_url, prefix="reporting") as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('reporting') / 'reporting.db'}"
        return
    ensure_postgres()
    url = await acreate_database("kkmp_reporting")
    yield url
    await adrop_database(url)


def make_settings(amqp_url: str, **overrides: Any) -> ReportingSettings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "demo": True,
        "retry_delays_ms": [100, 300],
        "relay_poll_interval_s": 0.1,
        "refresh_interval_s": 0.1,
        "health_interval_s": 0,
        "overdue_interval_s": 0,
        "log_json": False,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return ReportingSettings(**values)


@pytest.fixture(scope="session")
async def service(amqp_url: str, database_url: str, tokens: TokenFactory) -> AsyncIterator[Running]:
    app = app_on_database(create_app, make_settings(amqp_url), database_url, tokens)
    async with running_app(app) as client, EventProbe(amqp_url) as probe:
        await wait_ready(client, timeout=30)
        yield Running(app=app, client=client, probe=probe, tokens=tokens)
