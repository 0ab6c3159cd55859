"""This process's copy of what the stock page of a cooperative is computed from: its directory row, its
stock items and their 28-day sales (the status is still computed at each request's time).

A copy goes when a commit of this process changes the cooperative's stock or directory row
(`STOCK_CHANGED`, `COOPERATIVE_CHANGED`), after `ttl_s` at most (another replica's writes), and when
the sales window moves to a new day. A copy still read is read again in the background before it
expires (`due`/`refreshed`, between half and three quarters of `ttl_s`, spread at random). A read that
started before a change must not store what it read: `ticket` first, and `store` refuses a copy of a
cooperative changed since. Why: docs/decisions/0006-inventory-stock-page-read-copy.md.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from kkmp_shared.directory import KnownCooperative

from inventory.domain.ledger import StockState

Key = tuple[str, str]  # (cooperative_id, commodity)


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    cooperative: KnownCooperative
    states: tuple[StockState, ...]  # read only: shared by every request answered from it
    sold: Mapping[Key, Decimal]  # each item's sales over the window ending on `last_day`
    last_day: date
    refresh_at: float  # from then on a read asks for a fresh copy (`due`), and is still answered
    expires_at: float  # from then on it is not served


class StockReadCache:
    def __init__(self, *, ttl_s: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self.clock = clock
        self.hits = 0  # reads answered from a copy (counted by whoever answers)
        self._entries: OrderedDict[str, StockSnapshot] = OrderedDict()  # least recently used first
        self._tick = 0
        # Cooperative id -> the tick of its last change, for the reads in flight; bounded (see `forget`).
        self._changed_at: dict[str, int] = {}
        self._all_changed_at = 0
        self._refreshing: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.size > 0

    def ticket(self) -> int:
        """Taken by a read before it queries; `store` needs it."""
        self._tick += 1
        return self._tick

    def store(
        self,
        ticket: int,
        cooperative: KnownCooperative,
        states: Iterable[StockState],
        sold: Mapping[Key, Decimal],
        last_day: date,
    ) -> bool:
        """Keep what a read found, unless the cooperative changed since the read's ticket."""
        if not self.enabled:
            return False
        if self._changed_at.get(cooperative.id, 0) >= ticket or self._all_changed_at >= ticket:
            return False
        now = self.clock()
        refresh_in = self.ttl_s * (0.5 + 0.25 * random.random())
        self._entries[cooperative.id] = StockSnapshot(
            cooperative, tuple(states), dict(sold), last_day, now + refresh_in, now + self.ttl_s
        )
        self._entries.move_to_end(cooperative.id)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return True

    def get(self, cooperative_id: str, last_day: date) -> StockSnapshot | None:
        entry = self._entries.get(cooperative_id)
        if entry is None:
            return None
        if entry.last_day != last_day or self.clock() >= entry.expires_at:
            del self._entries[cooperative_id]
            return None
        self._entries.move_to_end(cooperative_id)
        return entry

    def due(self, snapshot: StockSnapshot) -> bool:
        """Whether this copy should be read again now and nobody is reading it yet; if so, the caller
        reads it (and stores what it read), then calls `refreshed` whatever the outcome."""
        if self.clock() < snapshot.refresh_at or snapshot.cooperative.id in self._refreshing:
            return False
        self._refreshing.add(snapshot.cooperative.id)
        return True

    def refreshed(self, cooperative_id: str) -> None:
        self._refreshing.discard(cooperative_id)

    def forget(self, cooperative_ids: Iterable[str]) -> None:
        """These cooperatives changed (called after the commit that changed them)."""
        self._tick += 1
        for cooperative_id in cooperative_ids:
            self._entries.pop(cooperative_id, None)
            self._changed_at[cooperative_id] = self._tick
        if len(self._changed_at) > 4 * self.size:
            # Bounded memory at a nation's scale: from here on every read in flight counts as stale.
            self._changed_at.clear()
            self._all_changed_at = self._tick

    def clear(self) -> None:
        self.forget(())
        self._entries.clear()
        self._changed_at.clear()
        self._all_changed_at = self._tick
