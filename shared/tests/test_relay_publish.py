"""The relay's batch of publishes, with the exchange stood in for: each row's result is None once
confirmed or its exception, one deadline ends the confirms that never come, and alerts overtake a
backlog of bulk events (on both databases). That a row left
unconfirmed stays in the outbox and is published again is proven against the real broker in
test_messaging.py and tests/faults (the broker's memory and disk alarms)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from kkmp_shared import clock
from kkmp_shared.db import Database
from kkmp_shared.events.contracts import StockMoved, StockStalled
from kkmp_shared.messaging import relay as relay_module
from kkmp_shared.messaging.outbox import Outbox
from kkmp_shared.messaging.relay import OutboxRelay
from kkmp_shared.messaging.tables import MessagingTables, add_messaging_tables
from kkmp_testkit.wait import eventually, holds
from sqlalchemy import MetaData


class FakeExchange:
    """Confirms `ok` rows at once, refuses `refused` ones, never confirms `hang` ones."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.headers: list[dict[str, Any]] = []
        self.abandoned: list[str] = []

    async def publish(self, message: Any, routing_key: str, mandatory: bool = False) -> None:
        self.published.append(message.message_id)
        self.headers.append(dict(message.headers))
        if message.message_id.startswith("refused"):
            raise RuntimeError("nacked")
        if message.message_id.startswith("hang"):
            try:
                await asyncio.Event().wait()
            finally:
                self.abandoned.append(message.message_id)


def row(event_id: str) -> Any:
    return SimpleNamespace(
        event_id=event_id,
        event_type="test.happened.v1",
        body="{}",
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        created_at=clock.now(),
    )


async def test_one_deadline_ends_the_confirms_that_never_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "PUBLISH_TIMEOUT_S", 0.3)
    monkeypatch.setattr(relay_module, "tracing_exported", lambda: False)
    broker = SimpleNamespace(on_connect=lambda _callback: None, exchange_name="kkmp.events")
    relay = OutboxRelay(SimpleNamespace(), SimpleNamespace(outbox=None), broker, service="test")  # type: ignore[arg-type]
    exchange = FakeExchange()
    rows = [row("ok-1"), row("hang-1"), row("refused-1"), row("ok-2"), row("hang-2")]
    started = asyncio.get_running_loop().time()
    results = await relay._publish_all(exchange, rows)  # type: ignore[arg-type]
    took = asyncio.get_running_loop().time() - started
    assert exchange.published == [r.event_id for r in rows]  # all at once, in the outbox's order
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], TimeoutError) and isinstance(results[4], TimeoutError)
    assert isinstance(results[2], RuntimeError)
    assert sorted(exchange.abandoned) == ["hang-1", "hang-2"]  # not left running behind the relay
    assert 0.3 <= took < 2.0
    # No span is exported: the trace context stored with each row goes on as it is.
    assert [h["traceparent"] for h in exchange.headers] == [r.headers["traceparent"] for r in rows]


async def outbox_database(url: str) -> tuple[Database, MessagingTables]:
    """A `Database` on `url` with the outbox and inbox tables created."""
    metadata = MetaData()
    tables = add_messaging_tables(metadata)
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return db, tables


def relay_on(db: Database, tables: MessagingTables, **options: Any) -> tuple[OutboxRelay, FakeExchange]:
    """A relay of `db`'s outbox whose channel is open on a `FakeExchange` (no broker)."""
    connected = asyncio.Event()
    connected.set()
    broker = SimpleNamespace(
        on_connect=lambda _callback: None, exchange_name="kkmp.events", connected=connected
    )
    relay = OutboxRelay(db, tables, broker, service="inventory", **options)  # type: ignore[arg-type]
    exchange = FakeExchange()
    relay._exchange = exchange  # type: ignore[assignment]
    relay._channel = SimpleNamespace(is_closed=False)  # type: ignore[assignment]
    return relay, exchange


async def test_alerts_are_published_before_a_backlog_of_bulk_events(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Movements (a bulk stream) wait in the outbox when an alert is written: the relay's next batch
    starts with the alert, and each lane keeps the order in which its events were written."""
    monkeypatch.setattr(relay_module, "tracing_exported", lambda: False)
    db, tables = await outbox_database(database_url)
    try:
        outbox = Outbox(tables, source="/inventory")
        async with db.transaction() as session:
            backlog = await outbox.add_many(session, [movement(n) for n in range(4)])
        async with db.transaction() as session:
            alert = await outbox.add(session, stall("gula"))
        async with db.transaction() as session:
            # One transaction writes a movement and the alert it causes: the alert still goes first.
            mixed = await outbox.add_many(session, [movement(4), stall("beras")])
        relay, exchange = relay_on(db, tables, batch_size=3)
        published = 0
        while count := await relay.drain_once():
            published += count
        assert published == 7
        assert await relay.backlog() == 0
        assert exchange.published == [
            alert.id,
            mixed[1].id,
            *(event.id for event in backlog),
            mixed[0].id,
        ]
    finally:
        await db.dispose()


def movement(n: int) -> StockMoved:
    return StockMoved(
        cooperative_id="c1",
        kelurahan_code="35.78.01.1001",
        kecamatan_code="35.78.01",
        movement_id=f"m{n}",
        commodity="gula",
        kind="sale",
        quantity=Decimal(1),
        unit="kg",
        on_hand_after=Decimal(10 - n),
        occurred_at=clock.now(),
    )


def stall(commodity: str) -> StockStalled:
    return StockStalled(
        cooperative_id="c1",
        kelurahan_code="35.78.01.1001",
        kecamatan_code="35.78.01",
        commodity=commodity,
        on_hand=Decimal(10),
        unit="kg",
        days_since_sale=20,
        value=150_000,
        detected_at=clock.now(),
    )


async def test_the_relay_waits_for_its_before_drain_hook(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service lets its own latency-critical work go first (notifications: a burst's webhook sends)."""
    monkeypatch.setattr(relay_module, "tracing_exported", lambda: False)
    db, tables = await outbox_database(database_url)
    try:
        relay, exchange = relay_on(db, tables, poll_interval_s=0.05)
        gate = asyncio.Event()
        waits: list[float] = []

        async def hold() -> None:
            waits.append(asyncio.get_running_loop().time())
            await gate.wait()

        relay.before_drain = hold
        async with db.transaction() as session:
            alert = await Outbox(tables, source="/inventory").add(session, stall("gula"))
        task = asyncio.create_task(relay.run())
        try:
            await eventually(lambda: waits, timeout=10)
            await holds(lambda: exchange.published == [])
            gate.set()
            for _ in range(100):
                if exchange.published:
                    break
                await asyncio.sleep(0.02)
            assert exchange.published == [alert.id]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await db.dispose()
