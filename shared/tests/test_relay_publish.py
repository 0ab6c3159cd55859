"""The relay's batch of publishes, with the exchange stood in for: each row's result is None once
confirmed or its exception, and one deadline ends the confirms that never come. That a row left
unconfirmed stays in the outbox and is published again is proven against the real broker in
test_messaging.py and tests/faults (the broker's memory and disk alarms)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kkmp_shared.messaging import relay as relay_module
from kkmp_shared.messaging.relay import OutboxRelay


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
        created_at=datetime.now(UTC),
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
