"""The delivery worker's wake-up, on SQLite and PostgreSQL, with a fake webhook sender.

New deliveries are handed to the worker when the transaction that queued them commits (never
before, never after a rollback) and sent without a claim or a poll; what the worker has no room for
is left pending and claimed when the commit wakes it. The poll interval is an hour in these tests,
so anything sent was sent by the wake-up mechanism, and the worker's dispatch count says whether it
had to look in the table at all.

One test sends for real, with the settings' defaults, to a local HTTP receiver that holds every
request until it is released: a burst to one target is in flight exactly `delivery_per_target` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kkmp_shared import clock
from kkmp_shared.bootstrap import Platform
from kkmp_shared.db import Database
from kkmp_shared.messaging.outbox import Outbox
from kkmp_testkit.wait import eventually, holds
from notifications.adapters import orm
from notifications.adapters.channels import AttemptResult, WebhookSender
from notifications.adapters.deliveries import wake_after_commit
from notifications.bootstrap import SERVICE_DIR
from notifications.service_layer.deliveries import DeliveryWorker, queue_deliveries
from notifications.settings import NotificationsSettings
from sqlalchemy import func, select

pytestmark = pytest.mark.integration


class FakeWebhook(WebhookSender):
    """Answers 200 after a moment; keeps what was sent and how many were in flight at once."""

    def __init__(self) -> None:  # no HTTP client: nothing leaves the process
        self.sent: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def send(self, *, delivery_id: str, **_: Any) -> AttemptResult:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.in_flight -= 1
        self.sent.append(delivery_id)
        return AttemptResult(True, False, "delivered", 200)

    async def close(self) -> None:
        pass


class GatedReceiver:
    """A minimal HTTP/1.1 server that holds every POST until `release()`, then answers 200; it counts
    the requests in flight (read, not yet answered) and the most there ever were at once."""

    def __init__(self) -> None:
        self.port = 0
        self.in_flight = 0
        self.peak = 0
        self.answered: list[str] = []  # X-KKMP-Delivery of each request answered
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def release(self) -> None:
        self._released.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head[1:] if ":" in line)
            }
            await reader.readexactly(int(headers.get("content-length", "0")))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await self._released.wait()
            finally:
                self.in_flight -= 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            self.answered.append(headers.get("x-kkmp-delivery", ""))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate(SERVICE_DIR / "migrations")
    yield database
    await database.dispose()


def on(db: Database, config: NotificationsSettings) -> Platform:
    """The platform a worker takes its units of work from, over the test's database."""
    return Platform(config, orm.messaging, db, Outbox(orm.messaging, source="/notifications"))


def settings(**overrides: Any) -> NotificationsSettings:
    values: dict[str, Any] = {
        "demo": True,
        "delivery_poll_interval_s": 3600.0,
        "delivery_concurrency": 8,
        "delivery_per_target": 2,
    }
    values.update(overrides)
    return NotificationsSettings(**values)


def new_delivery(target: str) -> dict[str, Any]:
    """A `deliveries` row as the fan-out writes it: pending, due now."""
    moment = clock.now()
    return {
        "id": str(uuid.uuid4()),
        "channel": "webhook",
        "target": target,
        "recipient": f"subscription:{uuid.uuid4()}",
        "user_id": None,
        "notification_id": None,
        "subscription_id": None,
        "event_id": str(uuid.uuid4()),
        "event_type": "stock.stalled.v1",
        "cooperative_id": None,
        "subject": None,
        "payload": "{}",
        "status": "pending",
        "attempts": 0,
        "max_attempts": 3,
        "next_attempt_at": moment,
        "created_at": moment,
        "updated_at": moment,
    }


async def started(db: Database, **overrides: Any) -> tuple[DeliveryWorker, FakeWebhook, asyncio.Task[None]]:
    """A running worker that has made its first look at the table and is now waiting."""
    webhook = FakeWebhook()
    config = settings(**overrides)
    worker = DeliveryWorker(on(db, config).unit_of_work, config, webhook=webhook)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.dispatches >= 1, timeout=10)
    await asyncio.sleep(0.1)
    return worker, webhook, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def statuses(db: Database, ids: list[str]) -> dict[str, tuple[str, int]]:
    d = orm.deliveries
    async with db.session() as session:
        rows = await session.execute(select(d.c.id, d.c.status, d.c.attempts).where(d.c.id.in_(ids)))
        return {row.id: (row.status, row.attempts) for row in rows}


async def test_new_deliveries_are_handed_over_at_commit_without_a_claim(db: Database) -> None:
    worker, webhook, task = await started(db)
    try:
        looked = worker.dispatches
        rows = [new_delivery(f"http://receiver.test/{uuid.uuid4().hex}") for _ in range(3)]
        async with on(db, worker.settings).unit_of_work() as uow:
            await queue_deliveries(uow, rows, worker)
            await asyncio.sleep(0.1)
            assert webhook.sent == []  # nothing goes out before the commit
        ids = [row["id"] for row in rows]
        await eventually(lambda: sorted(webhook.sent) == sorted(ids), timeout=10)
        # Sent on the hand-over alone: the worker never had to look for due rows (the poll is an hour).
        assert worker.dispatches == looked
        done = await eventually(
            lambda: _all(statuses(db, ids), ("delivered", 1), len(ids)),
            timeout=10,
        )
        assert done is not None and len(done) == 3
        async with db.session() as session:
            attempts = await session.execute(
                select(func.count())
                .select_from(orm.delivery_attempts)
                .where(orm.delivery_attempts.c.delivery_id.in_(ids))
            )
            assert attempts.scalar_one() == 3
    finally:
        await stop(task)


async def test_a_rolled_back_transaction_sends_nothing_and_frees_the_room(db: Database) -> None:
    worker, webhook, task = await started(db)
    try:
        rows = [new_delivery(f"http://receiver.test/{uuid.uuid4().hex}") for _ in range(2)]
        with pytest.raises(RuntimeError):
            async with on(db, worker.settings).unit_of_work() as uow:
                await queue_deliveries(uow, rows, worker)
                assert worker.promised == 2
                raise RuntimeError("the consumer's batch failed")
        await holds(lambda: webhook.sent == [])
        assert worker.promised == 0 and worker.queued == 0 and worker.inflight == 0
        assert await statuses(db, [row["id"] for row in rows]) == {}
    finally:
        await stop(task)


async def test_what_the_worker_has_no_room_for_is_claimed_when_the_commit_wakes_it(db: Database) -> None:
    # One slot per target and eight claimed ahead at most: a burst of 20 to one target is partly
    # handed over, partly left pending in the same INSERT, and all of it goes out one at a time.
    worker, webhook, task = await started(db, delivery_concurrency=2, delivery_per_target=1)
    try:
        target = f"http://receiver.test/{uuid.uuid4().hex}"
        rows = [new_delivery(target) for _ in range(20)]
        async with on(db, worker.settings).unit_of_work() as uow:
            await queue_deliveries(uow, rows, worker)
        ids = [row["id"] for row in rows]
        await eventually(lambda: len(webhook.sent) == len(ids), timeout=20)
        assert sorted(webhook.sent) == sorted(ids)  # each once
        assert webhook.peak == 1
        await eventually(lambda: _all(statuses(db, ids), ("delivered", 1), len(ids)), timeout=10)
    finally:
        await stop(task)


async def test_a_burst_to_one_target_is_sent_the_default_per_target_cap_at_a_time(db: Database) -> None:
    cap = NotificationsSettings.model_fields["delivery_per_target"].default
    # The defaults, but for a receiver on loopback and a timeout no held request reaches.
    config = NotificationsSettings(demo=True, allow_internal_webhooks=True, webhook_timeout_s=60.0)
    assert config.delivery_per_target == cap and config.delivery_concurrency > cap
    receiver = GatedReceiver()
    await receiver.start()
    worker = DeliveryWorker(on(db, config).unit_of_work, config)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.dispatches >= 1, timeout=10)
        # More than the worker takes over for one target (CLAIMED_PER_SLOT rows per slot): the rest
        # waits in the table and is claimed as the queue drains.
        target = receiver.url(f"/hook/{uuid.uuid4().hex}")
        rows = [new_delivery(target) for _ in range(5 * cap)]
        async with on(db, worker.settings).unit_of_work() as uow:
            await queue_deliveries(uow, rows, worker)
        ids = [row["id"] for row in rows]
        await eventually(lambda: receiver.in_flight >= cap, timeout=10)
        # a request beyond the cap, had the worker sent one, would arrive within the quiet period
        await holds(lambda: receiver.peak == cap and receiver.in_flight == cap)
        receiver.release()
        await eventually(lambda: len(receiver.answered) == len(ids), timeout=30)
        assert sorted(receiver.answered) == sorted(ids)  # each once
        assert receiver.peak == cap
        done = await eventually(lambda: _all(statuses(db, ids), ("delivered", 1), len(ids)), timeout=15)
        assert done is not None and len(done) == len(ids)
    finally:
        await stop(task)
        await receiver.stop()


async def test_the_wake_is_called_after_commit_and_never_after_rollback(db: Database) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            wake_after_commit(session, lambda: calls.append("rolled back"))
            raise RuntimeError("no")
    async with db.transaction() as session:
        wake_after_commit(session, lambda: calls.append("committed"))
        assert calls == []
    assert calls == ["committed"]
    # The session's next transaction does not inherit the wake of the previous one.
    async with db.session() as session:
        async with session.begin():
            wake_after_commit(session, lambda: calls.append("first"))
        async with session.begin():
            pass
    assert calls == ["committed", "first"]


async def _all(query: Any, expected: tuple[str, int], count: int) -> dict[str, tuple[str, int]] | None:
    found = await query
    if len(found) == count and all(value == expected for value in found.values()):
        return found
    return None


async def test_with_the_defaults_a_scans_burst_to_one_target_is_handed_over_whole_at_commit(
    db: Database,
) -> None:
    """A detection scan's 200 stalls to one webhook (`make bench`'s burst): with the default settings
    every one is inserted leased to the worker and sent from memory, none waits for a claim."""
    webhook = FakeWebhook()
    config = NotificationsSettings(demo=True, delivery_poll_interval_s=3600.0)
    worker = DeliveryWorker(on(db, config).unit_of_work, config, webhook=webhook)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.dispatches >= 1, timeout=10)
        await asyncio.sleep(0.1)
        looked = worker.dispatches
        target = f"http://receiver.test/{uuid.uuid4().hex}"
        rows = [new_delivery(target) for _ in range(200)]
        async with on(db, worker.settings).unit_of_work() as uow:
            await queue_deliveries(uow, rows, worker)
            assert worker.promised == 200
        ids = [row["id"] for row in rows]
        await eventually(lambda: len(webhook.sent) == 200, timeout=30)
        assert sorted(webhook.sent) == sorted(ids)
        assert worker.dispatches == looked  # no wake, no claim: the table had nothing left for it
        assert webhook.peak == NotificationsSettings.model_fields["delivery_per_target"].default
        done = await eventually(lambda: _all(statuses(db, ids), ("delivered", 1), len(ids)), timeout=15)
        assert done is not None
    finally:
        await stop(task)


class GatedWebhook(FakeWebhook):
    """Answers 200 when the test opens the gate of that delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, asyncio.Event] = {}

    async def send(self, *, delivery_id: str, **_: Any) -> AttemptResult:
        await self.gates.setdefault(delivery_id, asyncio.Event()).wait()
        self.sent.append(delivery_id)
        return AttemptResult(True, False, "delivered", 200)

    def open(self, delivery_id: str) -> None:
        self.gates.setdefault(delivery_id, asyncio.Event()).set()


async def gated_burst(
    db: Database, count: int, **overrides: Any
) -> tuple[DeliveryWorker, GatedWebhook, asyncio.Task[None], list[str], list[int]]:
    """A running worker with a burst of `count` deliveries handed over and all of them in flight (each
    held until the test opens its gate), their ids, and the size of each recording made from then on."""
    webhook = GatedWebhook()
    config = settings(**overrides)
    worker = DeliveryWorker(on(db, config).unit_of_work, config, webhook=webhook)
    recorded: list[int] = []
    record_many = worker.record_many

    async def counting(ended: list[Any]) -> None:
        recorded.append(len(ended))
        await record_many(ended)

    worker.record_many = counting  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.dispatches >= 1, timeout=10)
    rows = [new_delivery(f"http://receiver.test/{uuid.uuid4().hex}") for _ in range(count)]
    async with on(db, worker.settings).unit_of_work() as uow:
        await queue_deliveries(uow, rows, worker)
    await eventually(lambda: worker.inflight == count, timeout=10)
    return worker, webhook, task, [row["id"] for row in rows], recorded


async def test_a_bursts_attempts_are_recorded_once_its_sends_are_done(db: Database) -> None:
    """Recording an attempt (a transaction and an event) waits while other sends are in flight, so
    that it does not take the CPU of the sends; the whole burst is then recorded at once, and the
    relay's `before_drain` (`sends_first`) waits the same way."""
    worker, webhook, task, ids, recorded = await gated_burst(db, 3, delivery_record_delay_ms=5000)
    try:
        relay_waiting = asyncio.create_task(worker.sends_first())
        webhook.open(ids[0])
        webhook.open(ids[1])
        await eventually(lambda: len(webhook.sent) == 2, timeout=10)
        # two attempts ended, one is still in flight: nothing is recorded yet
        await holds(lambda: recorded == [])
        assert await statuses(db, ids) == {i: ("delivering", 1) for i in ids}
        assert not relay_waiting.done()
        webhook.open(ids[2])
        done = await eventually(lambda: _all(statuses(db, ids), ("delivered", 1), len(ids)), timeout=10)
        assert done is not None
        assert recorded == [3]  # one transaction for the burst
        await asyncio.wait_for(relay_waiting, timeout=5)
        await asyncio.wait_for(worker.sends_first(), timeout=1)  # idle: no wait at all
    finally:
        await stop(task)


async def test_attempts_are_recorded_after_the_delay_while_sends_go_on(db: Database) -> None:
    """A send that hangs does not hold the recording of the others past `delivery_record_delay_ms`."""
    _worker, webhook, task, ids, recorded = await gated_burst(db, 2, delivery_record_delay_ms=200)
    try:
        webhook.open(ids[0])
        done = await eventually(lambda: _all(statuses(db, ids[:1]), ("delivered", 1), 1), timeout=10)
        assert done is not None
        assert (await statuses(db, ids))[ids[1]] == ("delivering", 1)
        assert recorded == [1]
        webhook.open(ids[1])
        assert await eventually(lambda: _all(statuses(db, ids), ("delivered", 1), 2), timeout=10) is not None
    finally:
        await stop(task)
