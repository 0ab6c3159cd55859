"""The service app factory: every KKMP service is built by `create_service_app`.

It wires what each service would otherwise write again: settings, database and migrations, the outbox
relay, the consumer runner, token verification, error format, body limit, health, metrics, AsyncAPI,
telemetry and logs. A service passes its routers, its tables, its subscriptions and its background jobs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kkmp_shared.auth import JwksKeySource, KeySource, StaticKeySource, TokenVerifier
from kkmp_shared.bootstrap import Platform, build_platform
from kkmp_shared.errors import BodySizeLimitMiddleware, install_error_handlers
from kkmp_shared.events.asyncapi import asyncapi_document
from kkmp_shared.events.contracts import EventData
from kkmp_shared.memory import release_freed_memory
from kkmp_shared.messaging.broker import Broker
from kkmp_shared.messaging.consumer import ConsumerGroup, ConsumerRunner
from kkmp_shared.messaging.outbox import Outbox
from kkmp_shared.messaging.relay import OutboxRelay
from kkmp_shared.messaging.tables import MessagingTables
from kkmp_shared.settings import ServiceSettings
from kkmp_shared.telemetry import (
    HTTP_REQUESTS,
    HTTP_SECONDS,
    instrument_engine,
    setup_logging,
    setup_tracing,
)
from kkmp_shared.unit_of_work import UnitOfWork

log = logging.getLogger("kkmp.app")

AppHook = Callable[[FastAPI], Coroutine[Any, Any, None]]


class _HttpTelemetryMiddleware:
    """A server span and the Prometheus request metrics for each HTTP request, by route template.

    Pure ASGI (no per-request task or body copy), and written here rather than using the OpenTelemetry
    ASGI/FastAPI instrumentor: that one makes three spans per request (the request, and one per
    `send` of the response) and builds their attributes before knowing whether the span is recorded,
    which cost more than a simple read itself. Here the span's attributes are built only when it is
    recorded (see `kkmp_shared.telemetry`: not when no exporter is configured). An incoming W3C
    `traceparent` is continued. Health and metrics requests are counted but not traced.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.tracer = trace.get_tracer("kkmp.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        method: str = scope["method"]
        path: str = scope["path"]
        span: trace.Span | None = None
        token: object | None = None
        if not (path.startswith("/health/") or path == "/metrics"):
            parent = _trace_parent(scope["headers"])
            span = self.tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER)
            token = otel_context.attach(trace.set_span_in_context(span, parent))

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception as exc:
            if span is not None and span.is_recording():
                span.record_exception(exc)
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_SECONDS.labels(self.service, method, template).observe(time.perf_counter() - started)
            if span is not None:
                if span.is_recording():
                    _describe_server_span(span, scope, method, template if route else None, status)
                span.end()
                otel_context.detach(token)  # type: ignore[arg-type]


_PROPAGATED = (b"traceparent", b"tracestate", b"baggage")


def _trace_parent(headers: Sequence[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """The caller's trace context, when the request carries one (most do not)."""
    carrier = {name.decode(): value.decode("latin-1") for name, value in headers if name in _PROPAGATED}
    return propagate.extract(carrier) if carrier else None


def _describe_server_span(
    span: trace.Span, scope: Scope, method: str, route: str | None, status: int
) -> None:
    """Semantic-convention attributes of an HTTP server span (only for spans that are recorded)."""
    if route is not None:
        span.update_name(f"{method} {route}")
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope["path"],
        "network.protocol.version": scope.get("http_version", "1.1"),
        "http.response.status_code": status,
    }
    if route is not None:
        attributes["http.route"] = route
    if scope.get("query_string"):
        attributes["url.query"] = scope["query_string"].decode("latin-1")
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    if scope.get("client"):
        attributes["client.address"] = scope["client"][0]
    for name, value in scope["headers"]:
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
    span.set_attributes(attributes)
    if status >= 500:
        span.set_status(trace.Status(trace.StatusCode.ERROR))


def default_key_source(settings: ServiceSettings) -> KeySource:
    if settings.jwks_file is not None:
        return StaticKeySource.from_file(settings.jwks_file)
    return JwksKeySource(settings.resolved_jwks_url)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    tables: MessagingTables,
    migrations: Path | None,
    routers: Sequence[APIRouter],
    publishes: Sequence[type[EventData]] = (),
    consumers: ConsumerGroup | None = None,
    on_startup: Sequence[AppHook] = (),
    background: Sequence[AppHook] = (),
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
    version: str = "1.0.0",
    metadata: MetaData | None = None,
    middleware: Sequence[type[Any]] = (),
    platform: Platform | None = None,
    state: Mapping[str, Any] | None = None,
    relay_before_drain: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """`middleware`: the service's own ASGI middleware classes (taking only the app), outermost first;
    they run inside the shared ones, so their answers are measured, traced and size-limited too.

    `platform`: the database, outbox and bus the service built first (`build_platform`) and already
    handed to its consumers and use cases; without one, they are built here from `settings`.
    `state`: the service's own dependencies (caches, clients, locks), set on `app.state` here, once.
    `relay_before_drain`: awaited by the outbox relay before each batch (`OutboxRelay.before_drain`)."""
    service = settings.service_name
    platform = platform or build_platform(settings, tables)
    db = platform.db
    outbox = platform.outbox
    broker: Broker | None = None
    relay: OutboxRelay | None = None
    runner: ConsumerRunner | None = None
    if settings.broker_enabled:
        broker = Broker(settings.broker_urls, name=service, exchange=settings.events_exchange)
        relay = OutboxRelay(
            db,
            tables,
            broker,
            service=service,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            before_drain=relay_before_drain,
        )
        if consumers is not None and consumers.subscriptions:
            runner = ConsumerRunner(
                consumers,
                db,
                tables,
                broker,
                prefetch=settings.prefetch,
                retry_delays_ms=settings.retry_delays_ms,
                # Half the prefetch: the next batch is already here while one is applied.
                batch_size=max(1, settings.prefetch // 2),
                linger_s=settings.consumer_linger_ms / 1000,
                linger_max_s=settings.consumer_linger_max_ms / 1000,
                delivery_limit=settings.delivery_limit,
            )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(service, settings.log_level, settings.log_json)
        setup_tracing(
            service, settings.otel_exporter, settings.otel_endpoint, sample_ratio=settings.otel_sample_ratio
        )
        if migrations is not None and settings.migrate_on_start:
            await db.migrate(migrations)
        elif migrations is not None:
            await db.require_head(migrations, service)
        elif metadata is not None:  # tests of the library itself: no Alembic directory
            async with db.engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        instrument_engine(db.engine)
        app.state.verifier = TokenVerifier(
            (key_source or default_key_source)(settings),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        for hook in on_startup:
            await hook(app)
        tasks: list[asyncio.Task[Any]] = []
        if broker is not None and relay is not None:
            tasks.append(asyncio.create_task(broker.run(), name=f"{service}:broker"))
            tasks.append(asyncio.create_task(relay.run(), name=f"{service}:relay"))
        for job in background:
            tasks.append(asyncio.create_task(job(app), name=f"{service}:{job.__name__}"))
        tasks.append(asyncio.create_task(release_freed_memory(), name=f"{service}:release_freed_memory"))
        # What exists now (modules, routes, schemas, compiled statements: about 150,000 objects) lives as
        # long as the process. Out of the collector's sight, a full collection takes a few milliseconds
        # instead of about a hundred, during which every request in flight waits. Undone at shutdown so
        # a test process that starts many apps can still collect them.
        gc.collect()
        gc.freeze()
        log.info("%s started on port %s", service, settings.port)
        try:
            yield
        finally:
            gc.unfreeze()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task
            if runner is not None:
                await runner.stop()
            if broker is not None:
                await broker.stop()
            await db.dispose()

    # FastAPI's own telemetry is off: `_HttpTelemetryMiddleware` makes the request's span.
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.platform = platform
    app.state.db = db
    app.state.outbox = outbox
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    app.state.broker = broker
    app.state.relay = relay
    app.state.runner = runner
    app.state.max_page_size = settings.max_page_size
    app.state.service = service

    install_error_handlers(app)
    for own in reversed(middleware):
        app.add_middleware(own)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(_HttpTelemetryMiddleware, service=service)  # outermost: sees 413s too

    published = list(publishes)
    consumed = consumers.consumed_models if consumers else []
    queues = consumers.queues() if consumers else {}

    @app.get("/health/live", tags=["operations"], summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/health/ready",
        tags=["operations"],
        summary="Database and broker reachable, consumers attached",
        responses={503: {"description": "Not ready"}},
    )
    async def ready() -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(db.ping(), timeout=3)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if broker is not None:
            checks["broker"] = "ok" if broker.is_connected else f"error: {broker.last_error or 'connecting'}"
        if runner is not None:
            missing = runner.missing_consumers()
            checks["consumers"] = "ok" if not missing else {"missing": missing}
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ok else "not_ready", "service": service, "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["operations"], summary="The events this service publishes and consumes")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(service, published, consumed, settings.events_exchange, queues)

    for router in routers:
        app.include_router(router)
    return app


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.session() as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.read_session() as session:
        yield session


async def _unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    platform: Platform = request.app.state.platform
    async with platform.unit_of_work() as uow:
        yield uow


def _outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


SessionDep = Annotated[AsyncSession, Depends(_session)]
# For routes that only read: on PostgreSQL no BEGIN/ROLLBACK round trips (see `Database.read_session`).
ReadSessionDep = Annotated[AsyncSession, Depends(_read_session)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
# A route's business transaction: it commits after the route returns and before the answer is sent
# (scope "function"), so a failed commit is answered as an error, never after a 2xx.
UowDep = Annotated[UnitOfWork, Depends(_unit_of_work, scope="function")]
