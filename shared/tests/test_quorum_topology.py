"""The consumer topology on the real broker: quorum queues with an explicit delivery limit.

A message whose consumer dies on it (the channel closes without an ack, as when the process crashes
mid-message) is redelivered; past the delivery limit the broker parks it in the dead-letter queue
instead of handing it out for ever.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest
from kkmp_shared.messaging.broker import (
    UNREACHED_DELIVERY_LIMIT,
    declare_consumer_queue,
    declare_exchanges,
)
from kkmp_testkit.rabbit import rabbitmqctl
from kkmp_testkit.wait import eventually

pytestmark = pytest.mark.integration


def vhost_of(url: str) -> str:
    return unquote(urlsplit(url).path[1:])


def queues_of(url: str) -> dict[str, dict]:
    """name → {type, arguments, messages} as the broker itself reports them (rabbitmqctl)."""
    out = rabbitmqctl(
        "list_queues",
        "-p",
        vhost_of(url),
        "-q",
        "--formatter",
        "json",
        "name",
        "type",
        "arguments",
        "messages",
    )
    queues = {q["name"]: q for q in json.loads(out)}
    for queue in queues.values():  # the CLI lists arguments as [name, AMQP type, value] triples
        queue["arguments"] = {name: value for name, _type, value in queue["arguments"]}
    return queues


async def test_work_dead_letter_and_retry_queues_are_quorum_queues_with_explicit_limits(
    amqp_url: str,
) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await declare_exchanges(channel, "kkmp.events")
        # Declared twice: declaring again (every reconnect does) is accepted, same type, same arguments.
        for _ in range(2):
            await declare_consumer_queue(
                channel,
                exchange="kkmp.events",
                queue="toy.things",
                routing_keys=["member.joined.v1"],
                retry_delays_ms=[100, 2000],
                delivery_limit=7,
            )
    queues = queues_of(amqp_url)
    assert set(queues) == {"toy.things", "toy.things.dlq", "toy.things.retry.100", "toy.things.retry.2000"}
    assert {q["type"] for q in queues.values()} == {"quorum"}
    work = queues["toy.things"]["arguments"]
    assert work["x-delivery-limit"] == 7
    assert work["x-dead-letter-exchange"] == "kkmp.events.dlx"
    assert work["x-dead-letter-routing-key"] == "toy.things.dlq"
    assert work["x-dead-letter-strategy"] == "at-least-once"
    assert work["x-overflow"] == "reject-publish"
    # Operators' reads of the dead-letter queue count as deliveries: a limit that is never reached
    # (RabbitMQ 4.x would otherwise apply its default of 20 and drop them).
    assert queues["toy.things.dlq"]["arguments"]["x-delivery-limit"] == UNREACHED_DELIVERY_LIMIT
    retry = queues["toy.things.retry.2000"]["arguments"]
    assert retry["x-message-ttl"] == 2000
    assert retry["x-dead-letter-exchange"] == ""
    assert retry["x-dead-letter-routing-key"] == "toy.things"


async def test_a_message_redelivered_past_the_delivery_limit_ends_in_the_dead_letter_queue(
    amqp_url: str,
) -> None:
    limit = 3
    body = f"poison-{uuid.uuid4()}".encode()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        setup = await connection.channel(publisher_confirms=True)
        events = await declare_exchanges(setup, "kkmp.events")
        await declare_consumer_queue(
            setup,
            exchange="kkmp.events",
            queue="toy.crashy",
            routing_keys=["member.joined.v1"],
            retry_delays_ms=[100],
            delivery_limit=limit,
        )
        await events.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="member.joined.v1",
            mandatory=True,
        )
        deliveries = 0
        # A consumer that dies on the message: it takes it, then its channel closes without an ack.
        for _ in range(limit + 5):
            channel = await connection.channel()
            queue = await channel.declare_queue("toy.crashy", passive=True)
            message = await queue.get(no_ack=False, fail=False)
            await channel.close()
            if message is None:
                break
            assert message.body == body
            deliveries += 1
        assert deliveries == limit + 1, "the first delivery and `limit` redeliveries, then no more"

        dlq = await setup.declare_queue("toy.crashy.dlq", passive=True)

        async def dead_lettered() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await dlq.get(no_ack=True, fail=False)

        parked = await eventually(dead_lettered, timeout=10, message="the message reached the DLQ")
        assert parked.body == body
        death = (parked.headers or {})["x-death"][0]
        assert death["reason"] == "delivery_limit"
        assert death["queue"] == "toy.crashy"
        work = await setup.declare_queue("toy.crashy", passive=True)
        assert work.declaration_result.message_count == 0
