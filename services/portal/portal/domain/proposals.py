"""Redistribution proposals (usulan pemindahan stok): who still has to answer. Pure.

Sourcing records each side's decision separately (``from_side`` / ``to_side``, each with a
``decision``); a proposal stays ``proposed`` until both sides accepted or one declined.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPEN_STATUSES = frozenset({"proposed", "pending", "open"})


def is_open(proposal: Mapping[str, Any]) -> bool:
    return str(proposal.get("status")) in OPEN_STATUSES


def involves(proposal: Mapping[str, Any], cooperative_id: str) -> bool:
    return cooperative_id in (
        str(proposal.get("from_cooperative_id")),
        str(proposal.get("to_cooperative_id")),
    )


def awaits_answer(proposal: Mapping[str, Any], cooperative_id: str | None) -> bool:
    """Whether the proposal still waits for the given cooperative's side (no cooperative: any side)."""
    if not is_open(proposal):
        return False
    sides = []
    if cooperative_id is None or str(proposal.get("from_cooperative_id")) == cooperative_id:
        sides.append(proposal.get("from_side"))
    if cooperative_id is None or str(proposal.get("to_cooperative_id")) == cooperative_id:
        sides.append(proposal.get("to_side"))
    return any(not isinstance(side, Mapping) or not side.get("decision") for side in sides)
