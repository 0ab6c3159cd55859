"""The inbox consumer runner: at-most-once effect for at-least-once delivery.

Each service lists its subscriptions in one place (a `ConsumerGroup`). For every message the runner:
parses the CloudEvent into the contract's pydantic model (undecodable → dead-letter at once), opens one
transaction, inserts the inbox row (consumer, event id) (already there → a duplicate: no effect), runs
the handler, commits, and only then acks. A handler failure is never acked as success: the message is
republished (with confirms) to a delayed retry queue, and after the last retry to the dead-letter
queue; only then is the original acked. A message that never gets that far (the process or channel
dies on it, again and again) is dead-lettered by the broker itself after the quorum queue's delivery
limit (`x-death` reason `delivery_limit`).

Messages of one queue are handled in order by one worker, in batches of what has already arrived
(one transaction per batch; on a failure the batch is redone message by message so only the bad
message is retried). That keeps per-cooperative order and gives the throughput of few commits. The
inbox rows of a batch are claimed in one statement; a queue may also name a batch handler that gets
every new event of a batch at once, in arrival order, to apply them set-based (the per-type handlers
stay the reference: the one-by-one path after a failed batch uses them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from opentelemetry import propagate, trace
from pydantic import ValidationError
from sqlalchemy import DateTime, String, Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kkmp_shared import clock
from kkmp_shared.db import Database, array_rows, upsert_insert
from kkmp_shared.events.contracts import EventData
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.broker import (
    DEFAULT_DELIVERY_LIMIT,
    Broker,
    close_quietly,
    copy_for_republish,
    declare_consumer_queue,
    dlq_name,
    is_nack,
    retry_queue_name,
)
from kkmp_shared.messaging.tables import MessagingTables
from kkmp_shared.telemetry import CONSUME_SECONDS, CONSUMED

log = logging.getLogger("kkmp.consumer")
tracer = trace.get_tracer("kkmp.consumer")

Handler = Callable[[AsyncSession, CloudEvent, Any], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[tuple[CloudEvent, Any]]], Awaitable[None]]
FaultHook = Callable[[str, CloudEvent], Awaitable[None]]


class PoisonMessage(Exception):
    """A message that can never be processed: it goes to the dead-letter queue at once."""


@dataclass
class Subscription:
    queue: str
    handlers: dict[str, tuple[type[EventData], Handler]] = field(default_factory=dict)
    # Optional: applies a batch's new events together; must have the same effect as the handlers
    # applied one by one in the same order.
    batch_handler: BatchHandler | None = None


class ConsumerGroup:
    """The explicit list of what one service consumes, queue by queue."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.subscriptions: dict[str, Subscription] = {}

    def on(self, purpose: str, model: type[EventData]) -> Callable[[Handler], Handler]:
        queue = f"{self.service}.{purpose}"

        def register(handler: Handler) -> Handler:
            sub = self.subscriptions.setdefault(queue, Subscription(queue))
            sub.handlers[model.event_type] = (model, handler)
            return handler

        return register

    def add(self, purpose: str, model: type[EventData], handler: Handler) -> None:
        self.on(purpose, model)(handler)

    def in_batches(self, purpose: str, handler: BatchHandler) -> None:
        """Give the queue's new events of a batch to `handler` at once (its per-type handlers must be
        registered too: they handle a batch redone one by one)."""
        queue = f"{self.service}.{purpose}"
        self.subscriptions.setdefault(queue, Subscription(queue)).batch_handler = handler

    @property
    def consumed_models(self) -> list[type[EventData]]:
        return [m for s in self.subscriptions.values() for m, _ in s.handlers.values()]

    def queues(self) -> dict[str, list[str]]:
        return {q: list(s.handlers) for q, s in self.subscriptions.items()}


@dataclass
class _Active:
    channel: AbstractChannel
    tag: str
    work: asyncio.Queue[AbstractIncomingMessage]
    worker: asyncio.Task[None]


def claim_from_arrays(inbox: Table) -> Any:
    """PostgreSQL's inbox claim of a batch: its event ids and types as two arrays (`array_rows`),
    one statement text whatever the batch's size."""
    rows = array_rows(event_id=String, event_type=String)
    chosen = select(
        bindparam("consumer", type_=String),
        rows.c.event_id,
        rows.c.event_type,
        bindparam("processed_at", type_=DateTime(timezone=True)),
    )
    return (
        pg_insert(inbox)
        .from_select(["consumer", "event_id", "event_type", "processed_at"], chosen)
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )


class ConsumerRunner:
    def __init__(
        self,
        group: ConsumerGroup,
        db: Database,
        tables: MessagingTables,
        broker: Broker,
        *,
        prefetch: int = 64,
        retry_delays_ms: list[int] | None = None,
        batch_size: int = 100,
        linger_s: float = 0.0,
        linger_max_s: float = 0.0,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    ) -> None:
        self.group = group
        self.db = db
        self.inbox = tables.inbox
        self.broker = broker
        self.prefetch = prefetch
        self.retry_delays_ms = list(retry_delays_ms if retry_delays_ms is not None else [1000, 5000, 30000])
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.linger_max_s = linger_max_s
        self.delivery_limit = delivery_limit
        self._claim_arrays = None if db.is_sqlite else claim_from_arrays(self.inbox)
        self._active: dict[str, _Active] = {}
        # Queues whose channel holds a message left unacked on purpose (its retry could not be
        # published): a cumulative ack would settle it too, so those channels ack one by one.
        self._left_unacked: set[str] = set()
        self._publish_channel: AbstractChannel | None = None
        # Tests inject crashes at named points ("before_commit", "after_commit") to prove the guarantees.
        self.fault_hook: FaultHook | None = None
        self.stats = {"processed": 0, "duplicates": 0, "retried": 0, "dead_lettered": 0}
        broker.on_connect(self._start)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Every subscribed queue has a live consumer on an open channel."""
        if not self.group.subscriptions:
            return True
        return all(
            (a := self._active.get(q)) is not None and not a.channel.is_closed and not a.worker.done()
            for q in self.group.subscriptions
        )

    def missing_consumers(self) -> list[str]:
        return [
            q
            for q in self.group.subscriptions
            if (a := self._active.get(q)) is None or a.channel.is_closed or a.worker.done()
        ]

    async def _start(self, connection: AbstractConnection) -> None:
        for active in self._active.values():
            active.worker.cancel()
        self._active.clear()
        publish_channel = await connection.channel(publisher_confirms=True)
        self._publish_channel = publish_channel
        self._left_unacked.clear()
        for sub in self.group.subscriptions.values():
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await declare_consumer_queue(
                channel,
                exchange=self.broker.exchange_name,
                queue=sub.queue,
                routing_keys=list(sub.handlers),
                retry_delays_ms=self.retry_delays_ms,
                delivery_limit=self.delivery_limit,
            )
            work: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            worker = asyncio.create_task(self._work(sub, work, channel), name=f"consume:{sub.queue}")

            def _closed(_sender: Any, exc: BaseException | None = None, q: str = sub.queue) -> None:
                self.broker.connection_lost(f"consumer channel of {q} closed: {exc!r}")

            channel.close_callbacks.add(_closed)
            tag = await queue.consume(work.put, no_ack=False)
            self._active[sub.queue] = _Active(channel=channel, tag=tag, work=work, worker=worker)
            log.info("consuming %s", sub.queue)

    async def stop(self) -> None:
        for active in self._active.values():
            active.worker.cancel()
        self._active.clear()

    # --- processing --------------------------------------------------------------------------

    async def _work(
        self, sub: Subscription, work: asyncio.Queue[AbstractIncomingMessage], channel: AbstractChannel
    ) -> None:
        while True:
            batch = [await work.get()]
            await self._linger(work)
            while len(batch) < self.batch_size and not work.empty():
                batch.append(work.get_nowait())
            try:
                await self._process_batch(sub, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Unacked messages return to the queue when the channel closes: nothing is lost.
                log.exception(
                    "consumer %s: batch failed outside a handler; rebuilding the connection", sub.queue
                )
                self.broker.connection_lost(f"consumer {sub.queue} failed")
                return

    async def _linger(self, work: asyncio.Queue[AbstractIncomingMessage]) -> None:
        """Let the stream fill the batch a little (see ServiceSettings.consumer_linger_ms): one step
        of `linger_s`, and more steps while a burst is still arriving (every step brought messages),
        until the batch is full or `linger_max_s` has passed since the first message."""
        if self.linger_s <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.linger_s, self.linger_max_s)
        waiting = work.qsize()
        while waiting < self.batch_size - 1 and loop.time() < deadline:
            await asyncio.sleep(min(self.linger_s, max(0.0, deadline - loop.time())))
            arrived, waiting = work.qsize() - waiting, work.qsize()
            if not arrived:
                return  # the stream paused: apply what is here

    async def _process_batch(self, sub: Subscription, batch: list[AbstractIncomingMessage]) -> None:
        parsed: list[tuple[AbstractIncomingMessage, CloudEvent, EventData, Handler]] = []
        for message in batch:
            try:
                event, data, handler = self._parse(sub, message)
            except PoisonMessage as exc:
                await self._dead_letter(sub, message, f"poison: {exc}")
                continue
            parsed.append((message, event, data, handler))
        if not parsed:
            return
        if len(parsed) > 1:
            started = time.perf_counter()
            try:
                async with self.db.session() as session, session.begin():
                    outcomes = await self._apply_batch(session, sub, parsed)
                    if self.fault_hook is not None:
                        await self.fault_hook("before_commit", parsed[-1][1])
            except Exception as exc:
                log.info(
                    "consumer %s: batch of %d failed (%r); retrying one by one", sub.queue, len(parsed), exc
                )
            else:
                elapsed = (time.perf_counter() - started) / len(parsed)
                if sub.queue in self._left_unacked:
                    for (message, event, _, _), outcome in zip(parsed, outcomes, strict=True):
                        await self._after_commit(sub, message, event, outcome, elapsed)
                    return
                # One cumulative ack for the batch (each ack is a frame the worker would wait for):
                # every earlier delivery of this channel is settled already (acked, retried or
                # dead-lettered), and the later ones are not in this batch.
                if self.fault_hook is not None:
                    for _, event, _, _ in parsed:
                        await self.fault_hook("after_commit", event)
                await parsed[-1][0].ack(multiple=True)
                for outcome in outcomes:
                    self._count(sub, outcome, elapsed)
                return
        for message, event, data, handler in parsed:
            await self._process_one(sub, message, event, data, handler)

    async def _process_one(
        self,
        sub: Subscription,
        message: AbstractIncomingMessage,
        event: CloudEvent,
        data: EventData,
        handler: Handler,
    ) -> None:
        started = time.perf_counter()
        try:
            async with self.db.session() as session, session.begin():
                outcome = await self._apply(session, sub, event, data, handler)
                if self.fault_hook is not None:
                    await self.fault_hook("before_commit", event)
        except Exception as exc:
            CONSUMED.labels(sub.queue, "failed").inc()
            log.warning(
                "consumer %s failed on %s %s: %r",
                sub.queue,
                event.type,
                event.id,
                exc,
                extra={"event_id": event.id, "cooperative_id": event.subject},
            )
            await self._retry_or_dead_letter(sub, message, exc)
            return
        await self._after_commit(sub, message, event, outcome, time.perf_counter() - started)

    async def _after_commit(
        self,
        sub: Subscription,
        message: AbstractIncomingMessage,
        event: CloudEvent,
        outcome: str,
        elapsed: float,
    ) -> None:
        if self.fault_hook is not None:
            await self.fault_hook("after_commit", event)
        await message.ack()
        self._count(sub, outcome, elapsed)

    def _count(self, sub: Subscription, outcome: str, elapsed: float) -> None:
        self.stats[outcome] += 1
        CONSUMED.labels(sub.queue, outcome).inc()
        CONSUME_SECONDS.labels(sub.queue).observe(elapsed)

    async def _apply(
        self, session: AsyncSession, sub: Subscription, event: CloudEvent, data: EventData, handler: Handler
    ) -> str:
        if not await self._claim(session, sub, [event]):
            return "duplicates"
        with self._span(sub, [event]):
            await handler(session, event, data)
        return "processed"

    async def _apply_batch(
        self,
        session: AsyncSession,
        sub: Subscription,
        parsed: list[tuple[AbstractIncomingMessage, CloudEvent, EventData, Handler]],
    ) -> list[str]:
        claimed = await self._claim(session, sub, [event for _, event, _, _ in parsed])
        outcomes: list[str] = []
        fresh: list[tuple[CloudEvent, EventData, Handler]] = []
        for _, event, data, handler in parsed:
            # The same event twice in one batch (a publisher's redelivery): only the first applies.
            if event.id in claimed:
                claimed.discard(event.id)
                fresh.append((event, data, handler))
                outcomes.append("processed")
            else:
                outcomes.append("duplicates")
        if sub.batch_handler is not None and len(fresh) > 1:
            with self._span(sub, [event for event, _, _ in fresh]):
                await sub.batch_handler(session, [(event, data) for event, data, _ in fresh])
        else:
            for event, data, handler in fresh:
                with self._span(sub, [event]):
                    await handler(session, event, data)
        return outcomes

    async def _claim(self, session: AsyncSession, sub: Subscription, events: list[CloudEvent]) -> set[str]:
        """Insert the inbox rows in one statement; the ids returned are the events not seen before."""
        now = clock.now()
        rows = {
            event.id: {
                "consumer": sub.queue,
                "event_id": event.id,
                "event_type": event.type,
                "processed_at": now,
            }
            for event in events
        }
        if self._claim_arrays is not None:
            result = await session.execute(
                self._claim_arrays,
                {
                    "consumer": sub.queue,
                    "processed_at": now,
                    "event_id": list(rows),
                    "event_type": [row["event_type"] for row in rows.values()],
                },
            )
            return set(result.scalars())
        insert = upsert_insert(self.db)
        result = await session.execute(
            insert(self.inbox).on_conflict_do_nothing().returning(self.inbox.c.event_id), list(rows.values())
        )
        return set(result.scalars())

    def _span(self, sub: Subscription, events: list[CloudEvent]) -> Any:
        """One consumer span: a child of the event's trace, or for a batch linked to every event's."""
        contexts = [
            propagate.extract({"traceparent": event.traceparent} if event.traceparent else {})
            for event in events
        ]
        attributes: dict[str, Any] = {
            "messaging.system": "rabbitmq",
            "messaging.destination.name": sub.queue,
        }
        if len(events) == 1:
            attributes["messaging.message.id"] = events[0].id
            return tracer.start_as_current_span(
                f"{events[0].type} process",
                context=contexts[0],
                kind=trace.SpanKind.CONSUMER,
                attributes=attributes,
            )
        attributes["messaging.batch.message_count"] = len(events)
        links = [
            trace.Link(span_context)
            for ctx in contexts
            if (span_context := trace.get_current_span(ctx).get_span_context()).is_valid
        ]
        return tracer.start_as_current_span(
            f"{sub.queue} process", kind=trace.SpanKind.CONSUMER, attributes=attributes, links=links
        )

    def _parse(
        self, sub: Subscription, message: AbstractIncomingMessage
    ) -> tuple[CloudEvent, EventData, Handler]:
        try:
            event = CloudEvent.model_validate_json(message.body)
        except ValidationError as exc:
            raise PoisonMessage(f"not a CloudEvent: {exc.errors()[:3]}") from exc
        entry = sub.handlers.get(event.type)
        if entry is None:
            raise PoisonMessage(f"no handler for {event.type} on {sub.queue}")
        model, handler = entry
        try:
            data = model.model_validate(event.data)
        except ValidationError as exc:
            raise PoisonMessage(f"data does not match {event.type}: {exc.errors()[:3]}") from exc
        return event, data, handler

    # --- failure paths -----------------------------------------------------------------------

    async def _retry_or_dead_letter(
        self, sub: Subscription, message: AbstractIncomingMessage, exc: BaseException
    ) -> None:
        attempt = _attempt_of(message)
        if attempt > len(self.retry_delays_ms):
            await self._dead_letter(sub, message, f"failed after {attempt} attempts: {exc!r}")
            return
        delay = self.retry_delays_ms[attempt - 1]
        headers = dict(message.headers or {})
        headers["x-kkmp-attempt"] = attempt + 1
        headers["x-kkmp-last-error"] = repr(exc)[:500]
        if await self._republish(message, retry_queue_name(sub.queue, delay), headers):
            self.stats["retried"] += 1
            await message.ack()
        else:
            # Left unacked: the broker redelivers it when this channel closes.
            self._left_unacked.add(sub.queue)

    async def _dead_letter(self, sub: Subscription, message: AbstractIncomingMessage, reason: str) -> None:
        headers = dict(message.headers or {})
        headers["x-kkmp-error"] = reason[:1000]
        headers["x-kkmp-queue"] = sub.queue
        headers["x-kkmp-dead-lettered-at"] = clock.now().isoformat()
        log.error("dead-lettering a message from %s: %s", sub.queue, reason)
        if await self._republish(message, dlq_name(sub.queue), headers):
            await message.ack()
        else:
            # The queue's own dead-letter exchange routes a rejected message to the same DLQ.
            await message.reject(requeue=False)
        self.stats["dead_lettered"] += 1
        CONSUMED.labels(sub.queue, "dead_lettered").inc()

    async def _republish(self, message: AbstractIncomingMessage, queue: str, headers: dict[str, Any]) -> bool:
        channel = self._publish_channel
        if channel is None or channel.is_closed:
            return False
        try:
            await channel.default_exchange.publish(
                copy_for_republish(message, headers),
                routing_key=queue,
                mandatory=True,
                timeout=10,
            )
        except Exception as exc:
            log.warning("could not republish to %s: %r", queue, exc)
            connection = self.broker.connection
            if is_nack(exc) and connection is not None and not connection.is_closed:
                # A nacking channel may go on nacking on RabbitMQ 3.10 (see the relay): a new one.
                self._publish_channel = await connection.channel(publisher_confirms=True)
                await close_quietly(channel)
            return False
        return True


def _attempt_of(message: AbstractIncomingMessage) -> int:
    """Which attempt this delivery is (1 for the first). The header comes from outside (any publisher
    can set it): a value that is not a positive number counts as a first attempt. Raising here would
    fail the batch outside a handler, rebuild the connection and redeliver the message for ever."""
    try:
        return max(1, int(str((message.headers or {}).get("x-kkmp-attempt", 1) or 1)))
    except ValueError:
        return 1
