"""`GET /cooperatives/{id}/stock` answered from this process's copy of the cooperative's stock, with no
round trip, when everything the route would check can be decided without one: a plain GET without a
query string, a bearer token the verifier already accepted, a fresh copy (`StockReadCache`, stored by
the route) this principal may read, and the catalogue's copy. The answer is the route's own (the same
`views.stock_lines` and encoding); anything else goes to the route.
Why and what it saves: docs/decisions/0006-inventory-stock-page-read-copy.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import TokenVerifier
from kkmp_shared.db import Database
from starlette.types import ASGIApp, Receive, Scope, Send

from inventory.adapters import repository
from inventory.adapters.stock_cache import StockReadCache
from inventory.domain.detection import sales_window
from inventory.entrypoints.api import STOCK_PAGE, stock, stock_lines_body
from inventory.service_layer.views import stock_lines, stock_of

log = logging.getLogger("kkmp.inventory.stock_cache")

_PREFIX, _SUFFIX = "/cooperatives/", "/stock"
_BEARER = b"bearer "
_PAGE_ROUTE = next(r for r in stock.routes if getattr(r, "path", None) == STOCK_PAGE)


class CachedStockPage:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._refreshes: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak refs)
        self._catalogue_load: asyncio.Task[None] | None = None

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
        now = clock.now()
        snapshot = cache.get(cooperative_id, sales_window(now)[1])
        if snapshot is None:
            return None
        token = _bearer_token(scope["headers"])
        if token is None:
            return None
        verifier: TokenVerifier = state.verifier
        principal = await verifier.cached(token)
        coop = snapshot.cooperative
        # The route's rule (`ensure_can_read`); a supplier reads no cooperative's stock.
        if principal is None or not principal.can_read_cooperative(coop.id, coop.kecamatan_code):
            return None
        catalogue, fresh = repository.catalogue_copy(state.db.engine)
        if catalogue is None:  # forgotten after a change: one read loads it, the others wait for it
            try:
                catalogue = await _load_catalogue(state.db)
            except Exception:  # the route meets the same failure and answers it
                return None
        elif not fresh and (self._catalogue_load is None or self._catalogue_load.done()):
            # Past its time: served while one reload runs (a change made through another replica is
            # seen a reload later than CATALOGUE_TTL_S, a change made here at once).
            self._catalogue_load = asyncio.create_task(_reload_catalogue(state.db))
        body = stock_lines_body(stock_lines(snapshot.states, catalogue, snapshot.sold, now))
        cache.hits += 1
        if cache.due(snapshot):
            task = asyncio.create_task(_refresh(state.db, cache, coop.id))
            self._refreshes.add(task)
            task.add_done_callback(self._refreshes.discard)
        return body


async def _load_catalogue(db: Database) -> dict[str, Any]:
    async with db.read_session() as session:
        return await repository.cached_catalogue(session)


async def _reload_catalogue(db: Database) -> None:
    try:
        await _load_catalogue(db)
    except Exception:  # the copy is still served; the next read past its time tries again
        log.warning("catalogue copy not reloaded", exc_info=True)


async def _refresh(db: Database, cache: StockReadCache, cooperative_id: str) -> None:
    """Read a cooperative's copy again, in the background, before it expires (see `stock_cache`)."""
    try:
        ticket = cache.ticket()
        async with db.read_session() as session:
            coop, states, sold, last_day = await stock_of(session, cooperative_id, clock.now())
        if coop is None:
            cache.forget([cooperative_id])
        else:
            cache.store(ticket, coop, states, sold, last_day)
    except Exception:
        log.warning("stock copy of %s not refreshed", cooperative_id, exc_info=True)
    finally:
        cache.refreshed(cooperative_id)


def _bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() == _BEARER and len(value) > 7:
                return value[7:].decode("latin-1")
            return None
    return None
