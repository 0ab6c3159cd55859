"""Exactly once in effect at each crash point of the messaging path, on SQLite and PostgreSQL:
between commit and publish, between publish and marking sent, between commit and ack."""

from __future__ import annotations

from typing import Any

import pytest
from kkmp_shared.events.envelope import CloudEvent
from kkmp_testkit.harness import running_app, wait_ready
from kkmp_testkit.ports import free_port
from kkmp_testkit.wait import eventually

pytestmark = [pytest.mark.integration, pytest.mark.fault]


async def test_crash_between_commit_and_publish(amqp_url: str, database_url: str, toy_app: Any) -> None:
    """Changes committed while the broker is unreachable, then the process dies: a new process on the
    same database publishes them, each consumed once."""
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    first = toy_app(dead_broker, database_url)
    async with running_app(first) as client:
        ids = [(await client.post("/items/beras")).json()["member_id"] for _ in range(20)]
        assert await first.state.relay.backlog() == 20
    second = toy_app(amqp_url, database_url)
    async with running_app(second) as client:
        await wait_ready(client)
        await eventually(lambda: _all_there(second, ids), timeout=20)
        assert await second.state.relay.backlog() == 0
        for member_id in ids:
            assert await second.state.effect_count(member_id) == 1


async def test_crash_between_publish_and_mark_sent(amqp_url: str, database_url: str, toy_app: Any) -> None:
    """The relay dies after the broker confirmed but before the rows are marked: they are published
    again, and the consumers' inbox absorbs the duplicates."""
    app = toy_app(amqp_url, database_url)
    crashes = {"left": 2}

    async def crash_after_publish(point: str) -> None:
        if point == "after_publish" and crashes["left"] > 0:
            crashes["left"] -= 1
            raise RuntimeError("relay crashed after publishing")

    app.state.relay.fault_hook = crash_after_publish
    async with running_app(app) as client:
        await wait_ready(client)
        ids = [(await client.post("/items/gula")).json()["member_id"] for _ in range(10)]
        await eventually(lambda: _all_there(app, ids), timeout=20)
        await eventually(lambda: _backlog_empty(app), timeout=20)
        await eventually(lambda: app.state.runner.stats["duplicates"] >= 1, timeout=20)
        assert crashes["left"] == 0
        for member_id in ids:
            assert await app.state.effect_count(member_id) == 1


async def test_crash_between_commit_and_ack(amqp_url: str, database_url: str, toy_app: Any) -> None:
    """The consumer dies after its transaction committed but before the ack: the broker redelivers,
    the inbox row makes the redelivery a no-op."""
    app = toy_app(amqp_url, database_url)
    crashes = {"left": 1}

    async def crash_after_commit(point: str, _event: CloudEvent) -> None:
        if point == "after_commit" and crashes["left"] > 0:
            crashes["left"] -= 1
            raise RuntimeError("consumer crashed before acking")

    app.state.runner.fault_hook = crash_after_commit
    async with running_app(app) as client:
        await wait_ready(client)
        member_id = (await client.post("/items/telur")).json()["member_id"]
        await eventually(lambda: app.state.runner.stats["duplicates"] >= 1, timeout=30)
        await wait_ready(client, timeout=30)
        assert await app.state.effect_count(member_id) == 1
        other = (await client.post("/items/telur")).json()["member_id"]
        await eventually(lambda: app.state.effect_count(other), timeout=20)


async def _all_there(app: Any, ids: list[str]) -> bool:
    for member_id in ids:
        if await app.state.effect_count(member_id) < 1:
            return False
    return True


async def _backlog_empty(app: Any) -> bool:
    return await app.state.relay.backlog() == 0
