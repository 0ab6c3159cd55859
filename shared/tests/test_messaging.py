"""The outbox, relay and inbox consumer against the real RabbitMQ, on SQLite and on PostgreSQL.

A toy service (one table of items; an item's creation is announced as `member.joined.v1` and the same
service consumes it into an `effects` table) exercises the library exactly as the services use it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
import pytest
from fastapi import APIRouter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kkmp_shared.app import OutboxDep, SessionDep, create_service_app
from kkmp_shared.db import new_metadata
from kkmp_shared.events.contracts import MemberJoined
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from kkmp_shared.messaging.tables import add_messaging_tables
from kkmp_shared.settings import ServiceSettings
from kkmp_shared.telemetry import setup_tracing
from kkmp_shared.testing.harness import EventProbe, running_app, wait_ready
from kkmp_shared.testing.tokens import TokenFactory
from kkmp_shared.testing.wait import eventually

pytestmark = pytest.mark.integration

SPANS = InMemorySpanExporter()
setup_tracing("toy", extra_exporter=SPANS)


def toy_app(amqp_url: str, database_url: str) -> Any:
    metadata = new_metadata()
    tables = add_messaging_tables(metadata)
    effects = Table(
        "effects", metadata, Column("id", Integer, primary_key=True), Column("member_id", String(36)),
        Column("event_id", String(36)),
    )
    router = APIRouter()

    @router.post("/items/{name}", status_code=201)
    async def create(name: str, session: SessionDep, outbox: OutboxDep) -> dict[str, str]:
        member_id = str(uuid.uuid4())
        await outbox.add(session, MemberJoined(
            cooperative_id="c1", kelurahan_code="35.78.01.1001", kecamatan_code="35.78.01", member_id=member_id,
            kind="resident", sector=name, member_count=1, joined_at=datetime.now(UTC)))
        await session.commit()
        return {"member_id": member_id}

    group = ConsumerGroup("toy")

    @group.on("members", MemberJoined)
    async def on_member(session: AsyncSession, event: CloudEvent, data: MemberJoined) -> None:
        if data.sector == "fail":
            raise RuntimeError("handler failure on purpose")
        await session.execute(insert(effects).values(member_id=data.member_id, event_id=event.id))

    import os
    os.environ["TOY_DATABASE_URL"] = database_url
    settings = ServiceSettings(service_name="toy", amqp_url=amqp_url, demo=True, retry_delays_ms=[100, 200],
                               relay_poll_interval_s=0.1)
    app = create_service_app(settings, title="toy", description="toy", tables=tables, migrations=None,
                             metadata=metadata, routers=[router], publishes=[MemberJoined], consumers=group,
                             key_source=lambda _s: TokenFactory().key_source())
    app.state.effects = effects
    return app


async def effect_count(app: Any, member_id: str | None = None) -> int:
    query = select(func.count()).select_from(app.state.effects)
    if member_id:
        query = query.where(app.state.effects.c.member_id == member_id)
    async with app.state.db.session() as session:
        return int((await session.execute(query)).scalar_one())


async def test_committed_event_is_published_and_consumed_once(amqp_url: str, database_url: str) -> None:
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
        await eventually(lambda: effect_count(app, member_id), timeout=10)
        # The same event delivered again (a redelivery after a lost ack) has no second effect.
        await probe.publish_raw(orjson.dumps(event.model_dump(mode="json", exclude_none=True)), event.type)
        await probe.publish_raw(orjson.dumps(event.model_dump(mode="json", exclude_none=True)), event.type)
        runner = app.state.runner
        await eventually(lambda: runner.stats["duplicates"] >= 2, timeout=10)
        assert await effect_count(app, member_id) == 1
        assert await app.state.relay.backlog() == 0


async def test_poison_goes_to_dead_letter_queue_while_others_flow(amqp_url: str, database_url: str) -> None:
    app = toy_app(amqp_url, database_url)
    async with running_app(app) as client, EventProbe(amqp_url) as probe:
        await wait_ready(client)
        await probe.publish_raw(b"{not json", "member.joined.v1")
        await probe.publish_raw(b'{"specversion":"1.0","id":"x","source":"/t","type":"member.joined.v1",'
                                b'"time":"2026-01-01T00:00:00Z","data":{"kind":"alien"}}', "member.joined.v1")
        ok = (await client.post("/items/gula")).json()["member_id"]
        failing = (await client.post("/items/fail")).json()["member_id"]
        await eventually(lambda: effect_count(app, ok), timeout=10)
        # The failing handler is retried (100 ms, 200 ms) and then dead-lettered: 3 deliveries in all.
        await eventually(lambda: app.state.runner.stats["dead_lettered"] >= 3, timeout=15)
        assert await effect_count(app, failing) == 0
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


async def test_trace_context_crosses_the_broker(amqp_url: str, database_url: str) -> None:
    app = toy_app(amqp_url, database_url)
    async with running_app(app) as client:
        await wait_ready(client)
        SPANS.clear()
        member_id = (await client.post("/items/telur")).json()["member_id"]
        await eventually(lambda: effect_count(app, member_id), timeout=10)

        def spans_by_name() -> dict[str, Any]:
            spans = {s.name: s for s in SPANS.get_finished_spans()}
            assert "member.joined.v1 process" in spans and "member.joined.v1 publish" in spans
            return spans

        spans = await eventually(spans_by_name, timeout=5)
        http = next(s for s in SPANS.get_finished_spans() if s.kind.name == "SERVER")
        trace_ids = {spans["member.joined.v1 publish"].context.trace_id,
                     spans["member.joined.v1 process"].context.trace_id}
        assert trace_ids == {http.context.trace_id}
