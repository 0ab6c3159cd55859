"""The broker's ceiling: what raw aio-pika gets through one queue, persistent and confirmed, with nothing
of the platform in the way. The ingest figures are read against it."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika


async def broker_ceiling(amqp_url: str, count: int, size: int, *, quorum: bool = False) -> float:
    """Raw aio-pika: persistent, confirmed publishes and acked consumption of `count` messages, on a
    classic queue or (``quorum``) a quorum queue, the kind the services' work queues are."""
    # A quorum queue cannot be auto-deleted: it is deleted at the end instead.
    arguments = {"x-queue-type": "quorum"} if quorum else None
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"bench.ceiling.{uuid.uuid4().hex[:6]}", durable=True, auto_delete=not quorum, arguments=arguments
        )
        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=256)
        got = 0
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal got
            await message.ack()
            got += 1
            if got >= count:
                done.set()

        consumer_queue = await consumer_channel.declare_queue(
            queue.name, durable=True, auto_delete=not quorum, arguments=arguments
        )
        await consumer_queue.consume(on_message)
        body = b"x" * size
        started = time.perf_counter()
        window = 500
        for start in range(0, count, window):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(body=body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue.name,
                    )
                    for _ in range(min(window, count - start))
                )
            )
        await asyncio.wait_for(done.wait(), timeout=300)
        rate = count / (time.perf_counter() - started)
        if quorum:
            await queue.delete(if_unused=False, if_empty=False)
        return rate
