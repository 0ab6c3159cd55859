"""Short-lived caches for the lists many pages need to turn ids into names.

Needs, stalled items and proposals carry cooperative ids and commodity codes; a page shows names. The
commodity catalogue is the same for everyone; the cooperative list depends on the caller's scope, so it
is cached per scope (role, kecamatan codes, cooperative). Both expire after a minute or so: a new
cooperative shows up quickly, and a page never pays for 153 lookups.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from portal.entrypoints.web import Visit, gather

COOPERATIVES_TTL_S = 60.0
COMMODITIES_TTL_S = 300.0


class TtlCache:
    def __init__(self) -> None:
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._lock = asyncio.Lock()

    async def get(self, key: Any, ttl: float, load: Callable[[], Awaitable[Any]]) -> Any:
        entry = self._entries.get(key)
        if entry and entry[0] > time.monotonic():
            return entry[1]
        value = await load()
        async with self._lock:
            self._entries[key] = (time.monotonic() + ttl, value)
            if len(self._entries) > 256:  # bounded: drop the oldest entries
                for old in sorted(self._entries, key=lambda k: self._entries[k][0])[:64]:
                    self._entries.pop(old, None)
        return value


def _scope(visit: Visit) -> tuple[Any, ...]:
    user = visit.user
    return (user.role, user.kecamatan_codes, user.cooperative_id)


async def cooperatives_by_id(visit: Visit) -> dict[str, dict[str, Any]]:
    cache: TtlCache = visit.request.app.state.cache

    async def load() -> dict[str, dict[str, Any]]:
        if visit.user.is_manager and visit.user.cooperative_id:
            coop = await visit.registry.cooperative(visit.user.cooperative_id)
            return {str(coop.get("id")): coop}
        return {str(c.get("id")): c for c in await visit.registry.all_cooperatives()}

    return await cache.get(("cooperatives", _scope(visit)), COOPERATIVES_TTL_S, load)


async def commodities_by_code(visit: Visit) -> dict[str, dict[str, Any]]:
    cache: TtlCache = visit.request.app.state.cache

    async def load() -> dict[str, dict[str, Any]]:
        return {str(c.get("code")): c for c in await visit.inventory.commodities()}

    return await cache.get(("commodities",), COMMODITIES_TTL_S, load)


def coop_name(coops: dict[str, dict[str, Any]], cooperative_id: Any, fallback: str | None = None) -> str:
    coop = coops.get(str(cooperative_id))
    if coop and coop.get("name"):
        return str(coop["name"])
    return fallback or f"Koperasi #{cooperative_id}"


def commodity_name(commodities: dict[str, dict[str, Any]], code: Any) -> str:
    item = commodities.get(str(code))
    if item and item.get("name"):
        return str(item["name"])
    return str(code or "").replace("_", " ").capitalize()


def commodity_unit(commodities: dict[str, dict[str, Any]], code: Any) -> str | None:
    item = commodities.get(str(code))
    return str(item["unit"]) if item and item.get("unit") else None


class Names:
    """What templates use to print names for ids: ``names.coop(id)``, ``names.commodity(code)``..."""

    def __init__(
        self,
        visit: Visit,
        coops: dict[str, dict[str, Any]] | None = None,
        commodities: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self._reference = visit.reference
        self._coops = coops or {}
        self._commodities = commodities or {}

    def coop(self, cooperative_id: Any, fallback: str | None = None) -> str:
        return coop_name(self._coops, cooperative_id, fallback)

    def commodity(self, code: Any) -> str:
        return commodity_name(self._commodities, code)

    def unit(self, code: Any) -> str | None:
        return commodity_unit(self._commodities, code)

    def kecamatan(self, code: Any) -> str:
        return self._reference.kecamatan_name(str(code or ""))

    def kelurahan(self, code: Any) -> str:
        return self._reference.kelurahan_name(str(code or ""))

    def coop_kecamatan(self, cooperative_id: Any) -> str:
        coop = self._coops.get(str(cooperative_id)) or {}
        return self.kecamatan(coop.get("kecamatan_code"))


async def names_for(visit: Visit, *, coops: bool = True, commodities: bool = True) -> Names:
    """Names with whatever lookups succeed; a failing lookup only means ids are shown instead."""
    calls: dict[str, Awaitable[Any]] = {}
    if coops:
        calls["coops"] = cooperatives_by_id(visit)
    if commodities:
        calls["commodities"] = commodities_by_code(visit)
    results = await gather(**calls)
    return Names(
        visit,
        results["coops"].or_({}) if coops else None,
        results["commodities"].or_({}) if commodities else None,
    )
