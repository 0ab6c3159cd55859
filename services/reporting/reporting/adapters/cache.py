"""A small in-process cache of rendered responses, keyed by what they were computed from.

The per-kecamatan list is thousands of rows at national scale but changes only when the refresher
rewrites the kecamatan rows; each entry remembers the version of the figures it was rendered from
(the city row's refresh time) and is served only while that version is current.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from threading import Lock


class RenderedCache:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Hashable, version: Hashable) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, version: Hashable, body: bytes) -> None:
        with self._lock:
            self._entries[key] = (version, body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
