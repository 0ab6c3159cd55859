"""`kkmp_shared.locale_id`: one Indonesian output per kind of value, rounded half up, in WIB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from kkmp_shared.locale_id import (
    MONTHS,
    MONTHS_SHORT,
    number,
    periode,
    quantity,
    rupiah,
    rupiah_compact,
    tanggal,
    waktu,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_250_000, "Rp1.250.000"),
        (-1_250_000, "-Rp1.250.000"),  # CLDR id_ID: the sign before the symbol
        (0, "Rp0"),
        (13500.5, "Rp13.501"),  # half up, not Babel's half-even
        (Decimal("-0.4"), "Rp0"),  # no "-Rp0"
        ("18000", "Rp18.000"),
        (None, "–"),
        ("bukan angka", "–"),
        (float("inf"), "–"),
    ],
)
def test_rupiah_is_whole_and_half_up(value: object, expected: str) -> None:
    assert rupiah(value) == expected


def test_rupiah_placeholder_is_the_callers() -> None:
    assert rupiah(None, empty="-") == "-"


@pytest.mark.parametrize(
    ("value", "long", "short"),
    [
        (8_100_000, "Rp8,1 juta", "Rp8,1 jt"),
        (250_400_000, "Rp250 juta", "Rp250 jt"),  # from 100 of a unit on: no decimal
        (1_250_000_000, "Rp1,3 miliar", "Rp1,3 M"),
        (999_960_000, "Rp1 miliar", "Rp1 M"),  # rounding up moves to the next unit
        (1_500_000_000_000, "Rp1,5 triliun", "Rp1,5 T"),
        (-8_100_000, "-Rp8,1 juta", "-Rp8,1 jt"),
        (850_000, "Rp850.000", "Rp850.000"),  # below a million: exact
    ],
)
def test_compact_rupiah_long_for_sentences_short_for_tiles(value: int, long: str, short: str) -> None:
    assert rupiah_compact(value) == long
    assert rupiah_compact(value, short=True) == short
    assert "\xa0" not in long + short


def test_numbers_and_quantities() -> None:
    assert number(1234.5) == "1.234,5"
    assert number(Decimal("120.000"), 2) == "120"
    assert number(2.5, 2, keep_zeros=True) == "2,50"
    assert number(-0.01) == "0"
    assert number(0.05) == "0,1"  # half up
    assert quantity(Decimal("1250.500"), "kg") == "1.250,5 kg"
    assert quantity(Decimal("0.125"), "liter") == "0,125 liter"
    assert quantity(12) == "12"
    assert quantity(None, "kg") == "–"


def test_dates_are_wib_days_with_indonesian_months() -> None:
    assert MONTHS[0] == "Januari" and MONTHS[7] == "Agustus" and MONTHS_SHORT[7] == "Agu"
    assert tanggal(date(2026, 1, 12)) == "12 Januari 2026"
    assert tanggal(datetime(2025, 12, 31, 20, 0, tzinfo=UTC)) == "1 Januari 2026"
    assert tanggal("2025-01-05") == "5 Januari 2025"  # a bare date is not shifted
    assert tanggal("2025-11-30", short=True) == "30 Nov 2025"
    assert tanggal("kemarin") == "kemarin" and tanggal(None) == "–"
    assert waktu("2024-12-31T20:30:00Z") == "1 Jan 2025 03.30 WIB"
    assert waktu("2025-03-01T00:00:00") == "1 Mar 2025 07.00 WIB"  # naive is UTC
    assert periode("2026-03") == "Maret 2026" and periode("2026-13") == "2026-13" and periode(None) == "–"
