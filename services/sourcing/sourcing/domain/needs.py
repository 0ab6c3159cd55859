"""Needs (kebutuhan/kendala): their lifecycle and the response-time figures the department is judged on.

Lifecycle: open → acknowledged → in_progress → resolved, or rejected from any open state. An officer may
go straight from open to in_progress (taking a need on acknowledges it). The first answer to an open need
ends its response time; resolution time runs from submission to `resolved`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

NEED_KINDS = ("supply", "capital", "training", "other")
NEED_STATUSES = ("open", "acknowledged", "in_progress", "resolved", "rejected")
ACTIVE_STATUSES = ("open", "acknowledged", "in_progress")
CLOSED_STATUSES = ("resolved", "rejected")

ALLOWED_STATUS_CHANGES: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "in_progress", "rejected"}),
    "acknowledged": frozenset({"in_progress", "rejected"}),
    "in_progress": frozenset({"resolved", "rejected"}),
    "resolved": frozenset(),
    "rejected": frozenset(),
}

ANSWER_WITHIN = timedelta(hours=24)


class IllegalStatusChange(Exception):
    def __init__(self, old: str, new: str) -> None:
        allowed = ", ".join(sorted(ALLOWED_STATUS_CHANGES.get(old, ()))) or "none"
        super().__init__(f"A need cannot go from '{old}' to '{new}' (allowed from '{old}': {allowed}).")
        self.old = old
        self.new = new
        self.allowed = sorted(ALLOWED_STATUS_CHANGES.get(old, ()))


def check_status_change(old: str, new: str) -> None:
    """Raise IllegalStatusChange unless the lifecycle allows old → new."""
    if new not in ALLOWED_STATUS_CHANGES.get(old, frozenset()):
        raise IllegalStatusChange(old, new)


def answers_need(old: str) -> bool:
    """Whether a change from `old` is the first answer to the need (ends its response time)."""
    return old == "open"


@dataclass(frozen=True)
class NeedTimes:
    status: str
    submitted_at: datetime
    responded_at: datetime | None
    resolved_at: datetime | None


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def response_figures(needs: Iterable[NeedTimes], now: datetime) -> dict[str, object]:
    """Counts by status, response and resolution hours, and the share answered within 24 hours.

    A need still unanswered counts against the 24-hour share once it is older than 24 hours; one
    younger than that is left out, since it may yet be answered in time.
    """
    rows = list(needs)
    by_status = {s: 0 for s in NEED_STATUSES}
    response: list[float] = []
    resolution: list[float] = []
    within = judged = overdue = 0
    for n in rows:
        by_status[n.status] = by_status.get(n.status, 0) + 1
        if n.responded_at is not None:
            waited = n.responded_at - n.submitted_at
            response.append(_hours(waited))
            judged += 1
            within += waited <= ANSWER_WITHIN
        elif now - n.submitted_at > ANSWER_WITHIN:
            judged += 1
            overdue += n.status == "open"
        if n.status == "resolved" and n.resolved_at is not None:
            resolution.append(_hours(n.resolved_at - n.submitted_at))
    oldest_open = max((_hours(now - n.submitted_at) for n in rows if n.status == "open"), default=None)
    return {
        "total": len(rows),
        "open": by_status["open"],
        "by_status": by_status,
        "answered": len(response),
        "median_response_hours": _round(statistics.median(response)) if response else None,
        "avg_response_hours": _round(statistics.fmean(response)) if response else None,
        "median_resolution_hours": _round(statistics.median(resolution)) if resolution else None,
        "avg_resolution_hours": _round(statistics.fmean(resolution)) if resolution else None,
        "answered_within_24h_share": round(within / judged, 4) if judged else None,
        "unanswered_over_24h": overdue,
        "oldest_open_hours": _round(oldest_open),
    }
