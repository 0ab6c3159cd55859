"""Commodities as sourcing sees them: codes, units, price ceilings (HET/HAP), and how quantities round."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

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


def format_rupiah(amount: int | float) -> str:
    """Rp13.500 (Indonesian thousands separator)."""
    return "Rp" + f"{round(amount):,}".replace(",", ".")


def format_quantity(quantity: Decimal | float | int, unit: str) -> str:
    """1.250,5 kg: Indonesian separators, no trailing zeros."""
    value = Decimal(str(quantity)).normalize()
    if value == value.to_integral():
        text = f"{int(value):,}".replace(",", ".")
    else:
        whole, _, frac = f"{value:f}".partition(".")
        text = f"{int(whole):,}".replace(",", ".") + "," + frac
    return f"{text} {unit}"
