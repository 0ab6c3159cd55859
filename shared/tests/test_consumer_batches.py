"""The consumer runner's batch path on real databases (SQLite and PostgreSQL): inbox rows claimed in
one statement, a queue's batch handler given every new event at once, duplicates inside one batch
applied once, and a failing batch redone one by one through the per-type handlers.

The broker is the collaborator stood in for here (a message is a body and an ack); the same runner
against the real RabbitMQ is proven in test_messaging.py and test_broker_faults.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from kkmp_shared import clock
from kkmp_shared.db import Database, new_metadata
from kkmp_shared.events.contracts import MemberJoined
from kkmp_shared.events.envelope import CloudEvent, new_event
from kkmp_shared.messaging.consumer import ConsumerGroup, ConsumerRunner
from kkmp_shared.messaging.tables import add_messaging_tables
from kkmp_testkit.wait import eventually
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.integration


class FakeBroker:
    def on_connect(self, callback: Any) -> None:
        self.callback = callback


class FakeChannel:
    """Delivery tags and what is settled, as the broker keeps them per channel."""

    def __init__(self) -> None:
        self.delivered = 0
        self.settled: set[int] = set()

    def deliver(self, event: CloudEvent) -> FakeMessage:
        self.delivered += 1
        return FakeMessage(self, event, self.delivered)


class FakeMessage:
    def __init__(self, channel: FakeChannel, event: CloudEvent, tag: int) -> None:
        self.channel, self.delivery_tag = channel, tag
        self.body = orjson.dumps(event.model_dump(mode="json", exclude_none=True))
        self.headers: dict[str, Any] = {}

    @property
    def acked(self) -> bool:
        return self.delivery_tag in self.channel.settled

    async def ack(self, multiple: bool = False) -> None:
        assert not self.acked, "acking a settled delivery is a channel error"
        first = 1 if multiple else self.delivery_tag
        self.channel.settled |= set(range(first, self.delivery_tag + 1))


def member_event(sector: str = "kue") -> CloudEvent:
    data = MemberJoined(
        cooperative_id="c1",
        kelurahan_code="35.78.01.1001",
        kecamatan_code="35.78.01",
        member_id=str(uuid.uuid4()),
        kind="resident",
        sector=sector,
        member_count=1,
        joined_at=clock.now(),
    )
    return new_event(data, source="/test")


class Recorder:
    def __init__(self) -> None:
        self.single: list[str] = []
        self.batches: list[list[str]] = []
        self.fail_batches = False

    async def one(self, session: AsyncSession, event: CloudEvent, data: MemberJoined) -> None:
        if data.sector == "fail":
            raise RuntimeError("handler failure on purpose")
        self.single.append(event.id)

    async def many(self, session: AsyncSession, items: list[tuple[CloudEvent, Any]]) -> None:
        if self.fail_batches or any(data.sector == "fail" for _, data in items):
            raise RuntimeError("batch handler failure on purpose")
        self.batches.append([event.id for event, _ in items])


@pytest.fixture
async def runner(database_url: str) -> AsyncIterator[tuple[ConsumerRunner, Recorder]]:
    metadata = new_metadata()
    tables = add_messaging_tables(metadata)
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    recorder = Recorder()
    group = ConsumerGroup("test")
    group.add("members", MemberJoined, recorder.one)
    group.in_batches("members", recorder.many)
    yield ConsumerRunner(group, db, tables, FakeBroker()), recorder  # type: ignore[arg-type]
    await db.dispose()


async def inbox_count(runner: ConsumerRunner) -> int:
    async with runner.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(runner.inbox))).scalar_one())


async def test_a_batch_goes_to_the_batch_handler_once_per_new_event(
    runner: tuple[ConsumerRunner, Recorder],
) -> None:
    consumer, recorder = runner
    sub = consumer.group.subscriptions["test.members"]
    first, second = member_event(), member_event()
    channel = FakeChannel()
    messages = [channel.deliver(first), channel.deliver(second)]
    messages.append(channel.deliver(first))  # the same event published twice lands in the same batch
    await consumer._process_batch(sub, messages)  # type: ignore[arg-type]

    assert recorder.batches == [[first.id, second.id]]
    assert recorder.single == []
    assert all(m.acked for m in messages)
    assert consumer.stats["processed"] == 2 and consumer.stats["duplicates"] == 1
    assert await inbox_count(consumer) == 2

    # Next batch: one seen event and one new one. A single new event goes to its per-type handler.
    third = member_event()
    await consumer._process_batch(sub, [channel.deliver(second), channel.deliver(third)])  # type: ignore[arg-type]
    assert recorder.batches == [[first.id, second.id]]
    assert recorder.single == [third.id]
    assert consumer.stats["processed"] == 3 and consumer.stats["duplicates"] == 2
    assert await inbox_count(consumer) == 3


async def test_a_failing_batch_is_redone_one_by_one(runner: tuple[ConsumerRunner, Recorder]) -> None:
    consumer, recorder = runner
    recorder.fail_batches = True
    sub = consumer.group.subscriptions["test.members"]
    events = [member_event() for _ in range(3)]
    channel = FakeChannel()
    messages = [channel.deliver(e) for e in events]
    await consumer._process_batch(sub, messages)  # type: ignore[arg-type]

    # The failed batch's transaction rolled back (its inbox rows with it), then each event applied once.
    assert recorder.batches == []
    assert recorder.single == [e.id for e in events]
    assert all(m.acked for m in messages)
    assert consumer.stats["processed"] == 3 and consumer.stats["duplicates"] == 0
    assert await inbox_count(consumer) == 3


async def test_a_message_left_unacked_is_never_settled_by_a_later_batch(
    runner: tuple[ConsumerRunner, Recorder],
) -> None:
    """A failed message whose retry cannot be published (broker channel gone) stays unacked so the
    broker redelivers it; the cumulative ack of a later batch must not settle it."""
    consumer, recorder = runner
    sub = consumer.group.subscriptions["test.members"]
    channel = FakeChannel()
    ok, failing, other = member_event(), member_event("fail"), member_event()
    first_batch = [channel.deliver(ok), channel.deliver(failing), channel.deliver(other)]
    await consumer._process_batch(sub, first_batch)  # type: ignore[arg-type]
    assert recorder.single == [ok.id, other.id]
    assert [m.acked for m in first_batch] == [True, False, True]

    fresh = [member_event(), member_event()]
    later = [channel.deliver(e) for e in fresh]
    await consumer._process_batch(sub, later)  # type: ignore[arg-type]
    assert recorder.batches == [[e.id for e in fresh]]
    assert all(m.acked for m in later)
    assert not first_batch[1].acked, "the failed message is left for the broker to redeliver"


@pytest.mark.parametrize("linger_s", [0.0, 0.1])
async def test_the_worker_lingers_for_a_batch_when_told_to(
    runner: tuple[ConsumerRunner, Recorder], linger_s: float
) -> None:
    """Two events 20 ms apart: applied one by one without a linger, together with one of 100 ms."""
    consumer, recorder = runner
    consumer.linger_s = linger_s
    sub = consumer.group.subscriptions["test.members"]
    work: asyncio.Queue[Any] = asyncio.Queue()
    worker = asyncio.create_task(consumer._work(sub, work, None))  # type: ignore[arg-type]
    channel = FakeChannel()
    first, second = member_event(), member_event()
    try:
        work.put_nowait(channel.deliver(first))
        await asyncio.sleep(0.02)
        work.put_nowait(channel.deliver(second))
        await eventually(lambda: channel.settled == {1, 2}, timeout=10, message="both acked")
    finally:
        worker.cancel()
    if linger_s:
        assert recorder.batches == [[first.id, second.id]] and recorder.single == []
    else:
        assert recorder.batches == [] and recorder.single == [first.id, second.id]
    assert await inbox_count(consumer) == 2


@pytest.mark.parametrize("linger_max_s", [0.0, 1.0])
async def test_the_worker_lingers_on_while_a_burst_is_still_arriving(
    runner: tuple[ConsumerRunner, Recorder], linger_max_s: float
) -> None:
    """Six events 30 ms apart with linger steps of 80 ms: one step takes the first few; with a longer
    bound the worker lingers on while each step brings more, and applies the burst as one batch, then
    stops lingering as soon as a step brings nothing (well before the bound)."""
    consumer, recorder = runner
    consumer.linger_s, consumer.linger_max_s = 0.08, linger_max_s
    sub = consumer.group.subscriptions["test.members"]
    work: asyncio.Queue[Any] = asyncio.Queue()
    worker = asyncio.create_task(consumer._work(sub, work, None))  # type: ignore[arg-type]
    channel = FakeChannel()
    events = [member_event() for _ in range(6)]
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        for event in events:
            work.put_nowait(channel.deliver(event))
            await asyncio.sleep(0.03)
        await eventually(lambda: channel.settled == set(range(1, 7)), timeout=10, message="all acked")
        took = loop.time() - started
    finally:
        worker.cancel()
    applied = recorder.batches + [[one] for one in recorder.single]
    assert sorted(i for batch in applied for i in batch) == sorted(e.id for e in events)
    if linger_max_s:
        assert recorder.batches == [[e.id for e in events]] and recorder.single == []
        assert took < 0.8, "the worker stopped lingering when the burst was over, not at the bound"
    else:
        assert recorder.batches[0][:2] == [e.id for e in events[:2]] and len(applied) > 1
    assert await inbox_count(consumer) == 6


def test_the_service_settings_reach_the_runner(amqp_url: str, database_url: str, toy_app: Any) -> None:
    """PREFETCH, CONSUMER_LINGER_MS and CONSUMER_LINGER_MAX_MS as `create_service_app` hands them over:
    a batch is half the prefetch, so the next one is already here while one is applied."""
    app = toy_app(amqp_url, database_url, prefetch=40, consumer_linger_ms=5, consumer_linger_max_ms=300)
    runner = app.state.runner
    assert (runner.prefetch, runner.batch_size) == (40, 20)
    assert (runner.linger_s, runner.linger_max_s) == (0.005, 0.3)
    assert (toy_app(amqp_url, database_url, prefetch=1).state.runner.batch_size) == 1
