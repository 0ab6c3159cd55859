"""Indonesian (id_ID) numbers, money, quantities, dates and month names, on Babel (CLDR), for every service.

Money follows CLDR's id_ID pattern: `Rp1.250.000`, `-Rp1.250.000` (no space; the sign before the
symbol). Every rounding is half up (13.500,5 → Rp13.501), never Babel's default half-even. Dates are
shown in WIB (Surabaya's zone): `5 Januari 2025`, `5 Jan 2025 14.30 WIB`. Text is plain (a normal
space, not CLDR's no-break space) so that messages, PDFs and pages read and compare alike.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.dates import format_date, get_month_names
from babel.numbers import format_compact_decimal, format_decimal

from kkmp_shared.clock import WIB

LOCALE = "id_ID"
NBSP = "\xa0"
EMPTY = "–"  # what a missing value shows as, unless the caller asks for another placeholder

MONTHS: tuple[str, ...] = tuple(get_month_names("wide", locale=LOCALE)[m] for m in range(1, 13))
MONTHS_SHORT: tuple[str, ...] = tuple(get_month_names("abbreviated", locale=LOCALE)[m] for m in range(1, 13))

Number = int | float | Decimal | str

__all__ = [
    "EMPTY",
    "LOCALE",
    "MONTHS",
    "MONTHS_SHORT",
    "WIB",
    "Number",
    "decimal",
    "number",
    "periode",
    "quantity",
    "rupiah",
    "rupiah_compact",
    "tanggal",
    "to_wib",
    "waktu",
]


def decimal(value: object) -> Decimal | None:
    """A finite Decimal from a number or numeric text; None for None, booleans and anything else."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def _round(value: Decimal, decimals: int) -> Decimal:
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded == 0 else rounded  # no "-0"


def number(value: object, decimals: int = 1, *, keep_zeros: bool = False, empty: str = EMPTY) -> str:
    """`1.234,5`: rounded half up to `decimals` places; trailing zeros dropped unless `keep_zeros`."""
    amount = decimal(value)
    if amount is None:
        return empty
    fraction = ("0" if keep_zeros else "#") * decimals
    pattern = "#,##0" + (f".{fraction}" if decimals > 0 else "")
    return format_decimal(_round(amount, decimals), format=pattern, locale=LOCALE, decimal_quantization=False)


def rupiah(value: object, *, empty: str = EMPTY) -> str:
    """Whole rupiah, half up: `Rp1.250.000`, `-Rp500`, `Rp0`."""
    amount = decimal(value)
    if amount is None:
        return empty
    whole = _round(amount, 0)
    return f"{'-' if whole < 0 else ''}Rp{number(abs(whole), 0)}"


_COMPACT_SCALES = (Decimal(10) ** 12, Decimal(10) ** 9, Decimal(10) ** 6)


def rupiah_compact(value: object, *, short: bool = False, empty: str = EMPTY) -> str:
    """A rounded amount from a million up: `Rp8,1 juta`, `Rp250 juta`, `Rp1,5 miliar` (`short`: `Rp1,3 M`,
    `Rp12 jt` for tiles); one decimal below 100 of the unit, none from 100; below a million, exact."""
    amount = decimal(value)
    if amount is None:
        return empty
    size = abs(amount)
    for scale in _COMPACT_SCALES:
        if size >= scale:
            scaled = size / scale
            rounded = _round(scaled, 0 if scaled >= 100 else 1) * scale
            text = format_compact_decimal(
                rounded, format_type="short" if short else "long", fraction_digits=1, locale=LOCALE
            )
            return f"{'-' if amount < 0 else ''}Rp{text.replace(NBSP, ' ')}"
    return rupiah(amount)


def quantity(value: object, unit: str | None = None, decimals: int = 3, *, empty: str = EMPTY) -> str:
    """`1.250,5 kg`: the number (half up to `decimals`, no trailing zeros) and the unit as given."""
    text = number(value, decimals, empty=empty)
    return f"{text} {unit}" if unit and text != empty else text


def to_wib(moment: datetime) -> datetime:
    """The moment in WIB; a naive one is taken as UTC."""
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(WIB)


_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _moment(value: str | datetime | date) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def tanggal(value: str | datetime | date | None, *, short: bool = False, empty: str = EMPTY) -> str:
    """`5 Januari 2025` (`short`: `5 Jan 2025`). A moment shows its day in WIB; a bare date (`2025-01-05`,
    a `date`) is a calendar day and is not shifted."""
    if value is None or value == "":
        return empty
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str) and _BARE_DATE.fullmatch(value.strip()):
        day = date.fromisoformat(value.strip())
    else:
        moment = _moment(value)
        if moment is None:
            return str(value)
        day = to_wib(moment).date()
    return format_date(day, "d MMM y" if short else "d MMMM y", locale=LOCALE)


def waktu(value: str | datetime | None, *, short: bool = True, empty: str = EMPTY) -> str:
    """A moment with its time in WIB: `5 Jan 2025 14.30 WIB`; a naive one is taken as UTC."""
    if value is None or value == "":
        return empty
    moment = _moment(value)
    if moment is None:
        return str(value)
    local = to_wib(moment)
    return f"{tanggal(local.date(), short=short)} {local:%H.%M} WIB"


def periode(value: str | None, *, empty: str = EMPTY) -> str:
    """A month `2025-01` as `Januari 2025`; anything else is returned as it is."""
    if not value:
        return empty
    match = re.fullmatch(r"(\d{4})-(\d{2})", value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        return value
    return f"{MONTHS[int(match.group(2)) - 1]} {int(match.group(1))}"
