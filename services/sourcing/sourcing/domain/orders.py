"""Orders to suppliers: their lifecycle and how a delivery is divided among pooled cooperatives.

placed → confirmed → (partially_delivered →) delivered, or cancelled before it is fully delivered.
A pooled order (permintaan gabungan) combines several cooperatives' needs to reach a better price; each
delivery is split back over them, as told or in proportion to what each is still owed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sourcing.domain.commodities import Commodity

ORDER_STATUSES = ("placed", "confirmed", "partially_delivered", "delivered", "cancelled")
OPEN_ORDER_STATUSES = ("placed", "confirmed", "partially_delivered")

ALLOWED_ORDER_CHANGES: dict[str, frozenset[str]] = {
    "placed": frozenset({"confirmed", "cancelled"}),
    "confirmed": frozenset({"partially_delivered", "delivered", "cancelled"}),
    "partially_delivered": frozenset({"partially_delivered", "delivered", "cancelled"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}


class IllegalOrderChange(Exception):
    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"An order that is '{old}' cannot become '{new}'.")
        self.old = old
        self.new = new


def check_order_change(old: str, new: str) -> None:
    if new not in ALLOWED_ORDER_CHANGES.get(old, frozenset()):
        raise IllegalOrderChange(old, new)


@dataclass(frozen=True)
class LineOwed:
    line_id: str
    cooperative_id: str
    remaining: Decimal


def split_delivery(
    lines: Sequence[LineOwed], quantity: Decimal, commodity: Commodity
) -> list[tuple[str, Decimal]]:
    """Divide a delivered quantity over the lines still owed, in proportion to what each is owed.

    Shares are rounded down to what can be handed over; the last line owed takes the rounding rest.
    """
    owed = [line for line in lines if line.remaining > 0]
    total = sum((line.remaining for line in owed), Decimal(0))
    if total <= 0 or quantity <= 0:
        return []
    quantity = min(quantity, total)
    shares: list[tuple[str, Decimal]] = []
    given = Decimal(0)
    for i, line in enumerate(owed):
        if i == len(owed) - 1:
            share = quantity - given
        else:
            share = commodity.round_down(quantity * line.remaining / total)
        share = min(share, line.remaining)
        if share > 0:
            shares.append((line.line_id, share))
            given += share
    return shares
