"""Sourcing's internal events: facts one use case raises (`uow.emit`) and another reacts to through the
bus, in the same transaction. They never leave the service; bootstrap.py says who handles each.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SupplyNeedSubmitted:
    """A cooperative posted a supply need: stalled stock elsewhere may serve it before any supplier."""

    need_id: str
    cooperative_id: str
    commodity: str
