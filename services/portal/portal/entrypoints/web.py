"""The plumbing every page shares: templates and their filters, the session (who is signed in, CSRF
token, one-shot messages), access checks, parallel upstream calls that degrade one section at a time,
and the HTML error pages that replace the services' JSON errors.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from kkmp_shared import clock
from portal.adapters.clients import (
    InventoryClient,
    NotificationsClient,
    RegistryClient,
    ReportingClient,
    ServiceUnavailable,
    SourcingClient,
    UpstreamError,
    Upstreams,
)
from portal.adapters.reference import ReferenceData
from portal.domain import format as fmt
from portal.domain import proposals
from portal.domain.identity import User

log = logging.getLogger("portal.web")

T = TypeVar("T")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
_env = templates.env
_env.filters.update(
    rupiah=fmt.rupiah,
    rupiah_ringkas=fmt.rupiah_ringkas,
    angka=fmt.angka,
    jumlah=fmt.jumlah,
    persen=fmt.persen,
    tanggal=fmt.tanggal,
    waktu=fmt.waktu,
    periode=fmt.periode,
    sejak=fmt.sejak,
    durasi_jam=fmt.durasi_jam,
)
_env.globals.update(
    label=fmt.label,
    STOCK_STATUS=fmt.STOCK_STATUS,
    HEALTH_LEVEL=fmt.HEALTH_LEVEL,
    NEED_STATUS=fmt.NEED_STATUS,
    NEED_KIND=fmt.NEED_KIND,
    MOVEMENT_KIND=fmt.MOVEMENT_KIND,
    COOP_STATUS=fmt.COOP_STATUS,
    FORMATION=fmt.FORMATION,
    REDISTRIBUTION_STATUS=fmt.REDISTRIBUTION_STATUS,
    ROLE=fmt.ROLE,
    MEMBER_KIND=fmt.MEMBER_KIND,
    BOARD_ROLE=fmt.BOARD_ROLE,
    BUSINESS_UNIT=fmt.BUSINESS_UNIT,
    HEALTH_FACTOR=fmt.HEALTH_FACTOR,
    TRAINING_STATUS=fmt.TRAINING_STATUS,
    ORDER_STATUS=fmt.ORDER_STATUS,
    DECISION=fmt.DECISION,
    REDISTRIBUTION_REASON=fmt.REDISTRIBUTION_REASON,
    EMPTY=fmt.EMPTY,
)

_env.globals["awaits_answer"] = proposals.awaits_answer


# --- exceptions turned into pages by bootstrap's handlers ----------------------------------------------


class LoginRequired(Exception):
    def __init__(self, next_url: str = "/", message: str | None = None):
        self.next_url = next_url
        self.message = message


class PageNotFound(Exception):
    pass


class PageForbidden(Exception):
    pass


class CsrfFailed(Exception):
    pass


# --- session -------------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Every form POST carries the session's token in a hidden field (double submit, session side)."""
    form = await request.form()
    sent = str(form.get("csrf_token") or request.headers.get("x-csrf-token") or "")
    expected = request.session.get("csrf") or ""
    if not expected or not secrets.compare_digest(sent, expected):
        raise CsrfFailed()


CsrfChecked = Annotated[None, Depends(check_csrf)]


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A message shown once, on the next page rendered (after a redirect)."""
    messages = list(request.session.get("flash") or [])
    messages.append({"kind": kind, "text": text})
    request.session["flash"] = messages[-5:]


def pop_flashes(request: Request) -> list[dict[str, str]]:
    return list(request.session.pop("flash", None) or [])


def sign_in(request: Request, user: User, token: str, expires_in: int) -> None:
    # A fresh session at login: nothing from the anonymous session (old CSRF token included) survives.
    request.session.clear()
    request.session.update(
        {
            "user": user.to_session(),
            "token": token,
            "exp": int(clock.system_seconds()) + max(int(expires_in) - 30, 60),
            "csrf": secrets.token_urlsafe(32),
        }
    )


def sign_out(request: Request) -> None:
    request.session.clear()


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def safe_next(url: str | None, default: str = "/") -> str:
    """Only same-site paths (no scheme, no //host) may be redirect targets."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return default
    return url


# --- the signed-in visit -------------------------------------------------------------------------------


@dataclass
class Visit:
    """One request by a signed-in person: who, with which token, and clients that carry it."""

    request: Request
    user: User
    token: str
    upstreams: Upstreams

    @property
    def registry(self) -> RegistryClient:
        return self.upstreams.registry(self.token)

    @property
    def inventory(self) -> InventoryClient:
        return self.upstreams.inventory(self.token)

    @property
    def sourcing(self) -> SourcingClient:
        return self.upstreams.sourcing(self.token)

    @property
    def reporting(self) -> ReportingClient:
        return self.upstreams.reporting(self.token)

    @property
    def notifications(self) -> NotificationsClient:
        return self.upstreams.notifications(self.token)

    @property
    def reference(self) -> ReferenceData:
        return self.request.app.state.reference

    def ensure_cooperative(self, cooperative_id: str) -> None:
        """A manager opening another cooperative's page gets the same 404 as for an unknown one."""
        if not self.user.may_open_cooperative(cooperative_id):
            raise PageNotFound()


def _requested_path(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


async def signed_in(request: Request) -> Visit:
    data = request.session.get("user")
    token = request.session.get("token")
    if not data or not token:
        raise LoginRequired(_requested_path(request) if request.method == "GET" else "/")
    if int(request.session.get("exp") or 0) < clock.system_seconds():
        sign_out(request)
        raise LoginRequired(
            _requested_path(request) if request.method == "GET" else "/",
            "Sesi Anda sudah berakhir. Silakan masuk kembali.",
        )
    return Visit(request, User.from_session(data), str(token), request.app.state.upstreams)


async def dinkopdag_only(visit: Annotated[Visit, Depends(signed_in)]) -> Visit:
    if not visit.user.is_dinkopdag:
        raise PageForbidden()
    return visit


SignedIn = Annotated[Visit, Depends(signed_in)]
Dinkopdag = Annotated[Visit, Depends(dinkopdag_only)]


# --- upstream calls, section by section ----------------------------------------------------------------


@dataclass
class Outcome(Generic[T]):
    """A section's data, or why it is missing (shown in place of that section only)."""

    value: T | None = None
    error: UpstreamError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str:
        return self.error.message if self.error else ""

    def or_(self, default: T) -> T:
        return default if self.value is None else self.value


async def attempt(call: Awaitable[T]) -> Outcome[T]:
    try:
        return Outcome(await call)
    except UpstreamError as exc:
        if exc.status == 401:
            raise  # the token is no good anywhere: sign out, not a per-section message
        return Outcome(None, exc)


async def gather(**calls: Awaitable[Any]) -> dict[str, Outcome[Any]]:
    """Run the page's upstream calls concurrently; a failing one does not sink the others."""
    names = list(calls)
    results = await asyncio.gather(*(attempt(calls[n]) for n in names))
    return dict(zip(names, results, strict=True))


def required(outcome: Outcome[T]) -> T:
    """The page's main data: without it the page cannot be shown, so its error becomes the page."""
    if outcome.error is not None:
        raise outcome.error
    return outcome.value  # type: ignore[return-value]


# --- rendering -----------------------------------------------------------------------------------------

DINKOPDAG_NAV = [
    ("/dasbor", "Dasbor"),
    ("/koperasi", "Koperasi"),
    ("/kebutuhan", "Kebutuhan"),
    ("/usulan", "Pemindahan stok"),
    ("/pemasok", "Pemasok"),
    ("/potensi", "Potensi"),
    ("/pelatihan", "Pelatihan"),
    ("/ekspor", "Ekspor"),
]


def navigation(user: User | None) -> list[tuple[str, str]]:
    if user is None:
        return []
    if user.is_dinkopdag:
        return DINKOPDAG_NAV
    if user.is_manager and user.cooperative_id:
        base = f"/koperasi/{user.cooperative_id}"
        return [
            (f"{base}/stok", "Stok"),
            (f"{base}/catat", "Catat"),
            (f"{base}/kebutuhan", "Kebutuhan"),
            (f"{base}/usulan", "Pemindahan"),
            (f"{base}/laporan", "Laporan"),
            (base, "Profil"),
        ]
    return []


def current_nav(nav: list[tuple[str, str]], path: str) -> str | None:
    """The menu entry for this page: the longest one that is the path or a parent of it."""
    matches = [href for href, _ in nav if path == href or path.startswith(href + "/")]
    return max(matches, key=len, default=None)


async def unread_count(visit: Visit | None) -> int | None:
    """The badge next to 'Notifikasi'; a slow or absent notifications service never delays a page long."""
    if visit is None:
        return None
    try:
        return await asyncio.wait_for(visit.notifications.unread_count(), timeout=1.5)
    except (UpstreamError, TimeoutError, ValueError):
        return None


async def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    visit: Visit | None = None,
    status_code: int = 200,
    with_badge: bool = True,
) -> HTMLResponse:
    user = visit.user if visit else None
    if user is None and request.session.get("user"):
        user = User.from_session(request.session["user"])
    page: dict[str, Any] = {
        "user": user,
        "nav": navigation(user),
        "csrf_token": csrf_token(request),
        "flashes": pop_flashes(request),
        "unread": await unread_count(visit) if with_badge else None,
        "current_path": request.url.path,
        "current_nav": current_nav(navigation(user), request.url.path),
        "asset_version": request.app.state.asset_version,
    }
    page.update(context or {})
    return templates.TemplateResponse(request, template, page, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def login_redirect(next_url: str) -> RedirectResponse:
    target = "/masuk" if next_url in ("", "/") else f"/masuk?next={quote(next_url, safe='')}"
    return redirect(target)


def upstream_unavailable(exc: UpstreamError) -> bool:
    return isinstance(exc, ServiceUnavailable) or exc.status >= 500


RouteHandler = Callable[..., Awaitable[Any]]
