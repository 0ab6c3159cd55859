"""Detection rules: when stock is stalled (stok macet), low, or out, and when an episode starts or ends.

These functions are the definition. The set-based scan (`adapters/detection_sql.py`) states the same
rules in SQL for the whole table at once; a test checks both agree on generated cases.

- stalled: something on hand and its stall clock (last sale, last transfer out, or oldest receipt still
  on hand, whichever is latest) more than `stall_days` before `as_of`.
- stockout: nothing on hand, with sales in the last 28 days.
- low: something on hand, not stalled, sales in the last 28 days, and days of cover
  (on hand / average daily sales over those 28 days) below `low_cover_days`.
The three are exclusive: an item is in at most one episode at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

Condition = Literal["stalled", "low", "stockout"]
CONDITIONS: tuple[str, ...] = ("stalled", "low", "stockout")
LOOKBACK_DAYS = 28
DEFAULT_STALL_DAYS = 14
DEFAULT_LOW_COVER_DAYS = 7


@dataclass(frozen=True)
class Thresholds:
    stall_days: int = DEFAULT_STALL_DAYS
    low_cover_days: int = DEFAULT_LOW_COVER_DAYS


def sales_window(as_of: datetime) -> tuple[date, date]:
    """The 28 (UTC) days of sales the averages use: as_of's day and the 27 before it."""
    last = as_of.date()
    return last - timedelta(days=LOOKBACK_DAYS - 1), last


def average_daily_sales(sold_in_window: Decimal) -> Decimal:
    return sold_in_window / LOOKBACK_DAYS


def days_of_cover(on_hand: Decimal, sold_in_window: Decimal) -> Decimal | None:
    """How many days what is on hand lasts at the recent pace; None when nothing sold (no pace)."""
    if sold_in_window <= 0:
        return None
    return on_hand * LOOKBACK_DAYS / sold_in_window


def is_stalled(on_hand: Decimal, stall_clock_at: datetime | None, as_of: datetime, stall_days: int) -> bool:
    """Stock that has not moved for more than `stall_days` (13 days is not stalled at 14, 15 is)."""
    return on_hand > 0 and stall_clock_at is not None and as_of - stall_clock_at > timedelta(days=stall_days)


def is_stockout(on_hand: Decimal, sold_in_window: Decimal) -> bool:
    return on_hand <= 0 and sold_in_window > 0


def is_low(on_hand: Decimal, sold_in_window: Decimal, low_cover_days: int) -> bool:
    # on_hand / (sold / 28) < days, kept in multiplications so SQL can say exactly the same.
    return on_hand > 0 and sold_in_window > 0 and on_hand * LOOKBACK_DAYS < low_cover_days * sold_in_window


def classify_stock(
    on_hand: Decimal,
    stall_clock_at: datetime | None,
    sold_in_window: Decimal,
    as_of: datetime,
    thresholds: Thresholds,
) -> Condition | None:
    """The one condition an item is in as of `as_of`, or None when it is fine."""
    if on_hand <= 0:
        return "stockout" if is_stockout(on_hand, sold_in_window) else None
    if is_stalled(on_hand, stall_clock_at, as_of, thresholds.stall_days):
        return "stalled"
    if is_low(on_hand, sold_in_window, thresholds.low_cover_days):
        return "low"
    return None


def status_of(condition: str | None) -> str:
    """The `status` a stock line shows."""
    return condition or "ok"


@dataclass(frozen=True)
class EpisodeChange:
    ended: str | None
    started: str | None

    @property
    def changed(self) -> bool:
        return self.ended is not None or self.started is not None


def episode_change(previous: str | None, current: str | None) -> EpisodeChange:
    """An episode is announced when it starts and when it ends, never twice: same condition, no change."""
    if previous == current:
        return EpisodeChange(None, None)
    return EpisodeChange(ended=previous, started=current)


def days_unmoved(stall_clock_at: datetime | None, as_of: datetime) -> int:
    """Whole days since the stall clock started (the `days_since_sale` of a stalled episode)."""
    if stall_clock_at is None:
        return 0
    return max(0, (as_of - stall_clock_at).days)
