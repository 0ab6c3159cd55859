"""Traces, metrics and structured logs, the same in every service.

A real SDK tracer provider is always installed (even with the exporter off) so that every request and
message has a trace id that travels through the outbox and the broker into each consumer.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from prometheus_client import Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

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

_provider: TracerProvider | None = None


def setup_tracing(
    service: str,
    exporter: str = "off",
    endpoint: str | None = None,
    extra_exporter: SpanExporter | None = None,
) -> TracerProvider:
    """Install the tracer provider once per process; later calls add exporters to it."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(_provider)
        if exporter == "console":
            _provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        elif exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if extra_exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(extra_exporter))
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


def instrument_engine(engine: Any) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentor declares support up to SQLAlchemy 2.0 only; the engine events it hooks are the same
    # in 2.1, so the dependency check is skipped rather than losing SQL spans.
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, enable_commenter=False, skip_dep_check=True
    )
