"""Needs (kebutuhan/kendala) as reporting measures them: open or closed, and how fast Dinkopdag responded.

The response time of a need is the time from its submission to its first status change away from
`open` (acknowledged, in progress, resolved or rejected), in whole seconds. A need counts as *open*
until it is resolved or rejected, and as *unanswered* while it is still `open`. Medians follow
`percentile_cont(0.5)`: the mean of the two middle values for an even count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

OPEN_STATUSES = ("open", "acknowledged", "in_progress")
CLOSED_STATUSES = ("resolved", "rejected")


@dataclass(frozen=True)
class NeedState:
    status: str
    submitted_at: datetime
    status_changed_at: datetime | None = None
    first_response_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def response_seconds(self) -> int | None:
        if self.first_response_at is None:
            return None
        return max(0, int((self.first_response_at - self.submitted_at).total_seconds()))


def submitted(existing: NeedState | None, submitted_at: datetime) -> NeedState:
    """`need.submitted`; a status change that overtook it (another queue, a retry) is kept."""
    if existing is None:
        return NeedState(status="open", submitted_at=submitted_at)
    return replace(existing, submitted_at=submitted_at)


def status_changed(
    existing: NeedState | None, *, new_status: str, changed_at: datetime, submitted_at: datetime
) -> NeedState:
    """`need.status_changed`: the newest change sets the status; the earliest is the first response."""
    state = existing or NeedState(status="open", submitted_at=submitted_at)
    changes: dict[str, object] = {}
    if state.status_changed_at is None or changed_at >= state.status_changed_at:
        changes["status"] = new_status
        changes["status_changed_at"] = changed_at
        changes["closed_at"] = changed_at if new_status in CLOSED_STATUSES else None
    if new_status != "open" and (state.first_response_at is None or changed_at < state.first_response_at):
        changes["first_response_at"] = changed_at
    return replace(state, **changes)  # type: ignore[arg-type]


def median(values: Sequence[int | float]) -> float | None:
    """The median of the values (sorted here), or None for none."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def seconds_to_hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 2)
