"""Run a service in-process for integration tests, and watch or feed the event bus.

`running_app` starts an app's lifespan (migrations, relay, consumers) and yields an httpx client that
calls it in-process. `EventProbe` binds a temporary queue to every routing key of the exchange on the
real broker to see what services publish, and publishes CloudEvents into services the way another
service's relay would (persistent, confirmed).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import httpx
import orjson
from aio_pika.abc import AbstractIncomingMessage
from fastapi import FastAPI
from kkmp_shared import clock
from kkmp_shared.events.contracts import EventData
from kkmp_shared.events.envelope import CloudEvent, new_event
from kkmp_shared.settings import ServiceSettings, normalise_database_url

from kkmp_testkit.tokens import TokenFactory


@asynccontextmanager
async def running_app(app: FastAPI, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as client:
            yield client


def app_on_database(
    create_app: Callable[..., FastAPI], settings: ServiceSettings, database_url: str, tokens: TokenFactory
) -> FastAPI:
    """``create_app(settings)`` on ``database_url``, verifying tokens of ``tokens`` (the tests of a
    session run apps on several databases: the URL goes into a copy of the settings)."""
    on_database = settings.model_copy(update={"database_url": normalise_database_url(database_url)})
    return create_app(on_database, key_source=lambda _s: tokens.key_source())


async def wait_ready(client: httpx.AsyncClient, timeout: float = 20.0) -> None:
    """Wait until /health/ready says ready (broker connected and every consumer attached)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        response = await client.get("/health/ready")
        if response.status_code == 200:
            return
        last = response.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"service not ready within {timeout}s: {last}")


class EventProbe:
    """Sees every event on the exchange (a temporary exclusive queue bound to '#')."""

    def __init__(self, amqp_url: str, exchange: str = "kkmp.events", binding: str = "#") -> None:
        self.amqp_url = amqp_url
        self.exchange_name = exchange
        self.binding = binding
        self.events: list[CloudEvent] = []
        self.deliveries: list[AbstractIncomingMessage] = []
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> EventProbe:
        self._connection = await aio_pika.connect(self.amqp_url)
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._channel.declare_exchange(
            f"{self.exchange_name}.dlx", aio_pika.ExchangeType.DIRECT, durable=True
        )
        queue = await self._channel.declare_queue(
            f"probe.{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True
        )
        await queue.bind(self._exchange, routing_key=self.binding)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.deliveries.append(message)
        self.events.append(CloudEvent.model_validate_json(message.body))
        self._arrived.set()

    def of_type(self, event_type: str) -> list[CloudEvent]:
        return [e for e in self.events if e.type == event_type]

    async def wait_for(
        self,
        event_type: str,
        where: Callable[[CloudEvent], bool] = lambda _e: True,
        *,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[CloudEvent]:
        """Wait until at least `count` events of the type match; returns the matches."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matches = [e for e in self.of_type(event_type) if where(e)]
            if len(matches) >= count:
                return matches
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = sorted({e.type for e in self.events})
                raise AssertionError(
                    f"expected {count} {event_type} event(s), saw {len(matches)} within {timeout}s; "
                    f"types seen: {seen}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass

    async def publish(
        self,
        data: EventData,
        *,
        source: str = "/test",
        event_id: str | None = None,
        subject: str | None = None,
    ) -> CloudEvent:
        """Publish an event as a service's relay would; the same `event_id` again simulates a redelivery."""
        event = new_event(data, source=source, subject=subject)
        if event_id is not None:
            event = event.model_copy(update={"id": event_id})
        await self.publish_raw(orjson.dumps(event.model_dump(mode="json", exclude_none=True)), event.type)
        return event

    async def publish_raw(self, body: bytes, routing_key: str, headers: dict[str, Any] | None = None) -> None:
        assert self._exchange is not None, "use `async with EventProbe(...)`"
        await self._exchange.publish(
            aio_pika.Message(
                body=body,
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=headers or {},
                timestamp=clock.now(),
            ),
            routing_key=routing_key,
            mandatory=False,
        )
