"""Indonesian number, money and date formats for messages (Rp8.100.000, ± Rp8,1 juta, 12 Januari 2026)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

#: Surabaya is on Western Indonesia Time (WIB), UTC+7, with no daylight saving.
WIB = timezone(timedelta(hours=7), "WIB")

MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)


def _group(digits: str) -> str:
    """Thousands separated by dots: 8100000 -> 8.100.000."""
    head, rest = digits[: len(digits) % 3 or 3], digits[len(digits) % 3 or 3 :]
    return ".".join([head, *(rest[i : i + 3] for i in range(0, len(rest), 3))])


def number(value: Any, max_decimals: int = 2) -> str:
    """1250 -> 1.250; 12.5 -> 12,5; 120.000 -> 120 (trailing zeros dropped)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount).quantize(Decimal(1).scaleb(-max_decimals), rounding=ROUND_HALF_UP)
    whole, _, fraction = f"{amount:f}".partition(".")
    fraction = fraction.rstrip("0")
    return f"{sign}{_group(whole)}" + (f",{fraction}" if fraction else "")


def rupiah(amount: Any) -> str:
    """Whole rupiah: 17500 -> Rp17.500."""
    try:
        value = int(Decimal(str(amount)).to_integral_value(rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        return f"Rp{amount}"
    sign = "-" if value < 0 else ""
    return f"{sign}Rp{_group(str(abs(value)))}"


_SCALES = ((10**12, "triliun"), (10**9, "miliar"), (10**6, "juta"))


def rupiah_approx(amount: Any) -> str:
    """A rounded figure for a sentence: 8100000 -> Rp8,1 juta; below a million the exact amount."""
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return f"Rp{amount}"
    for scale, word in _SCALES:
        if abs(value) >= scale:
            scaled = value / scale
            decimals = 0 if abs(scaled) >= 100 else 1
            return f"Rp{number(scaled, decimals)} {word}"
    return rupiah(value)


def to_wib(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(WIB)


def tanggal(value: date | datetime | str | None) -> str:
    """12 Januari 2026 (a moment is shown as its date in Surabaya)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        value = to_wib(value).date()
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def periode(value: str) -> str:
    """2026-01 -> Januari 2026."""
    try:
        year, month = value.split("-", 1)
        return f"{MONTHS[int(month) - 1]} {int(year)}"
    except (ValueError, IndexError):
        return value


def in_sentence(name: str) -> str:
    """A commodity name inside a sentence: "Beras medium" -> "beras medium", "LPG 3 kg" stays."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
