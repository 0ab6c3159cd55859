"""`GET /cooperatives/{id}/stock` answered from this process's copy of the cooperative's stock.

An ASGI middleware in front of the routes (inside the telemetry and body-limit middlewares). It answers
only when everything the route would check can be decided without a round trip, and the answer is the
route's own (the same `stock_lines` and encoding):
- a plain GET of the page, without a query string;
- a bearer token the verifier has already accepted and still accepts (`TokenVerifier.cached`);
- a fresh copy of the cooperative (`StockReadCache`, stored by the route) that this principal may read;
- a fresh copy of the catalogue.

Anything else (the first read, another principal's first read, filters, errors of every kind) goes to
the route, which answers it and stores the copy. The route's cost is FastAPI's dependency handling and
two queries, about 1.4 ms of CPU per request on the benchmark machine; this path costs a small part of
that, which is what lets the page keep a p99 under 50 ms at 64 connections (`make bench`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from kkmp_shared.auth import TokenVerifier
from starlette.types import ASGIApp, Receive, Scope, Send

from inventory.adapters import repository
from inventory.adapters.stock_cache import StockReadCache
from inventory.domain.detection import sales_window
from inventory.entrypoints.api import STOCK_PAGE, stock, stock_lines, stock_lines_body

_PREFIX, _SUFFIX = "/cooperatives/", "/stock"
_BEARER = b"bearer "
_PAGE_ROUTE = next(r for r in stock.routes if getattr(r, "path", None) == STOCK_PAGE)


class CachedStockPage:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["query_string"]
            and scope["path"].startswith(_PREFIX)
            and scope["path"].endswith(_SUFFIX)
        ):
            body = await self._answer(scope)
            if body is not None:
                scope["route"] = _PAGE_ROUTE  # for the request metrics, as the router sets it
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> bytes | None:
        state = scope["app"].state
        cache: StockReadCache = state.stock_cache
        if not cache.enabled:
            return None
        cooperative_id = scope["path"][len(_PREFIX) : -len(_SUFFIX)]
        now = datetime.now(UTC)
        snapshot = cache.get(cooperative_id, sales_window(now)[1])
        if snapshot is None:
            return None
        token = _bearer_token(scope["headers"])
        if token is None:
            return None
        verifier: TokenVerifier = state.verifier
        principal = await verifier.cached(token)
        coop = snapshot.cooperative
        if (
            principal is None
            or principal.role == "supplier"
            or not principal.can_read_cooperative(coop.id, coop.kecamatan_code)
        ):
            return None
        catalogue = repository.catalogue_if_fresh(state.db.engine)
        if catalogue is None:
            return None
        body = stock_lines_body(stock_lines(snapshot.states, catalogue, snapshot.sold, now))
        cache.hits += 1
        return body


def _bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() == _BEARER and len(value) > 7:
                return value[7:].decode("latin-1")
            return None
    return None
