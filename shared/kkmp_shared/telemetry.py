"""Traces, metrics and structured logs, the same in every service.

A real SDK tracer provider is always installed (even with the exporter off) so that every request and
message has a trace id that travels through the outbox and the broker into each consumer.

Spans are recorded only when something receives them: with the exporter off (the default) there is no
span processor, and building attributes for spans that go nowhere cost a large share of each request.
The sampler then drops them, and trace ids are still made and propagated (logs, outbox, broker headers)
exactly as before. With an exporter, a `TraceIdRatioBased` share of traces is recorded
(`OTEL_SAMPLE_RATIO`, default 1: every trace). The decision follows a parent in the same process and
is made afresh (by trace id, so the same in every service) for a parent from another process.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from prometheus_client import Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import event

# Process-wide metrics, labelled by service: several services may share one test process.
HTTP_REQUESTS = Counter("kkmp_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("kkmp_http_request_seconds", "HTTP request duration", ["service", "method", "route"])
OUTBOX_BACKLOG = Gauge(
    "kkmp_outbox_backlog", "Events committed but not yet confirmed by the broker", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "kkmp_outbox_oldest_age_seconds", "Age of the oldest unpublished event", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "kkmp_outbox_published_total", "Events published with a broker confirm", ["service"]
)
CONSUMED = Counter("kkmp_events_consumed_total", "Events consumed, by outcome", ["queue", "outcome"])
CONSUME_SECONDS = Histogram("kkmp_event_handle_seconds", "Time to handle one event", ["queue"])


class ExportingSampler(Sampler):
    """Drops every span until an exporter is added, then samples `ratio` of the traces."""

    def __init__(self, ratio: float = 1.0) -> None:
        self.exporting = False
        self.set_ratio(ratio)

    def set_ratio(self, ratio: float) -> None:
        by_trace_id = TraceIdRatioBased(ratio)
        self.ratio = ratio
        self._sampled = ParentBased(root=by_trace_id, remote_parent_not_sampled=by_trace_id)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if not self.exporting:
            parent = trace.get_current_span(parent_context).get_span_context()
            return SamplingResult(Decision.DROP, None, parent.trace_state if parent.is_valid else None)
        return self._sampled.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return f"ExportingSampler{{exporting:{self.exporting},{self._sampled.get_description()}}}"


_provider: TracerProvider | None = None
_sampler = ExportingSampler()


def tracing_exported() -> bool:
    """Whether spans of this process go anywhere (an exporter is set); until then every span is
    dropped, and code on a hot path may skip making them."""
    return _sampler.exporting


def setup_tracing(
    service: str,
    exporter: str = "off",
    endpoint: str | None = None,
    extra_exporter: SpanExporter | None = None,
    sample_ratio: float | None = None,
) -> TracerProvider:
    """Install the tracer provider once per process; later calls add exporters to it."""
    global _provider
    if sample_ratio is not None:
        _sampler.set_ratio(sample_ratio)
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=_sampler)
        trace.set_tracer_provider(_provider)
        if exporter == "console":
            _provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
            _sampler.exporting = True
        elif exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            _sampler.exporting = True
    if extra_exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(extra_exporter))
        _sampler.exporting = True
    return _provider


class _TraceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        record.service = self.service
        return True


def setup_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if json_logs:
        formatter = JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(formatter)
    handler.addFilter(_TraceFilter(service))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def instrument_engine(engine: Any) -> None:
    """A client span per SQL statement, named by its operation and database (`SELECT inventory`).

    Three engine event listeners instead of OpenTelemetry's SQLAlchemy instrumentor, which parses the
    engine URL, reads the context several times and records pool metrics on every statement, and
    wraps every `Engine.connect` of the process in a span of its own. Attributes (the statement text
    among them) are set only on spans that are recorded.
    """
    sync_engine = engine.sync_engine
    if sync_engine in _instrumented:
        return
    _instrumented.add(sync_engine)
    tracer = trace.get_tracer("kkmp.sql")
    url = sync_engine.url
    system = sync_engine.dialect.name
    database = url.database or ""
    if system == "sqlite":
        database = database.rsplit("/", 1)[-1]
    static: dict[str, Any] = {"db.system": system, "db.name": database}
    if url.host:
        static["server.address"] = url.host
        static["server.port"] = url.port or 5432

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _start(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, many: bool) -> None:
        operation = statement[:24].split(None, 1)
        span = tracer.start_span(
            f"{operation[0]} {database}" if operation else database, kind=trace.SpanKind.CLIENT
        )
        if span.is_recording():
            span.set_attributes(static)
            span.set_attribute("db.statement", statement)
            if operation:
                span.set_attribute("db.operation", operation[0])
        if context is not None:
            context._kkmp_span = span
        else:
            span.end()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _end(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        span = getattr(context, "_kkmp_span", None)
        if span is not None:
            context._kkmp_span = None
            span.end()

    @event.listens_for(sync_engine, "handle_error")
    def _failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, "_kkmp_span", None)
        if span is not None:
            exception_context.execution_context._kkmp_span = None
            if span.is_recording():
                span.record_exception(exception_context.original_exception)
                span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()
