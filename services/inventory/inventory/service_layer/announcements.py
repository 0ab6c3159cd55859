"""Turning detected episode changes into the contract's events (stok macet, low, stockout, recovered).

Both the incremental evaluation of a movement and the set-based scan describe an item the same way
(`ItemSnapshot`) so that an episode reads the same whichever of them noticed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from kkmp_shared.events.contracts import (
    EventData,
    StockLow,
    StockRecovered,
    StockStalled,
    StockStockout,
)

from inventory.domain.detection import (
    Condition,
    EpisodeChange,
    average_daily_sales,
    days_of_cover,
    days_unmoved,
)
from inventory.domain.ledger import rupiah

TWO_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class ItemSnapshot:
    cooperative_id: str
    kelurahan_code: str
    kecamatan_code: str
    commodity: str
    unit: str
    on_hand: Decimal
    stock_value: int
    last_unit_cost: int | None
    last_sale_at: datetime | None
    stall_clock_at: datetime | None
    sold_in_window: Decimal
    stall_days: int
    low_cover_days: int

    @property
    def unit_cost(self) -> int | None:
        if self.on_hand > 0:
            return rupiah(Decimal(self.stock_value) / self.on_hand)
        return self.last_unit_cost


def episode_events(item: ItemSnapshot, change: EpisodeChange, detected_at: datetime) -> list[EventData]:
    """What to announce for one item: the end of the old episode first, then the start of the new one."""
    ref: dict[str, Any] = {
        "cooperative_id": item.cooperative_id,
        "kelurahan_code": item.kelurahan_code,
        "kecamatan_code": item.kecamatan_code,
        "commodity": item.commodity,
        "unit": item.unit,
        "detected_at": detected_at,
    }
    events: list[EventData] = []
    if change.ended is not None:
        events.append(StockRecovered(**ref, condition=cast(Condition, change.ended), on_hand=item.on_hand))
    if change.started == "stalled":
        events.append(
            StockStalled(
                **ref,
                on_hand=item.on_hand,
                last_sale_at=item.last_sale_at,
                days_since_sale=days_unmoved(item.stall_clock_at, detected_at),
                value=item.stock_value,
                unit_cost=item.unit_cost,
                stall_days=item.stall_days,
                unmoved_since=item.stall_clock_at,
            )
        )
    elif change.started == "low":
        cover = days_of_cover(item.on_hand, item.sold_in_window) or Decimal(0)
        events.append(
            StockLow(
                **ref,
                on_hand=item.on_hand,
                avg_daily_sales=average_daily_sales(item.sold_in_window).quantize(Decimal("0.001")),
                days_of_cover=cover.quantize(TWO_PLACES),
                low_cover_days=item.low_cover_days,
            )
        )
    elif change.started == "stockout":
        events.append(StockStockout(**ref, last_sale_at=item.last_sale_at))
    return events
