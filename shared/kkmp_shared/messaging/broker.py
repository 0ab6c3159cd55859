"""One supervised AMQP connection per service, and the broker topology.

We use plain `aio_pika.connect` under our own supervision loop instead of `connect_robust`: robust
connections are known to come back without some of their consumers after certain reconnects, so on
every (re)connect we open fresh channels and re-run every component's set-up hook (declare the
topology, start consumers, open the relay's confirm channel). Readiness reads the same state.

A service may be given several broker addresses (the nodes of a cluster): it connects to the first
that answers, and after a connection loss it tries the next one first (the node it was on may be the
one that died), going round the list.

Topology: work queues and dead-letter queues are quorum queues (replicated on a cluster) with an
explicit delivery limit; retry queues are quorum queues too (a per-queue TTL, dead-lettering back).
Every argument is set explicitly so that RabbitMQ 3.10 (tests) and 4.x (deployments, whose default
delivery limit is 20) declare the same queues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
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

from kkmp_shared.settings import split_urls

log = logging.getLogger("kkmp.broker")

ConnectHook = Callable[[AbstractConnection], Awaitable[None]]


def with_heartbeat(url: str, seconds: int = 10) -> str:
    """A dead peer is noticed within about two heartbeats instead of the OS's TCP timeout."""
    parsed = URL(url)
    if "heartbeat" in parsed.query:
        return url
    return str(parsed.update_query({"heartbeat": str(seconds)}))


class Broker:
    """Keeps one connection alive and calls the registered hooks each time it (re)connects.

    `url` may name several brokers (a comma-separated string or a list): see the module docstring.
    """

    def __init__(self, url: str | Sequence[str], *, name: str, exchange: str = "kkmp.events") -> None:
        self.urls = [with_heartbeat(u) for u in split_urls(url)]
        self._current = 0
        self.name = name
        self.exchange_name = exchange
        self.connection: AbstractConnection | None = None
        self.connected = asyncio.Event()
        self._hooks: list[ConnectHook] = []
        self._lost = asyncio.Event()
        self._stopping = False
        self.last_error: str | None = None
        self.reconnects = 0

    @property
    def url(self) -> str:
        """The address in use (or to be tried next)."""
        return self.urls[self._current]

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

    async def _connect_any(self) -> AbstractConnection | None:
        """One round over the addresses, from the current one; None when none answered."""
        for step in range(len(self.urls)):
            index = (self._current + step) % len(self.urls)
            try:
                connection = await aio_pika.connect(
                    self.urls[index], timeout=5, client_properties={"connection_name": self.name}
                )
            except Exception as exc:
                self.last_error = f"cannot connect to {_host(self.urls[index])}: {exc!r}"
                log.warning("broker %s unreachable (%s)", _host(self.urls[index]), exc)
                continue
            self._current = index
            return connection
        return None

    async def run(self) -> None:
        delay = 0.2
        while not self._stopping:
            self._lost.clear()
            connection = await self._connect_any()
            if connection is None:
                log.warning("no broker answered; retrying in %.1fs", delay)
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
                log.info("broker connected to %s", _host(self.url), extra={"broker": self.name})
            await self._lost.wait()
            self.connected.clear()
            self.reconnects += 1
            await self._close(connection)
            if len(self.urls) > 1:
                # The node we were on may be the one that died: start the next round on another.
                self._current = (self._current + 1) % len(self.urls)
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


def is_nack(exc: BaseException | None) -> bool:
    """True for a publish the broker refused with basic.nack (not a return of an unroutable one)."""
    frame = getattr(exc, "frame", None)
    return isinstance(exc, aio_pika.exceptions.DeliveryError) and type(frame).__name__ == "Nack"


async def close_quietly(channel: AbstractChannel) -> None:
    try:
        await asyncio.wait_for(channel.close(), timeout=2)
    except Exception:  # a channel being replaced; nothing more to release
        pass


def _host(url: str) -> str:
    """host:port of a broker URL, for logs (never the credentials)."""
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}"


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


# Dead-letter queues and holding queues are only read by operators (`kkmp dlq show` returns what it
# shows, which counts as a delivery): a limit no one reaches. Not -1, which RabbitMQ 4.x reads as "no
# limit" but 3.10 as a limit below zero (it drops a message at its first return: tried here).
UNREACHED_DELIVERY_LIMIT = 1_000_000
DEFAULT_DELIVERY_LIMIT = 10


def _quorum(**arguments: Any) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **arguments}


def _dead_lettering(exchange: str, routing_key: str) -> dict[str, Any]:
    # At-least-once dead-lettering (RabbitMQ >= 3.10) keeps a message in the source queue until the
    # target confirmed it; it requires the reject-publish overflow (no length limit is set, so nothing
    # is ever rejected for it).
    return {
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-routing-key": routing_key,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@dataclass(frozen=True)
class QueueSpec:
    """One queue of the topology: its name, declaration arguments and bindings (exchange, key)."""

    name: str
    arguments: dict[str, Any]
    bindings: list[tuple[str, str]] = field(default_factory=list)


def consumer_topology(
    *, exchange: str, queue: str, routing_keys: list[str], retry_delays_ms: list[int], delivery_limit: int
) -> tuple[QueueSpec, QueueSpec, list[QueueSpec]]:
    """The work queue, its dead-letter queue and its retry queues, as declared (and migrated to).

    The work queue's delivery limit ends the loop of a message that is redelivered without an ack
    again and again (its consumer's process or channel dies on it): past the limit the broker
    dead-letters it into `<queue>.dlq` (`x-death` reason `delivery_limit`). Failures the consumer
    sees go through the delayed retries, which do not count: each retry is a new message.
    """
    dead = QueueSpec(
        dlq_name(queue),
        _quorum(**{"x-delivery-limit": UNREACHED_DELIVERY_LIMIT}),
        [(dead_letter_exchange(exchange), dlq_name(queue))],
    )
    work = QueueSpec(
        queue,
        _quorum(
            **{"x-delivery-limit": delivery_limit},
            **_dead_lettering(dead_letter_exchange(exchange), dlq_name(queue)),
        ),
        [(exchange, key) for key in routing_keys],
    )
    # Retries wait in one queue per delay (a per-queue TTL, so no message waits behind a longer one),
    # then dead-letter back into the work queue through the default exchange.
    retries = [
        QueueSpec(
            retry_queue_name(queue, delay),
            _quorum(
                **{"x-message-ttl": delay, "x-delivery-limit": UNREACHED_DELIVERY_LIMIT},
                **_dead_lettering("", queue),
            ),
        )
        for delay in retry_delays_ms
    ]
    return work, dead, retries


async def declare_consumer_queue(
    channel: AbstractChannel,
    *,
    exchange: str,
    queue: str,
    routing_keys: list[str],
    retry_delays_ms: list[int],
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> AbstractRobustQueue:
    """A durable work queue bound to its event types, its dead-letter queue and its delayed retries.

    A queue left from an older release as a classic queue makes this fail with PRECONDITION_FAILED
    (RabbitMQ does not change a queue's type): `kkmp topology migrate` converts them.
    """
    work_spec, dead_spec, retry_specs = consumer_topology(
        exchange=exchange,
        queue=queue,
        routing_keys=routing_keys,
        retry_delays_ms=retry_delays_ms,
        delivery_limit=delivery_limit,
    )
    declared = {}
    for spec in (dead_spec, work_spec, *retry_specs):
        declared[spec.name] = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        for source, key in spec.bindings:
            await declared[spec.name].bind(await channel.get_exchange(source, ensure=False), routing_key=key)
    return declared[queue]  # type: ignore[return-value]
