"""One small typed client per service, over a shared ``httpx.AsyncClient``, carrying the user's token.

The portal owns no data: every figure on a page comes from one of these calls. Each client knows only
its service's public paths (CONTRACT.md). Failures become ``UpstreamError`` (the service answered 4xx/5xx,
with the contract's error body parsed) or ``ServiceUnavailable`` (it could not be reached or timed out),
so pages can show an Indonesian sentence instead of a stack trace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from portal.domain.messages import UNREACHABLE, field_errors, message_for, service_name
from pydantic import BaseModel

log = logging.getLogger("portal.upstream")

Json = Any


class UpstreamError(Exception):
    """A service answered with an error status."""

    def __init__(self, service: str, status: int, code: str | None, raw_message: str, details: Any = None):
        super().__init__(f"{service} answered {status} {code}: {raw_message}")
        self.service = service
        self.status = status
        self.code = code
        self.raw_message = raw_message
        self.details = details

    @property
    def message(self) -> str:
        """The Indonesian sentence to show."""
        return message_for(self.status, self.code, self.service)

    @property
    def fields(self) -> dict[str, str]:
        """Indonesian per-field messages for a 422, keyed by the API's field name."""
        return field_errors(self.details) if self.status == 422 else {}


class ServiceUnavailable(UpstreamError):
    """A service could not be reached (refused, timed out, broken connection)."""

    def __init__(self, service: str, reason: str):
        super().__init__(service, 503, "service_unavailable", reason)

    @property
    def message(self) -> str:
        return UNREACHABLE.format(service=service_name(self.service))


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = 3600


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def items_of(payload: Json) -> list[dict[str, Any]]:
    """A list endpoint's rows whether it answers a bare list or ``{"items": [...]}``."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in ("items", "data", "results"):
            if isinstance(payload.get(key), list):
                return payload[key]
    return []


def _error_from(service: str, response: httpx.Response) -> UpstreamError:
    code: str | None = None
    message = response.reason_phrase or ""
    details: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message") or message
            details = error.get("details")
        elif "detail" in body:  # plain FastAPI shape, in case a service slips
            details = body["detail"]
            message = details if isinstance(details, str) else message
    return UpstreamError(service, response.status_code, code, str(message), details)


class ServiceClient:
    service: ClassVar[str] = ""

    def __init__(self, http: httpx.AsyncClient, base_url: str, token: str | None = None) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._token = token

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if extra:
            headers.update(extra)
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Json = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = await self._http.request(
                method,
                f"{self._base}{path}",
                params=clean or None,
                json=json,
                data=data,
                headers=self._headers(headers),
            )
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            log.warning(
                "upstream unreachable", extra={"service": self.service, "path": path, "error": repr(exc)}
            )
            raise ServiceUnavailable(self.service, repr(exc)) from exc
        if response.status_code >= 400:
            error = _error_from(self.service, response)
            level = logging.WARNING if response.status_code >= 500 else logging.INFO
            log.log(
                level,
                "upstream error",
                extra={
                    "service": self.service,
                    "path": path,
                    "status": response.status_code,
                    "code": error.code,
                },
            )
            raise error
        return response

    async def get(self, path: str, **params: Any) -> Json:
        response = await self.request("GET", path, params=params)
        return response.json() if response.content else None

    async def post(self, path: str, body: Json = None, headers: dict[str, str] | None = None) -> Json:
        response = await self.request("POST", path, json=body, headers=headers)
        return response.json() if response.content else None

    async def open_stream(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """A streamed GET (for exports). Errors are raised like ``request``, before any byte is passed on;
        on success the caller reads the body and must ``aclose()`` the response."""
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        request = self._http.build_request(
            "GET", f"{self._base}{path}", params=clean or None, headers=self._headers({"Accept": "*/*"})
        )
        try:
            response = await self._http.send(request, stream=True)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise ServiceUnavailable(self.service, repr(exc)) from exc
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise _error_from(self.service, response)
        return response


class RegistryClient(ServiceClient):
    service = "registry"

    async def token(self, username: str, password: str, client_ip: str | None = None) -> TokenResponse:
        """Sign in. `client_ip` is the person's address, passed on as X-Forwarded-For so the registry
        throttles failed logins per person rather than per portal (the registry's uvicorn trusts the
        header from the addresses in its FORWARDED_ALLOW_IPS, 127.0.0.1 and ::1 by default)."""
        response = await self.request(
            "POST",
            "/auth/token",
            data={"grant_type": "password", "username": username, "password": password},
            headers={"X-Forwarded-For": client_ip} if client_ip else None,
        )
        return TokenResponse.model_validate(response.json())

    async def kecamatan(self) -> list[dict[str, Any]]:
        return items_of(await self.get("/regions/kecamatan"))

    async def kelurahan(self, kecamatan_code: str | None = None) -> list[dict[str, Any]]:
        return items_of(await self.get("/regions/kelurahan", kecamatan_code=kecamatan_code))

    async def cooperatives(
        self,
        *,
        kecamatan_code: str | None = None,
        status: str | None = None,
        q: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        payload = await self.get(
            "/cooperatives", kecamatan_code=kecamatan_code, status=status, q=q, limit=limit, offset=offset
        )
        rows = items_of(payload)
        total = payload.get("total", len(rows)) if isinstance(payload, dict) else len(rows)
        return Page(rows, int(total))

    async def all_cooperatives(self, page_size: int = 500) -> list[dict[str, Any]]:
        """Every cooperative the caller may see (153 in Surabaya: one or two pages)."""
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await self.cooperatives(limit=page_size, offset=offset)
            rows.extend(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total or offset > 5000:
                return rows

    async def cooperative(self, cooperative_id: str) -> dict[str, Any]:
        return await self.get(f"/cooperatives/{cooperative_id}")

    async def members(self, cooperative_id: str) -> list[dict[str, Any]]:
        return items_of(await self.get(f"/cooperatives/{cooperative_id}/members", limit=500))

    async def potentials(self, kelurahan_code: str) -> list[dict[str, Any]]:
        return items_of(await self.get(f"/kelurahan/{kelurahan_code}/potentials"))

    async def trainings(self, cooperative_id: str | None = None) -> list[dict[str, Any]]:
        return items_of(await self.get("/trainings", cooperative_id=cooperative_id))


class InventoryClient(ServiceClient):
    service = "inventory"

    async def commodities(self) -> list[dict[str, Any]]:
        return items_of(await self.get("/commodities"))

    async def stock(self, cooperative_id: str) -> list[dict[str, Any]]:
        return items_of(await self.get(f"/cooperatives/{cooperative_id}/stock"))

    async def movements(self, cooperative_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Recent movements, newest first (not in the contract's list; callers treat failure as 'none')."""
        return items_of(await self.get(f"/cooperatives/{cooperative_id}/movements", limit=limit))

    async def record_movement(
        self, cooperative_id: str, movement: dict[str, Any], idempotency_key: str
    ) -> Json:
        return await self.post(
            f"/cooperatives/{cooperative_id}/movements",
            movement,
            headers={"Idempotency-Key": idempotency_key},
        )


class SourcingClient(ServiceClient):
    service = "sourcing"

    async def suppliers(self, commodity: str | None = None) -> list[dict[str, Any]]:
        return items_of(await self.get("/suppliers", commodity=commodity))

    async def needs(
        self,
        *,
        status: str | None = None,
        cooperative_id: str | None = None,
        kind: str | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Needs in the caller's scope (newest first; one page of up to ``limit``, the services' maximum)."""
        return items_of(
            await self.get("/needs", status=status, cooperative_id=cooperative_id, kind=kind, limit=limit)
        )

    async def need(self, need_id: str) -> dict[str, Any]:
        return await self.get(f"/needs/{need_id}")

    async def submit_need(self, need: dict[str, Any]) -> dict[str, Any]:
        return await self.post("/needs", need)

    async def change_need_status(
        self, need_id: str, status: str, note: str | None = None, assigned_to: str | None = None
    ) -> Json:
        body: dict[str, Any] = {"status": status}
        if note:
            body["note"] = note
        if assigned_to:
            body["assigned_to"] = assigned_to
        return await self.post(f"/needs/{need_id}/status", body)

    async def redistributions(
        self,
        *,
        commodity: str | None = None,
        status: str | None = None,
        cooperative_id: str | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        return items_of(
            await self.get(
                "/redistributions",
                commodity=commodity,
                status=status,
                cooperative_id=cooperative_id,
                limit=limit,
            )
        )

    async def decide_redistribution(self, proposal_id: str, accept: bool) -> Json:
        return await self.post(f"/redistributions/{proposal_id}/{'accept' if accept else 'decline'}", {})

    async def place_order(self, need_id: str, supplier_id: str, quantity: float) -> Json:
        return await self.post(
            "/orders", {"need_id": need_id, "supplier_id": supplier_id, "quantity": quantity}
        )

    async def orders(self, need_id: str | None = None) -> list[dict[str, Any]]:
        return items_of(await self.get("/orders", need_id=need_id, limit=100))


class ReportingClient(ServiceClient):
    service = "reporting"

    async def summary(self) -> dict[str, Any]:
        return await self.get("/dashboard/summary")

    async def kecamatan(self) -> list[dict[str, Any]]:
        return items_of(await self.get("/kecamatan"))

    async def health(self, cooperative_id: str) -> dict[str, Any]:
        return await self.get(f"/cooperatives/{cooperative_id}/health")

    async def stalled(self) -> list[dict[str, Any]]:
        return items_of(await self.get("/stalled"))

    async def reports(self, cooperative_id: str) -> list[dict[str, Any]]:
        return items_of(await self.get(f"/cooperatives/{cooperative_id}/reports"))

    async def submit_report(self, cooperative_id: str, report: dict[str, Any]) -> Json:
        return await self.post(f"/cooperatives/{cooperative_id}/reports", report)

    async def cooperatives_health(self) -> list[dict[str, Any]]:
        """Every cooperative with its health level (not in the contract; callers degrade without it)."""
        return items_of(await self.get("/cooperatives", limit=500))

    async def timeseries(self, weeks: int = 12) -> dict[str, Any]:
        """Weekly series for the dashboard charts (beyond the contract's list; optional)."""
        return await self.get("/dashboard/timeseries", weeks=weeks)


class NotificationsClient(ServiceClient):
    service = "notifications"

    async def inbox(self, unread: bool | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return items_of(
            await self.get(
                "/me/notifications", unread=None if unread is None else str(unread).lower(), limit=limit
            )
        )

    async def mark_read(self, notification_id: str) -> Json:
        return await self.post(f"/me/notifications/{notification_id}/read", {})

    async def unread_count(self) -> int:
        """For the badge: ``GET /me/notifications/summary`` → ``{"total", "unread"}``."""
        summary = await self.get("/me/notifications/summary")
        return int((summary or {}).get("unread") or 0)

    async def mark_all_read(self) -> Json:
        return await self.post("/me/notifications/read-all", {})


@dataclass(frozen=True)
class Upstreams:
    """The services' base URLs plus the pooled HTTP client; makes per-user clients."""

    http: httpx.AsyncClient
    registry_url: str
    inventory_url: str
    sourcing_url: str
    reporting_url: str
    notifications_url: str

    def registry(self, token: str | None = None) -> RegistryClient:
        return RegistryClient(self.http, self.registry_url, token)

    def inventory(self, token: str | None) -> InventoryClient:
        return InventoryClient(self.http, self.inventory_url, token)

    def sourcing(self, token: str | None) -> SourcingClient:
        return SourcingClient(self.http, self.sourcing_url, token)

    def reporting(self, token: str | None) -> ReportingClient:
        return ReportingClient(self.http, self.reporting_url, token)

    def notifications(self, token: str | None) -> NotificationsClient:
        return NotificationsClient(self.http, self.notifications_url, token)
