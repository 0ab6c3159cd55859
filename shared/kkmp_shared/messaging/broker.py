"""One supervised AMQP connection per service, and the broker topology.

We use plain `aio_pika.connect` under our own supervision loop instead of `connect_robust`: robust
connections are known to come back without some of their consumers after certain reconnects, so on
every (re)connect we open fresh channels and re-run every component's set-up hook (declare the
topology, start consumers, open the relay's confirm channel). Readiness reads the same state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustQueue,
)
from yarl import URL

log = logging.getLogger("kkmp.broker")

ConnectHook = Callable[[AbstractConnection], Awaitable[None]]


def with_heartbeat(url: str, seconds: int = 10) -> str:
    """A dead peer is noticed within about two heartbeats instead of the OS's TCP timeout."""
    parsed = URL(url)
    if "heartbeat" in parsed.query:
        return url
    return str(parsed.update_query({"heartbeat": str(seconds)}))


class Broker:
    """Keeps one connection alive and calls the registered hooks each time it (re)connects."""

    def __init__(self, url: str, *, name: str, exchange: str = "kkmp.events") -> None:
        self.url = with_heartbeat(url)
        self.name = name
        self.exchange_name = exchange
        self.connection: AbstractConnection | None = None
        self.connected = asyncio.Event()
        self._hooks: list[ConnectHook] = []
        self._lost = asyncio.Event()
        self._stopping = False
        self.last_error: str | None = None
        self.reconnects = 0

    def on_connect(self, hook: ConnectHook) -> None:
        self._hooks.append(hook)

    @property
    def is_connected(self) -> bool:
        return self.connected.is_set() and self.connection is not None and not self.connection.is_closed

    def connection_lost(self, reason: str) -> None:
        """A component saw its channel die: tear the connection down so everything is rebuilt."""
        if not self._lost.is_set():
            log.warning("broker connection to be rebuilt: %s", reason)
            self.last_error = reason
            self._lost.set()

    async def run(self) -> None:
        delay = 0.2
        while not self._stopping:
            self._lost.clear()
            try:
                connection = await aio_pika.connect(
                    self.url, timeout=5, client_properties={"connection_name": self.name}
                )
            except Exception as exc:
                self.last_error = f"cannot connect: {exc!r}"
                log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.connection = connection

            def _closed(_sender: Any, exc: BaseException | None = None) -> None:
                self.connection_lost(f"connection closed: {exc!r}")

            connection.close_callbacks.add(_closed)
            try:
                async with connection.channel() as channel:
                    await declare_exchanges(channel, self.exchange_name)
                for hook in self._hooks:
                    await hook(connection)
            except Exception as exc:
                log.warning("broker set-up failed (%r); reconnecting", exc)
                self.connection_lost(f"set-up failed: {exc!r}")
            else:
                delay = 0.2
                self.connected.set()
                log.info("broker connected", extra={"broker": self.name})
            await self._lost.wait()
            self.connected.clear()
            self.reconnects += 1
            await self._close(connection)
            if not self._stopping:
                await asyncio.sleep(delay)

    async def _close(self, connection: AbstractConnection) -> None:
        try:
            await asyncio.wait_for(connection.close(), timeout=2)
        except Exception:  # the connection is already broken; nothing more to release
            pass

    async def stop(self) -> None:
        self._stopping = True
        self._lost.set()
        if self.connection is not None:
            await self._close(self.connection)


async def declare_exchanges(channel: AbstractChannel, exchange: str) -> AbstractExchange:
    await channel.declare_exchange(dead_letter_exchange(exchange), aio_pika.ExchangeType.DIRECT, durable=True)
    return await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)


def dead_letter_exchange(exchange: str) -> str:
    return f"{exchange}.dlx"


def copy_for_republish(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a received message, with new headers, to publish to another queue."""
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        app_id=message.app_id,
    )


def dlq_name(queue: str) -> str:
    return f"{queue}.dlq"


def retry_queue_name(queue: str, delay_ms: int) -> str:
    return f"{queue}.retry.{delay_ms}"


async def declare_consumer_queue(
    channel: AbstractChannel,
    *,
    exchange: str,
    queue: str,
    routing_keys: list[str],
    retry_delays_ms: list[int],
) -> AbstractRobustQueue:
    """A durable work queue bound to its event types, its dead-letter queue and its delayed retries.

    Retries wait in one queue per delay (a per-queue TTL, so no message waits behind a longer one),
    then dead-letter back into the work queue through the default exchange.
    """
    dlx = await channel.get_exchange(dead_letter_exchange(exchange), ensure=False)
    events = await channel.get_exchange(exchange, ensure=False)
    dead = await channel.declare_queue(dlq_name(queue), durable=True)
    await dead.bind(dlx, routing_key=dlq_name(queue))
    work = await channel.declare_queue(
        queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": dead_letter_exchange(exchange),
            "x-dead-letter-routing-key": dlq_name(queue),
        },
    )
    for key in routing_keys:
        await work.bind(events, routing_key=key)
    for delay in retry_delays_ms:
        await channel.declare_queue(
            retry_queue_name(queue, delay),
            durable=True,
            arguments={
                "x-message-ttl": delay,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
            },
        )
    return work  # type: ignore[return-value]
