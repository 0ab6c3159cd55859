"""The library under broker failures: a RabbitMQ node of the test's own is killed and restarted.

Proves that the outbox publishes every committed event exactly once in effect across a broker crash
in the middle of a run, that consumers come back after the broker restarts, and that readiness
reports the outage while the API keeps answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kkmp_testkit.harness import running_app, wait_ready
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import PrivateRabbit
from kkmp_testkit.wait import eventually
from sqlalchemy import func, select

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbit]:
    with PrivateRabbit(name="kkmpshared") as node:
        yield node


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    ensure_postgres()
    url = await acreate_database("kkmp_fault")
    yield url
    await adrop_database(url)


async def distinct_and_total(app: Any) -> tuple[int, int]:
    effects = app.state.effects
    async with app.state.db.session() as session:
        row = (
            await session.execute(select(func.count(func.distinct(effects.c.member_id)), func.count()))
        ).one()
    return int(row[0]), int(row[1])


async def test_every_committed_event_is_consumed_once_across_a_broker_crash(
    rabbit: PrivateRabbit, pg_url: str, toy_app: Any
) -> None:
    app = toy_app(rabbit.url, pg_url, retry_delays_ms=[200, 500, 1000, 2000])
    total = 300
    async with running_app(app) as client:
        await wait_ready(client, timeout=30)
        created: list[str] = []

        async def post_items() -> None:
            for _ in range(total):
                response = await client.post("/items/beras")
                assert response.status_code == 201, response.text
                created.append(response.json()["member_id"])
                await asyncio.sleep(0.005)

        producer = asyncio.create_task(post_items())
        await eventually(lambda: len(created) >= 60, timeout=30)
        await asyncio.to_thread(rabbit.kill)
        # The API keeps taking changes while the broker is down; readiness says it is not ready.
        await eventually(lambda: len(created) >= 120, timeout=30)
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"] != "ok"
        await asyncio.to_thread(rabbit.start)
        await producer
        await wait_ready(client, timeout=60)
        assert await eventually(lambda: _all_consumed(app, total), timeout=90, interval=0.5), (
            "every item consumed"
        )
        distinct, count = await distinct_and_total(app)
        assert (distinct, count) == (total, total), "no event lost, none applied twice"
        assert set(created) == set(await _consumed_ids(app))
        assert await app.state.relay.backlog() == 0
        assert app.state.broker.reconnects >= 1


async def _all_consumed(app: Any, total: int) -> bool:
    distinct, _ = await distinct_and_total(app)
    return distinct >= total


async def _consumed_ids(app: Any) -> list[str]:
    async with app.state.db.session() as session:
        return list((await session.execute(select(app.state.effects.c.member_id))).scalars())


async def test_consumers_come_back_after_the_broker_restarts(
    rabbit: PrivateRabbit, pg_url: str, toy_app: Any
) -> None:
    app = toy_app(rabbit.url, pg_url)
    async with running_app(app) as client:
        await wait_ready(client, timeout=30)
        first = (await client.post("/items/gula")).json()["member_id"]
        await eventually(lambda: app.state.effect_count(first), timeout=15)
        for _ in range(2):
            await asyncio.to_thread(rabbit.restart, hard=True)
            await wait_ready(client, timeout=60)
            assert app.state.runner.missing_consumers() == []
            after = (await client.post("/items/telur")).json()["member_id"]
            await eventually(lambda after=after: app.state.effect_count(after), timeout=30)
        assert app.state.broker.reconnects >= 2
