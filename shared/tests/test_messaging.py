"""The outbox, relay and inbox consumer against the real RabbitMQ, on SQLite and on PostgreSQL.

A toy service (one table of items; an item's creation is announced as `member.joined.v1` and the same
service consumes it into an `effects` table) exercises the library exactly as the services use it.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import orjson
import pytest
from kkmp_testkit.harness import EventProbe, running_app, wait_ready
from kkmp_testkit.wait import eventually

pytestmark = pytest.mark.integration


async def test_committed_event_is_published_and_consumed_once(
    amqp_url: str, database_url: str, toy_app: Any
) -> None:
    app = toy_app(amqp_url, database_url)
    async with running_app(app) as client, EventProbe(amqp_url) as probe:
        await wait_ready(client)
        response = await client.post("/items/beras")
        assert response.status_code == 201
        member_id = response.json()["member_id"]
        [event] = await probe.wait_for("member.joined.v1", lambda e: e.data["member_id"] == member_id)
        assert event.specversion == "1.0" and event.source == "/toy" and event.subject == "c1"
        assert event.traceparent, "the trace context travels in the CloudEvent"
        assert probe.deliveries[-1].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await eventually(lambda: app.state.effect_count(member_id), timeout=10)
        # The same event delivered again (a redelivery after a lost ack) has no second effect.
        await probe.publish_raw(orjson.dumps(event.model_dump(mode="json", exclude_none=True)), event.type)
        await probe.publish_raw(orjson.dumps(event.model_dump(mode="json", exclude_none=True)), event.type)
        runner = app.state.runner
        await eventually(lambda: runner.stats["duplicates"] >= 2, timeout=10)
        assert await app.state.effect_count(member_id) == 1
        assert await app.state.relay.backlog() == 0


async def test_poison_goes_to_dead_letter_queue_while_others_flow(
    amqp_url: str, database_url: str, toy_app: Any
) -> None:
    app = toy_app(amqp_url, database_url)
    async with running_app(app) as client, EventProbe(amqp_url) as probe:
        await wait_ready(client)
        await probe.publish_raw(b"{not json", "member.joined.v1")
        await probe.publish_raw(
            b'{"specversion":"1.0","id":"x","source":"/t","type":"member.joined.v1",'
            b'"time":"2026-01-01T00:00:00Z","data":{"kind":"alien"}}',
            "member.joined.v1",
        )
        ok = (await client.post("/items/gula")).json()["member_id"]
        failing = (await client.post("/items/fail")).json()["member_id"]
        await eventually(lambda: app.state.effect_count(ok), timeout=10)
        # The failing handler is retried (100 ms, 200 ms) and then dead-lettered: 3 deliveries in all.
        await eventually(lambda: app.state.runner.stats["dead_lettered"] >= 3, timeout=15)
        assert await app.state.effect_count(failing) == 0
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue("toy.members.dlq", durable=True, passive=True)
            bodies = []
            while (message := await dlq.get(no_ack=True, fail=False)) is not None:
                bodies.append((message.body, message.headers))
        assert len(bodies) == 3
        reasons = [str(h.get("x-kkmp-error")) for _, h in bodies]
        assert sum("poison" in r for r in reasons) == 2
        assert sum("handler failure on purpose" in r for r in reasons) == 1


async def test_trace_context_crosses_the_broker(
    amqp_url: str, database_url: str, toy_app: Any, spans: Any
) -> None:
    app = toy_app(amqp_url, database_url)
    async with running_app(app) as client:
        await wait_ready(client)
        spans.clear()
        member_id = (await client.post("/items/telur")).json()["member_id"]
        await eventually(lambda: app.state.effect_count(member_id), timeout=10)

        def spans_by_name() -> dict[str, Any]:
            named = {s.name: s for s in spans.get_finished_spans()}
            assert "member.joined.v1 process" in named and "member.joined.v1 publish" in named
            return named

        named = await eventually(spans_by_name, timeout=5)
        http = next(s for s in spans.get_finished_spans() if s.kind.name == "SERVER")
        trace_ids = {
            named["member.joined.v1 publish"].context.trace_id,
            named["member.joined.v1 process"].context.trace_id,
        }
        assert trace_ids == {http.context.trace_id}
