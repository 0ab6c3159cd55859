"""The commodity catalogue's rules: reading the seed file and judging a price against its ceiling.

A ceiling is the HET (Harga Eceran Tertinggi, a binding maximum) or HAP (Harga Acuan Pemerintah, a
reference price) of a commodity; it changes over time, so each has a date it takes effect from and a
sale is judged against the one in force when the sale happened.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from inventory.domain.detection import DEFAULT_LOW_COVER_DAYS, DEFAULT_STALL_DAYS

# Ceilings seeded without a known start date apply from this instant on.
CATALOGUE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CatalogueEntry:
    code: str
    name: str
    unit: str
    price_ceiling: int | None
    ceiling_kind: str | None
    legal_basis: str | None
    stall_days: int
    low_cover_days: int
    typical_price: int | None


@dataclass(frozen=True)
class CeilingPeriod:
    price_ceiling: int | None
    ceiling_kind: str | None
    legal_basis: str | None
    effective_from: datetime


def read_catalogue(path: Path) -> list[CatalogueEntry]:
    """Rows of the reference commodities.csv (code,name,unit,price_ceiling,ceiling_kind,legal_basis,
    stall_days,typical_price); blank numbers mean none."""
    entries = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            ceiling = _int_or_none(row.get("price_ceiling"))
            entries.append(
                CatalogueEntry(
                    code=row["code"].strip(),
                    name=row["name"].strip(),
                    unit=row["unit"].strip(),
                    price_ceiling=ceiling,
                    ceiling_kind=((row.get("ceiling_kind") or "").strip() or None) if ceiling else None,
                    legal_basis=(row.get("legal_basis") or "").strip() or None,
                    stall_days=_int_or_none(row.get("stall_days")) or DEFAULT_STALL_DAYS,
                    low_cover_days=_int_or_none(row.get("low_cover_days")) or DEFAULT_LOW_COVER_DAYS,
                    typical_price=_int_or_none(row.get("typical_price")),
                )
            )
    return entries


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value else None


def ceiling_at(periods: Sequence[CeilingPeriod], moment: datetime) -> CeilingPeriod | None:
    """The ceiling in force at `moment`: the latest period that started at or before it."""
    current = None
    for period in sorted(periods, key=lambda p: p.effective_from):
        if period.effective_from <= moment:
            current = period
        else:
            break
    return current


def ceiling_excess(unit_price: int | None, ceiling: int | None) -> int | None:
    """Rupiah per unit above the ceiling, or None when the price is within it (or there is none)."""
    if unit_price is None or ceiling is None or unit_price <= ceiling:
        return None
    return unit_price - ceiling


def read_ceiling_history(path: Path) -> dict[str, list[CeilingPeriod]]:
    """Known earlier ceilings (code,price_ceiling,ceiling_kind,legal_basis,effective_from), per commodity."""
    history: dict[str, list[CeilingPeriod]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            history.setdefault(row["code"].strip(), []).append(
                CeilingPeriod(
                    price_ceiling=_int_or_none(row.get("price_ceiling")),
                    ceiling_kind=(row.get("ceiling_kind") or "").strip() or None,
                    legal_basis=(row.get("legal_basis") or "").strip() or None,
                    effective_from=datetime.fromisoformat(row["effective_from"].strip()).replace(tzinfo=UTC),
                )
            )
    return history


def initial_ceilings(entry: CatalogueEntry, history: Sequence[CeilingPeriod]) -> list[CeilingPeriod]:
    """The ceiling periods a newly seeded commodity starts with: its known history, ending with the
    catalogue's current ceiling (from the catalogue epoch when no history dates it)."""
    periods = sorted(history, key=lambda p: p.effective_from)
    if periods and periods[-1].price_ceiling == entry.price_ceiling:
        return periods
    if entry.price_ceiling is None and not periods:
        return []
    start = CATALOGUE_EPOCH if not periods else max(periods[-1].effective_from, CATALOGUE_EPOCH)
    current = CeilingPeriod(entry.price_ceiling, entry.ceiling_kind, entry.legal_basis, start)
    # A catalogue value that contradicts the history's last entry wins from that entry's date on.
    return [*periods[:-1], current] if periods else [current]
