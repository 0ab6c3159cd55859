"""Convert an existing deployment's classic queues to the quorum topology, losing nothing.

RabbitMQ does not change a queue's type: declaring our queues as quorum queues where classic ones of
the same name exist fails with PRECONDITION_FAILED. For each such queue `q` this module

1. parks it: declares `q.migrating` (a quorum holding queue), binds it like `q`, unbinds `q` (bind
   first, so a message published meanwhile goes to both rather than to neither: the consumers' inbox
   drops the copy), moves every message of `q` into it (publisher confirms; a message is acked in `q`
   only once `.migrating` confirmed its copy), and deletes `q` once empty;
2. restores it: declares `q` with the new arguments, binds it, unbinds `q.migrating`, moves the
   messages back and deletes `q.migrating`.

Each step checks the broker's state first, so a run that crashed midway is finished by running again
(a message is in `q`, in `q.migrating`, or, for an instant, in both: never in neither).

A subscription's retry queues dead-letter into its work queue through the default exchange, which
would drop a message expiring while the work queue is parked: so when the work queue is parked, its
retry queues are parked first and restored last (their holding queues have no TTL).

What exists is read with `rabbitmqctl list_queues / list_bindings` (the management plugin may be off);
everything that moves messages goes over AMQP. Run it with the consumers stopped (publishers may run).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue

from kkmp_shared.messaging.broker import (
    UNREACHED_DELIVERY_LIMIT,
    QueueSpec,
    consumer_topology,
    dead_letter_exchange,
)

log = logging.getLogger("kkmp.topology")

HOLDING_SUFFIX = ".migrating"
_RETRY = re.compile(r"^(?P<queue>.+)\.retry\.(?P<delay>\d+)$")
_BATCH = 256


@dataclass
class BrokerState:
    """What exists in one vhost: queue name → type, and queue name → its (exchange, key) bindings."""

    queues: dict[str, str]
    bindings: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def from_rabbitmqctl(cls, vhost: str, ctl: Callable[..., str]) -> BrokerState:
        """Read the vhost with ``ctl(*args)`` (a rabbitmqctl runner returning stdout)."""
        queues = json.loads(ctl("list_queues", "-p", vhost, "-q", "--formatter", "json", "name", "type"))
        found = cls({q["name"]: q["type"] for q in queues})
        listed = ctl(
            "list_bindings",
            "-p",
            vhost,
            "-q",
            "--formatter",
            "json",
            "source_name",
            "destination_name",
            "destination_kind",
            "routing_key",
        )
        for b in json.loads(listed):
            if b["destination_kind"] == "queue" and b["source_name"]:  # the default exchange's are implicit
                found.bindings.setdefault(b["destination_name"], set()).add(
                    (b["source_name"], b["routing_key"])
                )
        return found


@dataclass
class Step:
    """One subscription's queues: the specs to end with and what exists now."""

    work: QueueSpec
    dead: QueueSpec
    retries: list[QueueSpec]


def plan(state: BrokerState, *, exchange: str, delivery_limit: int) -> list[Step]:
    """Every consumer subscription found in the vhost (a queue, or its holding queue, bound to the
    events exchange), with the specs its queues must end with."""
    work_queues: dict[str, set[str]] = {}
    for name, bindings in state.bindings.items():
        base = name.removesuffix(HOLDING_SUFFIX)
        if _RETRY.match(base) or base.endswith(".dlq"):
            continue
        keys = {key for source, key in bindings if source == exchange}
        if keys:
            work_queues.setdefault(base, set()).update(keys)
    steps = []
    for queue, keys in sorted(work_queues.items()):
        delays = sorted(
            {
                int(m["delay"])
                for name in state.queues
                if (m := _RETRY.match(name.removesuffix(HOLDING_SUFFIX))) and m["queue"] == queue
            }
        )
        work, dead, retries = consumer_topology(
            exchange=exchange,
            queue=queue,
            routing_keys=sorted(keys),
            retry_delays_ms=delays,
            delivery_limit=delivery_limit,
        )
        steps.append(Step(work, dead, retries))
    return steps


@dataclass
class Report:
    moved: dict[str, int] = field(default_factory=dict)  # queue → messages carried through migration
    migrated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


class Migrator:
    def __init__(self, connection: AbstractConnection, state: BrokerState) -> None:
        self.connection = connection
        self.state = state
        self.report = Report()

    def _exists(self, name: str) -> bool:
        return name in self.state.queues

    def _is_classic(self, name: str) -> bool:
        return self.state.queues.get(name, "quorum") != "quorum"

    async def run(self, steps: list[Step]) -> Report:
        for step in steps:
            await self._step(step)
        return self.report

    async def _step(self, step: Step) -> None:
        primaries = [step.work, step.dead]
        everything = [*primaries, *step.retries]
        work_moves = self._is_classic(step.work.name) or self._exists(step.work.name + HOLDING_SUFFIX)
        if not any(self._is_classic(s.name) or self._exists(s.name + HOLDING_SUFFIX) for s in everything):
            self.report.unchanged.extend(s.name for s in everything if self._exists(s.name))
            return
        # Park: retry queues first when the work queue is parked (they dead-letter into it).
        for spec in step.retries:
            if self._is_classic(spec.name) or (work_moves and self._exists(spec.name)):
                await self.park(spec)
        for spec in primaries:
            if self._is_classic(spec.name):
                await self.park(spec)
        for spec in [*primaries, *step.retries]:
            if self._exists(spec.name + HOLDING_SUFFIX):
                await self.restore(spec)
                self.report.migrated.append(spec.name)

    async def park(self, spec: QueueSpec) -> None:
        holding = spec.name + HOLDING_SUFFIX
        bindings = sorted(self.state.bindings.get(spec.name, set()) | set(spec.bindings))
        async with self._channel() as channel:
            parked = await self._declare_holding(channel, holding)
            old = await channel.declare_queue(spec.name, passive=True)
            for source, key in bindings:
                await parked.bind(source, routing_key=key)
            for source, key in bindings:
                await old.unbind(source, routing_key=key)
        self.state.bindings[holding] = set(bindings)
        self.state.bindings.pop(spec.name, None)
        await self._move_and_delete(spec.name, holding)
        log.info("parked %s in %s", spec.name, holding)

    async def restore(self, spec: QueueSpec) -> None:
        holding = spec.name + HOLDING_SUFFIX
        async with self._channel() as channel:
            final = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
            parked = await channel.declare_queue(holding, passive=True)
            for source, key in spec.bindings:
                await final.bind(source, routing_key=key)
            for source, key in sorted(self.state.bindings.get(holding, set())):
                await parked.unbind(source, routing_key=key)
        self.state.queues[spec.name] = "quorum"
        self.state.bindings[spec.name] = set(spec.bindings)
        await self._move_and_delete(holding, spec.name)
        log.info("restored %s as a quorum queue", spec.name)

    async def _declare_holding(self, channel: AbstractChannel, holding: str) -> AbstractQueue:
        # Read only by this tool, which returns what it cannot move: a limit that is never reached.
        queue = await channel.declare_queue(
            holding,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": UNREACHED_DELIVERY_LIMIT},
        )
        self.state.queues[holding] = "quorum"
        return queue

    async def _move_and_delete(self, source: str, target: str) -> None:
        """Move every message of `source` into `target`, then delete `source` once it is empty (a
        message that arrived meanwhile, through the default exchange, makes it go round again)."""
        for _ in range(20):
            moved = await self._move(source, target)
            base = target.removesuffix(HOLDING_SUFFIX)
            if not target.endswith(HOLDING_SUFFIX):
                self.report.moved[base] = self.report.moved.get(base, 0) + moved
            try:
                async with self._channel() as channel:
                    queue = await channel.declare_queue(source, passive=True)
                    if self.state.queues.get(source) != "quorum":
                        await queue.delete(if_unused=False, if_empty=True)
                    elif not queue.declaration_result.message_count:
                        # Quorum queues refuse if-empty deletes. A holding queue is unbound before it
                        # is emptied and no one publishes to it by name: empty now stays empty.
                        await queue.delete(if_unused=False, if_empty=False)
                    else:
                        continue
            except aio_pika.exceptions.ChannelClosed as exc:
                if "not empty" in str(exc) or "PRECONDITION_FAILED" in str(exc):
                    continue
                if "NOT_FOUND" in str(exc):
                    break
                raise
            break
        else:
            raise RuntimeError(f"{source} kept receiving messages: stop its publishers and run again")
        self.state.queues.pop(source, None)
        self.state.bindings.pop(source, None)

    async def _move(self, source: str, target: str) -> int:
        """Copy messages to `target` with confirms, acking each batch in `source` only once every copy
        of it is confirmed. A crash in between leaves a message in both: never in neither."""
        moved = 0
        async with self._channel(confirms=True) as channel:
            queue = await channel.declare_queue(source, passive=True)
            while True:
                batch: list[AbstractIncomingMessage] = []
                while len(batch) < _BATCH:
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    batch.append(message)
                if not batch:
                    return moved
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(
                            full_copy(message), routing_key=target, mandatory=True, timeout=30
                        )
                        for message in batch
                    )
                )
                await batch[-1].ack(multiple=True)
                moved += len(batch)

    def _channel(self, *, confirms: bool = False) -> Any:
        return self.connection.channel(publisher_confirms=confirms, on_return_raises=confirms)


def full_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The message as it was published: body, headers (x-death, x-kkmp-*) and properties. The user id
    is left out: the broker refuses one other than the publishing connection's user."""
    return aio_pika.Message(
        body=message.body,
        headers=dict(message.headers or {}),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        expiration=message.expiration,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


async def migrate(
    url: str, state: BrokerState, *, exchange: str = "kkmp.events", delivery_limit: int
) -> tuple[list[Step], Report]:
    """Migrate every subscription found in `state` (the vhost of `url`) to quorum queues."""
    steps = plan(state, exchange=exchange, delivery_limit=delivery_limit)
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        async with connection.channel() as channel:
            # The exchanges exist already in a running deployment; declaring them is harmless.
            await channel.declare_exchange(
                dead_letter_exchange(exchange), aio_pika.ExchangeType.DIRECT, durable=True
            )
            await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        report = await Migrator(connection, state).run(steps)
    return steps, report
