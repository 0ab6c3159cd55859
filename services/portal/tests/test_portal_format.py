"""Indonesian formatting and parsing (portal.domain.format)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from portal.domain import format as fmt

pytestmark = [pytest.mark.unit, pytest.mark.clock]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1250000, "Rp1.250.000"),
        (0, "Rp0"),
        (999, "Rp999"),
        (1000, "Rp1.000"),
        (13500.4, "Rp13.500"),
        (13500.5, "Rp13.501"),  # half up, not banker's rounding
        (-500, "-Rp500"),
        ("18000", "Rp18.000"),
        (Decimal("1234567890"), "Rp1.234.567.890"),
        (None, "–"),
        ("bukan angka", "–"),
        (float("nan"), "–"),
    ],
)
def test_rupiah(value: object, expected: str) -> None:
    assert fmt.rupiah(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (1234.5, 1, "1.234,5"),
        (1234.0, 1, "1.234"),
        (1234.56, 1, "1.234,6"),
        (0.25, 2, "0,25"),
        (1000000, 0, "1.000.000"),
        (-1234.5, 1, "-1.234,5"),
        (-0.01, 1, "0"),
        (12, 2, "12"),
    ],
)
def test_angka(value: float, decimals: int, expected: str) -> None:
    assert fmt.angka(value, decimals) == expected


def test_angka_keeps_zeros_when_asked() -> None:
    assert fmt.angka(2.5, 2, keep_zeros=True) == "2,50"


def test_quantity_with_unit() -> None:
    assert fmt.jumlah(1234.5, "kg") == "1.234,5 kg"
    assert fmt.jumlah(12, "tabung") == "12 tabung"
    assert fmt.jumlah(3, "pcs") == "3 buah"
    assert fmt.jumlah(None, "kg") == "–"
    assert fmt.jumlah(7) == "7"


def test_short_money_for_tiles() -> None:
    # From 100 of a unit on, no decimal (as in the alerts' "± Rp250 juta"): three figures are enough.
    assert fmt.rupiah_ringkas(291_900_000) == "Rp292 jt"
    assert fmt.rupiah_ringkas(12_500_000) == "Rp12,5 jt"
    assert fmt.rupiah_ringkas(1_250_000_000) == "Rp1,3 M"
    assert fmt.rupiah_ringkas(950_000) == "Rp950.000"


def test_percent() -> None:
    assert fmt.persen(0.873) == "87,3%"
    assert fmt.persen(0.72, 0) == "72%"
    assert fmt.persen(45, ratio=False) == "45%"
    assert fmt.persen(None) == "–"


def test_dates_are_shown_in_jakarta_time() -> None:
    # 20:30 UTC on 31 Dec is already 1 Jan in Jakarta (UTC+7).
    assert fmt.tanggal("2024-12-31T20:30:00Z") == "1 Januari 2025"
    assert fmt.waktu("2024-12-31T20:30:00Z") == "1 Jan 2025 03.30 WIB"
    assert fmt.waktu("2025-08-17T10:00:00+07:00") == "17 Agu 2025 10.00 WIB"


def test_naive_timestamps_are_utc() -> None:
    assert fmt.waktu("2025-03-01T00:00:00") == "1 Mar 2025 07.00 WIB"


def test_a_bare_date_is_a_calendar_day() -> None:
    assert fmt.tanggal("2025-01-05") == "5 Januari 2025"
    assert fmt.tanggal(date(2025, 11, 30), short=True) == "30 Nov 2025"


def test_unparseable_dates_are_shown_as_given() -> None:
    assert fmt.tanggal(None) == "–"
    assert fmt.tanggal("kemarin") == "kemarin"


def test_period() -> None:
    assert fmt.periode("2025-01") == "Januari 2025"
    assert fmt.periode("2025-13") == "2025-13"
    assert fmt.periode(None) == "–"


def test_time_ago() -> None:
    now = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
    assert fmt.sejak(now - timedelta(seconds=20), now) == "baru saja"
    assert fmt.sejak(now - timedelta(minutes=5), now) == "5 menit lalu"
    assert fmt.sejak(now - timedelta(hours=30), now) == "30 jam lalu"
    assert fmt.sejak(now - timedelta(days=12), now) == "12 hari lalu"


def test_duration_in_hours() -> None:
    assert fmt.durasi_jam(5.5) == "5,5 jam"
    assert fmt.durasi_jam(30) == "1 hari 6 jam"
    assert fmt.durasi_jam(48) == "2 hari"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.250.000", Decimal("1250000")),
        ("1250000", Decimal("1250000")),
        ("1,5", Decimal("1.5")),
        ("1.234,5", Decimal("1234.5")),
        ("Rp 12.500", Decimal("12500")),
        ("Rp12.500", Decimal("12500")),
        ("2.5", Decimal("2.5")),  # one dot not followed by three digits: a decimal point
        ("  10 ", Decimal("10")),
        (",5", Decimal("0.5")),
        ("", None),
        (None, None),
        ("sepuluh", None),
        ("1,2,3", None),
        ("12.34.5", None),
    ],
)
def test_parse_numbers_typed_the_indonesian_way(text: str | None, expected: Decimal | None) -> None:
    assert fmt.parse_angka(text) == expected


def test_labels_translate_codes_and_humanise_unknown_ones() -> None:
    assert fmt.label(fmt.STOCK_STATUS, "stalled") == "Macet"
    assert fmt.label(fmt.NEED_STATUS, "in_progress") == "Sedang ditangani"
    assert fmt.label(fmt.NEED_STATUS, "on_hold") == "On hold"
    assert fmt.label(fmt.NEED_STATUS, None) == "–"
