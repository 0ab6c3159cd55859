"""Fixtures for the common library's tests: a real broker (own vhost per test) and real databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from kkmp_shared.testing.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_shared.testing.rabbit import ensure_broker, temporary_vhost


@pytest.fixture(scope="session")
def broker_url() -> str:
    return ensure_broker()


@pytest.fixture
def amqp_url(broker_url: str) -> Iterator[str]:
    with temporary_vhost(broker_url, prefix="shared") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"
        return
    ensure_postgres()
    url = await acreate_database("kkmp_shared")
    yield url
    await adrop_database(url)
