"""The outbox relay: publishes committed events with publisher confirms, then marks them sent.

A row is marked sent only after the broker confirmed it, so a crash between publish and mark means the
event is published again: consumers' inboxes absorb that. Unroutable messages (`mandatory`) count as
failures and stay in the outbox. Many publishes are in flight at once; rows are claimed with
`FOR UPDATE SKIP LOCKED` so replicas of a service never publish the same row concurrently. Rows of
the bulk streams (`EventData.bulk`: one per movement) go after the others, so an alert is published
in the next batch even when thousands of movements wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from sqlalchemy import delete, func, select, update

from kkmp_shared import clock
from kkmp_shared.db import Database
from kkmp_shared.messaging.broker import Broker, close_quietly, is_nack
from kkmp_shared.messaging.tables import MessagingTables
from kkmp_shared.telemetry import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED, tracing_exported

log = logging.getLogger("kkmp.relay")
tracer = trace.get_tracer("kkmp.relay")

FaultHook = Callable[[str], Awaitable[None]]

# How long a batch's publishes may wait for the broker's confirms; a row still unconfirmed then
# stays in the outbox and is published again.
PUBLISH_TIMEOUT_S = 10.0


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        tables: MessagingTables,
        broker: Broker,
        *,
        service: str,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        retention: timedelta = timedelta(days=7),
        before_drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.table = tables.outbox
        self.broker = broker
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.retention = retention
        self._wake = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._last_stats = 0.0
        self._last_cleanup = 0.0
        # Tests inject crashes at named points ("after_publish") to prove exactly-once in effect.
        self.fault_hook: FaultHook | None = None
        # Awaited before each batch: a service lets latency-critical work of its own go first (the
        # notifications service, its webhook sends, before the bookkeeping events of the inbox).
        self.before_drain = before_drain
        self.published_total = 0
        broker.on_connect(self._open_channel)
        db.outbox_wake = self.wake

    def wake(self) -> None:
        self._wake.set()

    async def _open_channel(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.get_exchange(self.broker.exchange_name, ensure=False)
        self._channel = channel

    async def run(self) -> None:
        while True:
            try:
                await self.broker.connected.wait()
                if self.before_drain is not None:
                    await self.before_drain()
                published = await self.drain_once()
                await self._stats()
                if published >= self.batch_size:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
                except TimeoutError:
                    pass
                self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay cycle failed; retrying")
                await asyncio.sleep(1.0)

    async def drain_once(self) -> int:
        """Publish one batch of pending rows; returns how many were confirmed.

        On PostgreSQL the rows stay locked (FOR UPDATE SKIP LOCKED) while they are published, so a
        second replica skips them. SQLite is the single-process embedded mode: holding its write lock
        through a slow publish would stall every API write, so there the rows are read, published,
        and marked in two short transactions.
        """
        exchange = self._exchange
        if exchange is None or self._channel is None or self._channel.is_closed:
            return 0
        if self.db.is_sqlite:
            async with self.db.session() as session:
                rows = list((await session.execute(self._pending())).all())
                await session.commit()
            if not rows:
                return 0
            results = await self._publish_all(exchange, rows)
            async with self.db.transaction() as session:
                ok = await self._mark(session, rows, results)
        else:
            async with self.db.session() as session, session.begin():
                rows = list((await session.execute(self._pending().with_for_update(skip_locked=True))).all())
                if not rows:
                    return 0
                results = await self._publish_all(exchange, rows)
                ok = await self._mark(session, rows, results)
        OUTBOX_PUBLISHED.labels(self.service).inc(ok)
        self.published_total += ok
        if ok < len(rows):
            failures = [r for r in results if isinstance(r, BaseException)]
            log.warning("outbox: %d of %d events not confirmed (%r)", len(failures), len(rows), failures[0])
            if any(
                not isinstance(exc, (aio_pika.exceptions.DeliveryError, aio_pika.exceptions.PublishError))
                for exc in failures
            ):
                self.broker.connection_lost("publish failed on a broken channel")
            elif any(is_nack(exc) for exc in failures) and self.broker.connection is not None:
                # RabbitMQ 3.10: a channel that got nacks while a quorum queue lost its leader (a
                # cluster node died) keeps nacking that queue after the new leader is elected (seen
                # here for over a minute); a new channel publishes at once.
                old = self._channel
                await self._open_channel(self.broker.connection)
                if old is not None:
                    await close_quietly(old)
            await asyncio.sleep(0.5)
        return ok

    def _pending(self) -> Any:
        t = self.table
        return (
            select(t.c.seq, t.c.event_id, t.c.event_type, t.c.body, t.c.headers, t.c.created_at)
            .where(t.c.published_at.is_(None))
            # Other events before the bulk streams' (`EventData.bulk`), each lane in the order written.
            .order_by(t.c.bulk, t.c.seq)
            .limit(self.batch_size)
        )

    async def _publish_all(self, exchange: AbstractExchange, rows: list[Any]) -> list[Any]:
        """Publish every row at once; a row's result is None once the broker confirmed it, or the
        exception. One deadline bounds the batch (a confirm that never comes fails its row), rather
        than one timer per message, which cost the relay real CPU."""
        tasks = [asyncio.ensure_future(self._publish(exchange, row)) for row in rows]
        try:
            _done, late = await asyncio.wait(tasks, timeout=PUBLISH_TIMEOUT_S)
        finally:
            for task in tasks:
                task.cancel()  # a no-op for those that are done
        await asyncio.gather(*late, return_exceptions=True)
        results: list[Any] = []
        for task in tasks:
            if task in late or task.cancelled():
                results.append(TimeoutError(f"no broker confirm within {PUBLISH_TIMEOUT_S:g} s"))
            else:
                results.append(task.exception())
        if self.fault_hook is not None:
            await self.fault_hook("after_publish")
        return results

    async def _mark(self, session: Any, rows: list[Any], results: list[Any]) -> int:
        ok = [
            row.event_id for row, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)
        ]
        now = clock.now()
        if ok:
            await session.execute(
                update(self.table)
                .where(self.table.c.event_id.in_(ok))
                .values(published_at=now, attempts=self.table.c.attempts + 1)
            )
        for row, res in zip(rows, results, strict=True):
            if isinstance(res, BaseException):
                await session.execute(
                    update(self.table)
                    .where(self.table.c.event_id == row.event_id)
                    .values(attempts=self.table.c.attempts + 1, last_error=repr(res)[:500])
                )
        return len(ok)

    async def _publish(self, exchange: AbstractExchange, row: Any) -> None:
        headers: dict[str, Any] = dict(row.headers or {})
        if not tracing_exported():
            # No span would be kept: the trace context stored with the row goes on as it is.
            await exchange.publish(self._message(row, headers), routing_key=row.event_type, mandatory=True)
            return
        parent = propagate.extract(headers)
        token = otel_context.attach(parent)
        try:
            with tracer.start_as_current_span(
                f"{row.event_type} publish",
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.message.id": row.event_id,
                    "messaging.destination.name": self.broker.exchange_name,
                },
            ):
                propagate.inject(headers)
                message = self._message(row, headers)
                await exchange.publish(message, routing_key=row.event_type, mandatory=True)
        finally:
            otel_context.detach(token)

    def _message(self, row: Any, headers: dict[str, Any]) -> aio_pika.Message:
        return aio_pika.Message(
            body=row.body.encode(),
            content_type="application/cloudevents+json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=row.event_id,
            type=row.event_type,
            app_id=self.service,
            timestamp=row.created_at,
            headers=headers,
        )

    async def _stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats < 2.0:
            return
        self._last_stats = now
        async with self.db.session() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(self.table.c.created_at)).where(
                        self.table.c.published_at.is_(None)
                    )
                )
            ).one()
            OUTBOX_BACKLOG.labels(self.service).set(count)
            if oldest is not None and oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            OUTBOX_OLDEST_AGE.labels(self.service).set(
                (clock.now() - oldest).total_seconds() if oldest else 0
            )
            await session.commit()
        if now - self._last_cleanup > 3600:
            self._last_cleanup = now
            async with self.db.transaction() as session:
                await session.execute(
                    delete(self.table).where(self.table.c.published_at < clock.now() - self.retention)
                )

    async def backlog(self) -> int:
        async with self.db.session() as session:
            return int(
                (
                    await session.execute(select(func.count()).where(self.table.c.published_at.is_(None)))
                ).scalar_one()
            )
