"""Builds the portal: the common service app (health, metrics, JSON logs, tracing) plus the portal's
session cookie, static files, pages, and HTML error pages.

Run it with ``uvicorn portal.bootstrap:create_app --factory --port 8000``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from kkmp_shared.app import create_service_app
from kkmp_shared.db import new_metadata
from kkmp_shared.messaging.tables import add_messaging_tables
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.adapters.clients import ServiceUnavailable, UpstreamError, Upstreams
from portal.adapters.reference import load_reference
from portal.entrypoints import pages
from portal.entrypoints.lookups import TtlCache
from portal.entrypoints.web import (
    CsrfFailed,
    LoginRequired,
    PageForbidden,
    PageNotFound,
    flash,
    login_redirect,
    render,
    sign_out,
)
from portal.settings import PortalSettings

log = logging.getLogger("portal")

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Scripts, styles, fonts and images only from the portal itself: nothing from a CDN, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds the browser-side protections to every response (pure ASGI: does not buffer streams)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self.headers if h[0] not in present)
                if not is_static and b"cache-control" not in present:
                    # Pages show one person's data: never stored by shared caches or kept after logout.
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _asset_version() -> str:
    """A short hash of the static files, appended to their URLs so browsers may cache them for long."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(str(path.stat().st_size).encode())
            digest.update(str(int(path.stat().st_mtime)).encode())
    return digest.hexdigest()[:10]


class CachedStatic(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=604800"
        return response


# --- error pages ---------------------------------------------------------------------------------------


async def _error_page(
    request: Request, status: int, heading: str, message: str, *, retry: bool = False
) -> Response:
    if request.url.path.startswith(("/health", "/metrics", "/openapi", "/asyncapi")):
        return JSONResponse({"error": {"code": "error", "message": message, "details": None}}, status)
    try:
        return await render(
            request,
            "error.html",
            {"heading": heading, "message": message, "retry": retry},
            status_code=status,
            with_badge=False,
        )
    except Exception:  # the error page itself must never fail into a stack trace
        log.exception("error page failed to render")
        return Response(f"{heading}. {message}", status_code=status, media_type="text/plain; charset=utf-8")


NOT_FOUND = ("Halaman tidak ditemukan", "Halaman yang Anda cari tidak ada atau tidak dapat Anda buka.")


def install_page_handlers(app: FastAPI) -> None:
    """The portal answers people: every error is an Indonesian HTML page, never JSON or a trace."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if exc.message:
            flash(request, exc.message, "error")
        return login_redirect(exc.next_url)

    @app.exception_handler(PageNotFound)
    async def _not_found(request: Request, _: PageNotFound) -> Response:
        return await _error_page(request, 404, *NOT_FOUND)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, _: PageForbidden) -> Response:
        return await _error_page(
            request, 403, "Tidak ada akses", "Halaman ini tidak tersedia untuk peran akun Anda."
        )

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _: CsrfFailed) -> Response:
        return await _error_page(
            request,
            400,
            "Formulir kedaluwarsa",
            "Formulir ini sudah tidak berlaku (mungkin terbuka terlalu lama). "
            "Muat ulang halaman lalu kirim lagi.",
        )

    @app.exception_handler(UpstreamError)
    async def _upstream(request: Request, exc: UpstreamError) -> Response:
        if exc.status == 401:
            sign_out(request)
            flash(request, "Sesi Anda sudah berakhir. Silakan masuk kembali.", "error")
            return login_redirect(request.url.path if request.method == "GET" else "/")
        if exc.status == 404:
            return await _error_page(request, 404, *NOT_FOUND)
        if exc.status == 403:
            return await _error_page(request, 403, "Tidak ada akses", exc.message)
        if isinstance(exc, ServiceUnavailable) or exc.status >= 500:
            log.warning("page failed: upstream trouble", extra={"service": exc.service, "status": exc.status})
            return await _error_page(request, 503, "Layanan sedang terganggu", exc.message, retry=True)
        return await _error_page(request, exc.status, "Permintaan tidak dapat diproses", exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return await _error_page(request, 404, *NOT_FOUND)
        if exc.status_code == 405:
            return await _error_page(
                request, 405, "Tindakan tidak didukung", "Alamat ini tidak menerima cara akses tersebut."
            )
        return await _error_page(
            request, exc.status_code, "Permintaan tidak dapat diproses", "Permintaan tidak dapat diproses."
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _: RequestValidationError) -> Response:
        return await _error_page(
            request, 400, "Alamat tidak valid", "Alamat atau isian yang dikirim tidak valid."
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return await _error_page(
            request,
            500,
            "Terjadi kesalahan",
            "Maaf, terjadi kesalahan di portal. Kejadian ini sudah dicatat; coba lagi.",
            retry=True,
        )


# --- operations ----------------------------------------------------------------------------------------

ops = APIRouter(tags=["operations"])


@ops.get("/health/upstreams", summary="Whether each service the portal calls answers /health/live")
async def upstream_health(request: Request) -> JSONResponse:
    upstreams: Upstreams = request.app.state.upstreams
    targets = {
        "registry": upstreams.registry_url,
        "inventory": upstreams.inventory_url,
        "sourcing": upstreams.sourcing_url,
        "reporting": upstreams.reporting_url,
        "notifications": upstreams.notifications_url,
    }

    async def probe(url: str) -> str:
        try:
            response = await upstreams.http.get(f"{url.rstrip('/')}/health/live", timeout=2)
        except httpx.HTTPError as exc:
            return f"error: {type(exc).__name__}"
        return "ok" if response.status_code == 200 else f"error: {response.status_code}"

    results = await asyncio.gather(*(probe(u) for u in targets.values()))
    checks = dict(zip(targets, results, strict=True))
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503
    )


# --- the app -------------------------------------------------------------------------------------------


def create_app(
    settings: PortalSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The portal app. ``transport`` lets tests route the services' calls to in-process fakes."""
    settings = settings or PortalSettings()
    app = create_service_app(
        settings,
        title="KKMP Portal",
        description="Antarmuka web KKMP dalam Bahasa Indonesia. Membaca dan menulis hanya lewat API layanan.",
        # The factory wants messaging tables and a database; the portal has neither of its own, so it
        # gets an empty in-memory SQLite that nothing writes to (see PortalSettings.database_url).
        tables=add_messaging_tables(new_metadata()),
        migrations=None,
        routers=[ops, pages.router],
    )
    app.state.reference = load_reference(settings.reference_dir)
    app.state.asset_version = _asset_version()
    app.state.cache = TtlCache()

    inner_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with inner_lifespan(app_) as state:
            timeout = httpx.Timeout(
                settings.upstream_timeout_s, connect=min(3.0, settings.upstream_timeout_s)
            )
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
            async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport) as http:
                app_.state.upstreams = Upstreams(
                    http=http,
                    registry_url=settings.registry_url,
                    inventory_url=settings.inventory_url,
                    sourcing_url=settings.sourcing_url,
                    reporting_url=settings.reporting_url,
                    notifications_url=settings.notifications_url,
                )
                yield state

    app.router.lifespan_context = lifespan

    install_page_handlers(app)
    app.mount("/static", CachedStatic(directory=STATIC_DIR), name="static")
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret,
        session_cookie=settings.session_cookie,
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=bool(settings.cookie_secure),
    )
    app.add_middleware(SecurityHeaders, hsts=bool(settings.cookie_secure))
    return app
