"""Commodities as sourcing sees them: codes, units, price ceilings (HET/HAP), and how quantities round."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from kkmp_shared.locale_id import quantity as format_quantity
from kkmp_shared.locale_id import rupiah as format_rupiah

# The formats are kkmp_shared.locale_id's, re-exported under the names sourcing uses.
__all__ = ["DISCRETE_UNITS", "Commodity", "format_quantity", "format_rupiah"]

# Units sold by the piece: a quantity in these is a whole number (no one ships 2.4 tabung of LPG).
DISCRETE_UNITS = frozenset({"tabung", "dus", "kaleng", "pack", "pcs", "sak", "karung", "botol", "bungkus"})


@dataclass(frozen=True)
class Commodity:
    code: str
    name: str
    unit: str
    price_ceiling: int | None = None
    ceiling_kind: str | None = None  # "HET" (binding maximum) or "HAP" (reference price)
    stall_days: int = 14
    typical_price: int | None = None

    @property
    def discrete(self) -> bool:
        return self.unit in DISCRETE_UNITS

    @property
    def perishable(self) -> bool:
        """Fresh goods stall within a week: eggs, chicken, fish, chillies."""
        return self.stall_days <= 7

    def round_down(self, quantity: Decimal) -> Decimal:
        """A quantity that can actually be handed over: whole pieces, or kg/liter to 0.01."""
        step = Decimal(1) if self.discrete else Decimal("0.01")
        return quantity.quantize(step, rounding=ROUND_DOWN)
