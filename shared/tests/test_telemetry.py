"""Traces after the cheaper instrumentation: one server span per request named by its route (continuing
an incoming `traceparent`), a client span per SQL statement, none for health checks; spans dropped but
trace ids still made when nothing exports them. And read sessions, which skip BEGIN/ROLLBACK."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from kkmp_shared.app import ReadSessionDep
from kkmp_shared.telemetry import ExportingSampler
from kkmp_testkit.harness import running_app, wait_ready
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.mark.unit
def test_spans_are_dropped_until_something_exports_them() -> None:
    sampler = ExportingSampler()
    provider = TracerProvider(sampler=sampler)
    exported = InMemorySpanExporter()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid  # logs and the outbox still get a trace id
        with tracer.start_as_current_span("query") as child:
            assert child.get_span_context().trace_id == span.get_span_context().trace_id
    provider.add_span_processor(SimpleSpanProcessor(exported))
    sampler.exporting = True
    with tracer.start_as_current_span("request") as span:
        assert span.is_recording()
    assert [s.name for s in exported.get_finished_spans()] == ["request"]
    sampler.set_ratio(0.0)
    with tracer.start_as_current_span("request") as span:
        assert not span.is_recording()


@pytest.mark.unit
def test_a_remote_parent_that_did_not_record_does_not_silence_this_service() -> None:
    sampler = ExportingSampler()
    sampler.exporting = True
    provider = TracerProvider(sampler=sampler)
    parent = trace.NonRecordingSpan(
        trace.SpanContext(
            int(TRACE_ID, 16), 0x00F067AA0BA902B7, is_remote=True, trace_flags=trace.TraceFlags(0)
        )
    )
    span = provider.get_tracer("test").start_span("process", context=trace.set_span_in_context(parent))
    assert span.is_recording() and span.get_span_context().trace_id == int(TRACE_ID, 16)
    span.end()


@pytest.mark.integration
async def test_request_and_sql_spans(amqp_url: str, database_url: str, toy_app: Any, spans: Any) -> None:
    app = toy_app(amqp_url, database_url)
    async with running_app(app) as client:
        await wait_ready(client)
        spans.clear()
        response = await client.post("/items/gula", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 201
        finished = spans.get_finished_spans()
        [server] = [s for s in finished if s.kind == trace.SpanKind.SERVER]
        assert server.name == "POST /items/{name}"
        assert format(server.context.trace_id, "032x") == TRACE_ID  # the caller's trace continues
        assert server.attributes["http.route"] == "/items/{name}"
        assert server.attributes["http.response.status_code"] == 201
        assert server.attributes["url.path"] == "/items/gula"
        sql = [s for s in finished if s.kind == trace.SpanKind.CLIENT and s.name.startswith("INSERT")]
        assert sql, [s.name for s in finished]
        assert sql[0].context.trace_id == server.context.trace_id
        assert sql[0].parent is not None and sql[0].parent.span_id == server.context.span_id
        assert "INSERT INTO" in sql[0].attributes["db.statement"]
        assert sql[0].attributes["db.system"] in ("postgresql", "sqlite")

        spans.clear()
        assert (await client.get("/health/ready")).status_code == 200
        assert not [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]

        spans.clear()
        assert (await client.get("/no/such/route")).status_code == 404
        [server] = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
        assert server.name == "GET" and server.attributes["http.response.status_code"] == 404


@pytest.mark.integration
async def test_read_sessions_read_without_a_transaction(
    amqp_url: str, database_url: str, toy_app: Any
) -> None:
    app = toy_app(amqp_url, database_url)
    reads = APIRouter()

    async def backend_state(pid: int) -> str:
        async with app.state.db.engine.connect() as other:  # another connection of the pool
            query = text("SELECT state FROM pg_stat_activity WHERE pid = :pid")
            return str((await other.execute(query, {"pid": pid})).scalar_one())

    @reads.get("/items/count")
    async def count(session: ReadSessionDep) -> dict[str, Any]:
        items = (await session.execute(text("SELECT count(*) FROM effects"))).scalar_one()
        state = None
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            state = await backend_state(pid)
        return {"items": items, "state": state}

    app.include_router(reads)
    async with running_app(app) as client:
        await wait_ready(client)
        body = (await client.get("/items/count")).json()
        assert body["items"] == 0
        if body["state"] is not None:  # PostgreSQL: no BEGIN, so not "idle in transaction"
            assert body["state"] == "idle"
            async with app.state.db.session() as session:  # while an ordinary session is
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                assert await backend_state(pid) == "idle in transaction"
