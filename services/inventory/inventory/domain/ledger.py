"""The stock ledger's rules (buku stok): how one movement changes a cooperative's stock of a commodity.

Pure functions over plain values: no database, no framework. Stock on hand never goes below zero;
what is on hand is valued at moving average cost (whole rupiah); receipts form lots that outflows
consume first-in first-out, which tells how old the oldest stock still on hand is (the stall rule's
"oldest receipt still on hand").
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from kkmp_shared.timeutil import as_utc as utc

MovementKind = Literal["receipt", "sale", "adjustment", "transfer_in", "transfer_out", "spoilage"]
MOVEMENT_KINDS: tuple[str, ...] = ("receipt", "sale", "adjustment", "transfer_in", "transfer_out", "spoilage")
INFLOW_KINDS = frozenset({"receipt", "transfer_in"})
OUTFLOW_KINDS = frozenset({"sale", "transfer_out", "spoilage"})

QUANTUM = Decimal("0.001")  # quantities are kept to a thousandth of the unit (grams of a kg, ml of a liter)
MILLI = 1000


class InsufficientStock(Exception):
    """A movement would take stock on hand below zero."""

    def __init__(self, commodity: str, on_hand: Decimal, requested: Decimal) -> None:
        super().__init__(f"Only {on_hand} of {commodity} on hand; {requested} requested.")
        self.commodity = commodity
        self.on_hand = on_hand
        self.requested = requested


def to_milli(quantity: Decimal) -> int:
    """Thousandths of a unit, exactly (callers validate at most three decimals)."""
    return int((quantity * MILLI).to_integral_value(rounding=ROUND_HALF_UP))


def from_milli(milli: int) -> Decimal:
    return (Decimal(milli) / MILLI).quantize(QUANTUM)


def rupiah(amount: Decimal | int | float) -> int:
    """Whole rupiah, half up."""
    return int(Decimal(str(amount)).to_integral_value(rounding=ROUND_HALF_UP))


@dataclass
class Lot:
    """Units received together and still on hand."""

    received_at: datetime
    remaining: Decimal
    id: int | None = None


@dataclass
class StockState:
    """What the ledger says about one commodity at one cooperative, now."""

    cooperative_id: str
    commodity: str
    on_hand: Decimal = Decimal("0.000")
    stock_value: int = 0
    last_unit_cost: int | None = None
    last_sale_at: datetime | None = None
    last_transfer_out_at: datetime | None = None
    stall_clock_at: datetime | None = None
    condition: str | None = None
    condition_since: datetime | None = None
    sold_in_window: Decimal | None = None
    sold_window_day: date | None = None
    version: int = 0
    lots: list[Lot] = field(default_factory=list)

    @property
    def unit_cost(self) -> int | None:
        """Average unit cost of what is on hand (whole rupiah), or the last known cost when nothing is."""
        if self.on_hand > 0:
            return rupiah(Decimal(self.stock_value) / self.on_hand)
        return self.last_unit_cost


@dataclass(frozen=True)
class MovementDraft:
    """A movement as asked for. `quantity` is the size (> 0); `decrease` only matters for adjustments."""

    commodity: str
    kind: str
    quantity: Decimal
    occurred_at: datetime
    unit_price: int | None = None
    reference: str | None = None
    reason: str | None = None
    note: str | None = None
    decrease: bool = False
    # A transfer in is valued at what the sending cooperative booked out, not at a price.
    value_override: int | None = None

    @property
    def delta(self) -> Decimal:
        """The signed change in stock on hand."""
        if self.kind in INFLOW_KINDS:
            return self.quantity
        if self.kind in OUTFLOW_KINDS:
            return -self.quantity
        return -self.quantity if self.decrease else self.quantity


@dataclass(frozen=True)
class AppliedMovement:
    """The outcome of one movement: what the ledger row records."""

    draft: MovementDraft
    delta: Decimal
    on_hand_after: Decimal
    unit_cost: int | None
    value: int | None


def apply_movement(
    state: StockState, draft: MovementDraft, fallback_unit_cost: int | None
) -> AppliedMovement:
    """Apply one movement to `state` in place; raises InsufficientStock instead of going below zero.

    Inflows add a lot and their cost (their unit price, else the current average cost, else the last
    known or the catalogue's typical price). Outflows take their share of the stock value at average
    cost and consume the oldest lots first. A sale or transfer out restarts the stall clock.
    """
    delta = draft.delta
    occurred_at = utc(draft.occurred_at)
    if delta < 0 and -delta > state.on_hand:
        raise InsufficientStock(state.commodity, state.on_hand, -delta)
    quantity = abs(delta)
    if delta > 0:
        if draft.value_override is not None:
            value = draft.value_override
        else:
            cost = draft.unit_price
            if cost is None:
                cost = state.unit_cost if state.unit_cost is not None else fallback_unit_cost
            value = rupiah(Decimal(cost) * quantity) if cost is not None else 0
        state.stock_value += value
        state.on_hand += quantity
        if draft.unit_price is not None and draft.kind in INFLOW_KINDS:
            state.last_unit_cost = draft.unit_price
        elif draft.value_override is not None and quantity > 0:
            state.last_unit_cost = rupiah(Decimal(draft.value_override) / quantity)
        _add_lot(state.lots, Lot(received_at=occurred_at, remaining=quantity))
        unit_cost = rupiah(Decimal(value) / quantity) if quantity else None
    else:
        # The cost leaving with the goods, at average cost; the last units take the rounding remainder.
        if quantity == state.on_hand:
            cost_out = state.stock_value
        else:
            cost_out = rupiah(Decimal(state.stock_value) * quantity / state.on_hand)
        unit_cost = state.unit_cost
        state.stock_value -= cost_out
        state.on_hand -= quantity
        _consume_lots(state.lots, quantity)
        if draft.kind == "sale":
            state.last_sale_at = _later(state.last_sale_at, occurred_at)
        elif draft.kind == "transfer_out":
            state.last_transfer_out_at = _later(state.last_transfer_out_at, occurred_at)
        if unit_cost is not None and state.on_hand == 0:
            state.last_unit_cost = unit_cost
        value = cost_out
    if draft.unit_price is not None and draft.kind == "sale":
        value = rupiah(Decimal(draft.unit_price) * quantity)  # for a sale the value is its takings
    if state.on_hand == 0:
        state.stock_value = 0
        state.lots.clear()
    state.stall_clock_at = stall_clock(state)
    return AppliedMovement(
        draft=draft, delta=delta, on_hand_after=state.on_hand, unit_cost=unit_cost, value=value
    )


def stall_clock(state: StockState) -> datetime | None:
    """Since when the stock on hand has sat unmoved: the later of its last sale, its last transfer out
    and its oldest receipt still on hand (stock that arrived after the last sale cannot have been
    unsold for longer than it has been here). None when nothing is on hand."""
    if state.on_hand <= 0:
        return None
    candidates = [t for t in (state.last_sale_at, state.last_transfer_out_at) if t is not None]
    if state.lots:
        candidates.append(state.lots[0].received_at)
    return max(candidates) if candidates else None


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def _add_lot(lots: list[Lot], lot: Lot) -> None:
    # Back-dated receipts are older stock: keep the lots ordered by when they arrived.
    keys = [existing.received_at for existing in lots]
    lots.insert(bisect.bisect_right(keys, lot.received_at), lot)


def _consume_lots(lots: list[Lot], quantity: Decimal) -> None:
    remaining = quantity
    while remaining > 0 and lots:
        oldest = lots[0]
        if oldest.remaining <= remaining:
            remaining -= oldest.remaining
            lots.pop(0)
        else:
            oldest.remaining -= remaining
            remaining = Decimal(0)
    # Lots can fall short of on hand only for data bulk-loaded without lots: then there is nothing to take.
