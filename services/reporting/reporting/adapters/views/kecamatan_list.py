"""The per-kecamatan list, rendered incrementally.

At national scale the list is some 7,300 rows, and events keep the refresher rewriting a few of them
every second. Rendering all of them per request costs hundreds of milliseconds; instead each row's
JSON is kept, a request re-renders only the rows refreshed since the last render (their
`refreshed_at` is at or after the newest one seen), and the joined body is kept for as long as the
city row (rewritten by every refresh that touched any kecamatan) has not moved. A change in the number
of rows (a rebuild) renders everything again.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import figures, orm
from reporting.adapters.cache import RenderedCache
from reporting.adapters.views import dashboard


def render(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


class KecamatanList:
    def __init__(self) -> None:
        self.bodies = RenderedCache()
        self._rows: dict[str, bytes] = {}
        self._newest: datetime | None = None
        self._empty: dict[tuple[str, str], bytes] = {}
        self._lock = asyncio.Lock()

    async def body(
        self, session: AsyncSession, scope: list[str] | None, names: dict[str, str], period: str
    ) -> bytes:
        version = await dashboard.figures_version(session)
        key = tuple(scope) if scope is not None else None
        if version is not None and (cached := self.bodies.get(key, version)) is not None:
            return cached
        async with self._lock:  # one catch-up at a time; the others then find it done
            await self._catch_up(session, names, period)
            stored = self._rows
        codes = sorted(set(scope) if scope is not None else set(stored) | set(names))
        parts = [stored[code] if code in stored else self._empty_row(code, names, period) for code in codes]
        body = b"[" + b",".join(parts) + b"]"
        if version is not None:
            self.bodies.put(key, version, body)
        return body

    async def _catch_up(self, session: AsyncSession, names: dict[str, str], period: str) -> None:
        k = orm.kecamatan_figures
        count = int(
            (await session.execute(select(func.count()).where(k.c.kecamatan_code != orm.ALL))).scalar_one()
        )
        everything = count != len(self._rows) or self._newest is None
        query = select(k).where(k.c.kecamatan_code != orm.ALL)
        if not everything:
            # At or after: rows written later in the same refresh cycle carry the same time.
            query = query.where(k.c.refreshed_at >= self._newest)
        rows = (await session.execute(query)).all()
        if everything:
            self._rows, self._newest = {}, None
        for row in rows:
            payload = dashboard.figures_payload(row, row.median_response_seconds, None, period)
            del payload["as_of"]
            code = row.kecamatan_code
            self._rows[code] = render({"kecamatan_code": code, "name": names.get(code, code), **payload})
            if self._newest is None or row.refreshed_at > self._newest:
                self._newest = row.refreshed_at

    def _empty_row(self, code: str, names: dict[str, str], period: str) -> bytes:
        """A kecamatan where nothing has happened yet (zeros), rendered once per period."""
        cached = self._empty.get((code, period))
        if cached is None:
            payload = dashboard.figures_payload(figures.KecamatanCounts(), None, None, period)
            del payload["as_of"]
            cached = render({"kecamatan_code": code, "name": names.get(code, code), **payload})
            self._empty[(code, period)] = cached
        return cached
