"""When a daily digest (ringkasan harian) is due: once a day at a fixed hour, Surabaya time."""

from __future__ import annotations

from datetime import datetime, timedelta

from kkmp_shared.clock import WIB
from kkmp_shared.locale_id import to_wib


def latest_digest_boundary(as_of: datetime, hour_wib: int) -> datetime:
    """The most recent digest moment at or before `as_of` (today's hour, or yesterday's)."""
    local = to_wib(as_of)
    boundary = local.replace(hour=hour_wib, minute=0, second=0, microsecond=0)
    if boundary > local:
        boundary -= timedelta(days=1)
    return boundary.astimezone(WIB)


def digest_due(as_of: datetime, hour_wib: int, last_sent: datetime | None, chose_at: datetime | None) -> bool:
    """Due when a digest moment has passed since the last digest (or since the user chose digests):
    a user who switches to digests at 10:00 gets the first one the next morning, not at once."""
    since = max((t for t in (last_sent, chose_at) if t is not None), default=None)
    if since is None:
        return True
    return latest_digest_boundary(as_of, hour_wib) > to_wib(since)
