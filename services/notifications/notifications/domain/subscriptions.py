"""A subscription as the fan-out matches it against an event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notifications.domain.routing import event_kecamatans


@dataclass(frozen=True)
class MatchedSubscription:
    id: str
    channel: str
    target: str
    secret: str | None = None
    whole_city: bool = True
    kecamatan_codes: frozenset[str] = frozenset()

    def covers(self, data: Mapping[str, Any]) -> bool:
        """The whole city, or one of the kecamatan the event concerns."""
        return self.whole_city or not self.kecamatan_codes.isdisjoint(event_kecamatans(data))
