"""`kkmp topology migrate` on the real broker: a deployment's classic queues, with messages waiting in
work, dead-letter and retry queues, become quorum queues with every message exactly once, the bindings
in place, and the services' own declarations accepted afterwards; running it again (or after a crash
midway) finishes the job and changes nothing more.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest
from kkmp_cli.main import app as cli
from kkmp_shared.messaging.broker import declare_consumer_queue, declare_exchanges
from kkmp_shared.messaging.migrate import BrokerState, Migrator, migrate, plan
from kkmp_testkit.rabbit import rabbitmqctl
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

EXCHANGE = "kkmp.events"
SUBSCRIPTIONS = {
    "toy.members": ["member.joined.v1", "cooperative.registered.v1"],
    "toy.stock": ["stock.stalled.v1"],
}
RETRY_DELAYS = [60000, 120000]  # long: the parked messages must still be waiting when we look


def vhost_of(url: str) -> str:
    return unquote(urlsplit(url).path[1:])


def state_of(url: str) -> BrokerState:
    return BrokerState.from_rabbitmqctl(vhost_of(url), rabbitmqctl)


async def declare_old_classic_topology(url: str) -> dict[str, list[bytes]]:
    """The topology as the previous release declared it (classic queues), with messages in each kind
    of queue; returns what waits where."""
    waiting: dict[str, list[bytes]] = {}
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await declare_exchanges(channel, EXCHANGE)
        dlx = await channel.get_exchange(f"{EXCHANGE}.dlx", ensure=False)
        for queue, keys in SUBSCRIPTIONS.items():
            dead = await channel.declare_queue(f"{queue}.dlq", durable=True)
            await dead.bind(dlx, routing_key=f"{queue}.dlq")
            work = await channel.declare_queue(
                queue,
                durable=True,
                arguments={
                    "x-dead-letter-exchange": f"{EXCHANGE}.dlx",
                    "x-dead-letter-routing-key": f"{queue}.dlq",
                },
            )
            for key in keys:
                await work.bind(events, routing_key=key)
            for delay in RETRY_DELAYS:
                await channel.declare_queue(
                    f"{queue}.retry.{delay}",
                    durable=True,
                    arguments={
                        "x-message-ttl": delay,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": queue,
                    },
                )
            for i, key in enumerate(keys * 20):
                body = f"{queue}-event-{i}".encode()
                await events.publish(aio_pika.Message(body, delivery_mode=2), routing_key=key, mandatory=True)
                waiting.setdefault(queue, []).append(body)
            for i in range(5):
                body = f"{queue}-dead-{i}".encode()
                message = aio_pika.Message(body, delivery_mode=2, headers={"x-kkmp-error": f"failure {i}"})
                await dlx.publish(message, routing_key=f"{queue}.dlq", mandatory=True)
                waiting.setdefault(f"{queue}.dlq", []).append(body)
            for i in range(3):
                body = f"{queue}-retrying-{i}".encode()
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=2),
                    routing_key=f"{queue}.retry.60000",
                    mandatory=True,
                )
                waiting.setdefault(f"{queue}.retry.60000", []).append(body)
    return waiting


async def declare_as_the_services_do(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await declare_exchanges(channel, EXCHANGE)
        for queue, keys in SUBSCRIPTIONS.items():
            await declare_consumer_queue(
                channel, exchange=EXCHANGE, queue=queue, routing_keys=keys, retry_delays_ms=RETRY_DELAYS
            )


async def drain_all(url: str, names: list[str]) -> dict[str, Counter[bytes]]:
    out: dict[str, Counter[bytes]] = {}
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            got: Counter[bytes] = Counter()
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                got[message.body] += 1
                if name.endswith(".dlq"):
                    assert (message.headers or {}).get("x-kkmp-error"), "headers travel with the message"
            out[name] = got
    return out


def assert_migrated(url: str) -> BrokerState:
    state = state_of(url)
    assert not [name for name in state.queues if name.endswith(".migrating")]
    assert {t for t in state.queues.values()} == {"quorum"}, state.queues
    for queue, keys in SUBSCRIPTIONS.items():
        assert state.bindings[queue] == {(EXCHANGE, key) for key in keys}
        assert state.bindings[f"{queue}.dlq"] == {(f"{EXCHANGE}.dlx", f"{queue}.dlq")}
    return state


async def test_classic_queues_with_messages_become_quorum_queues_with_every_message_once(
    amqp_url: str,
) -> None:
    waiting = await declare_old_classic_topology(amqp_url)
    with pytest.raises(aio_pika.exceptions.ChannelClosed, match="PRECONDITION_FAILED"):
        await declare_as_the_services_do(amqp_url)  # why a migration is needed at all

    _steps, report = await migrate(amqp_url, await asyncio.to_thread(state_of, amqp_url), delivery_limit=10)
    assert sum(report.moved.values()) == sum(len(v) for v in waiting.values())
    state = await asyncio.to_thread(assert_migrated, amqp_url)
    assert len(state.queues) == 2 * (2 + len(RETRY_DELAYS))

    await declare_as_the_services_do(amqp_url)  # accepted now: same type, same arguments
    # Again: nothing left to do, nothing moves.
    _steps, again = await migrate(amqp_url, await asyncio.to_thread(state_of, amqp_url), delivery_limit=10)
    assert again.migrated == [] and sum(again.moved.values()) == 0

    found = await drain_all(amqp_url, sorted(waiting))
    assert found == {name: Counter(bodies) for name, bodies in waiting.items()}


async def test_a_migration_that_crashed_midway_is_finished_by_running_it_again(amqp_url: str) -> None:
    waiting = await declare_old_classic_topology(amqp_url)
    # Crash after the first subscription's work queue and one retry queue were parked: the work queue
    # no longer exists, its messages and bindings are on `toy.members.migrating`.
    state = await asyncio.to_thread(state_of, amqp_url)
    [members, _stock] = plan(state, exchange=EXCHANGE, delivery_limit=10)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        migrator = Migrator(connection, state)
        await migrator.park(members.retries[0])
        await migrator.park(members.work)
    midway = await asyncio.to_thread(state_of, amqp_url)
    assert "toy.members" not in midway.queues and "toy.members.migrating" in midway.queues

    # The operator runs the command again, through the CLI.
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["topology", "migrate", "--amqp-url", amqp_url], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "toy.members: now a quorum queue (40 message(s) carried over)" in result.output
    await asyncio.to_thread(assert_migrated, amqp_url)
    await declare_as_the_services_do(amqp_url)
    found = await drain_all(amqp_url, sorted(waiting))
    assert found == {name: Counter(bodies) for name, bodies in waiting.items()}


def test_the_plan_finds_each_subscription_with_its_retry_delays_and_keys() -> None:
    state = BrokerState(
        queues={
            "a.q": "classic",
            "a.q.dlq": "classic",
            "a.q.retry.1000": "classic",
            "b.q.migrating": "quorum",
            "b.q.retry.5000": "quorum",
            "b.q.dlq": "quorum",
        },
        bindings={
            "a.q": {(EXCHANGE, "x.v1"), ("other", "y")},
            "a.q.dlq": {(f"{EXCHANGE}.dlx", "a.q.dlq")},
            "b.q.migrating": {(EXCHANGE, "z.v1")},
            "b.q.dlq": {(f"{EXCHANGE}.dlx", "b.q.dlq")},
        },
    )
    steps: list[Any] = plan(state, exchange=EXCHANGE, delivery_limit=4)
    assert [s.work.name for s in steps] == ["a.q", "b.q"]
    assert steps[0].work.bindings == [(EXCHANGE, "x.v1")]
    assert steps[0].work.arguments["x-delivery-limit"] == 4
    assert [r.name for r in steps[0].retries] == ["a.q.retry.1000"]
    assert steps[1].work.bindings == [(EXCHANGE, "z.v1")]
    assert [r.arguments["x-message-ttl"] for r in steps[1].retries] == [5000]
    assert json.dumps(steps[1].dead.bindings) == json.dumps([[f"{EXCHANGE}.dlx", "b.q.dlq"]])
