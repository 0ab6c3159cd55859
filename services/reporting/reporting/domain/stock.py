"""A cooperative's stock item as reporting sees it: on hand, last sale, and the three episodes
inventory announces (stalled "stok macet", low, stockout).

Inventory is the authority: it announces when an episode starts and when it ends. Reporting only has
to apply those facts so that redelivery and reordering cannot corrupt the figures. Each condition
keeps the detection time of the last change applied; an announcement older than that is stale (a
`stock.recovered` retried after a newer `stock.stalled`, say) and is ignored. Quantities are kept in
thousandths of a unit (integers), so sums are exact on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

Condition = Literal["stalled", "low", "stockout"]
MILLI = Decimal(1000)


def to_milli(quantity: Decimal | int | float | str) -> int:
    """Quantity in thousandths of its unit (kg → grams), rounded half-even."""
    return int((Decimal(str(quantity)) * MILLI).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_milli(milli: int | None) -> Decimal:
    return Decimal(milli or 0).scaleb(-3)


def quantity_out(milli: int | None) -> float:
    """A JSON-friendly number for a quantity kept in thousandths (3 decimals are exact in a float)."""
    return float(from_milli(milli))


@dataclass(frozen=True)
class StalledDetails:
    on_hand_milli: int
    value: int
    days_since_sale: int
    last_sale_at: datetime | None
    unit_cost: int | None


@dataclass(frozen=True)
class StockItem:
    unit: str | None = None
    on_hand_milli: int = 0
    on_hand_at: datetime | None = None
    last_sale_at: datetime | None = None
    stalled: bool = False
    stalled_since: datetime | None = None
    stalled_changed_at: datetime | None = None
    stalled_details: StalledDetails | None = None
    low: bool = False
    low_since: datetime | None = None
    low_changed_at: datetime | None = None
    stockout: bool = False
    stockout_since: datetime | None = None
    stockout_changed_at: datetime | None = None


def apply_movement(
    item: StockItem,
    *,
    unit: str,
    on_hand_after_milli: int,
    recorded_at: datetime,
    sold_at: datetime | None,
) -> StockItem:
    """A ledger movement: the balance after it (the newest recording wins) and, for a sale, the last sale."""
    changes: dict[str, object] = {"unit": unit}
    if item.on_hand_at is None or recorded_at >= item.on_hand_at:
        changes["on_hand_milli"] = on_hand_after_milli
        changes["on_hand_at"] = recorded_at
    if sold_at is not None and (item.last_sale_at is None or sold_at > item.last_sale_at):
        changes["last_sale_at"] = sold_at
    return replace(item, **changes)  # type: ignore[arg-type]


def _is_current(changed_at: datetime | None, detected_at: datetime) -> bool:
    return changed_at is None or detected_at >= changed_at


def start_stalled(item: StockItem, detected_at: datetime, details: StalledDetails, unit: str) -> StockItem:
    """`stock.stalled`: an episode starts; a repeat during the episode only refreshes its figures."""
    if not _is_current(item.stalled_changed_at, detected_at):
        return item
    since = item.stalled_since if item.stalled and item.stalled_since is not None else detected_at
    return replace(
        item,
        unit=unit,
        stalled=True,
        stalled_since=since,
        stalled_changed_at=detected_at,
        stalled_details=details,
    )


def start_condition(
    item: StockItem, condition: Literal["low", "stockout"], detected_at: datetime
) -> StockItem:
    changed_at = getattr(item, f"{condition}_changed_at")
    if not _is_current(changed_at, detected_at):
        return item
    since = getattr(item, f"{condition}_since") if getattr(item, condition) else detected_at
    return replace(
        item,
        **{condition: True, f"{condition}_since": since, f"{condition}_changed_at": detected_at},  # type: ignore[arg-type]
    )


def end_condition(item: StockItem, condition: Condition, detected_at: datetime) -> StockItem:
    """`stock.recovered`: the episode of that condition ends (if the announcement is not stale)."""
    changed_at = getattr(item, f"{condition}_changed_at")
    if not _is_current(changed_at, detected_at):
        return item
    changes: dict[str, object] = {
        condition: False,
        f"{condition}_since": None,
        f"{condition}_changed_at": detected_at,
    }
    if condition == "stalled":
        changes["stalled_details"] = None
    return replace(item, **changes)  # type: ignore[arg-type]


def days_since_sale_now(days_at_detection: int, detected_at: datetime, now: datetime) -> int:
    """Days without a sale as of `now`: the count inventory reported plus the whole days since then."""
    elapsed = (now - detected_at).days
    return days_at_detection + max(0, elapsed)
