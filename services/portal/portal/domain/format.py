"""Indonesian formatting and parsing for what people see and type in the portal.

Pure functions, no I/O: money as ``Rp1.250.000``, quantities as ``1.234,5 kg``, dates in WIB with
Indonesian month names (all from ``kkmp_shared.locale_id``), and the reverse (``"1.250.000"`` or
``"1,5"`` typed in a form back to a number), and the Indonesian labels of the APIs' codes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from kkmp_shared import clock
from kkmp_shared.clock import WIB
from kkmp_shared.locale_id import EMPTY as EMPTY
from kkmp_shared.locale_id import MONTHS as MONTHS
from kkmp_shared.locale_id import MONTHS_SHORT as MONTHS_SHORT
from kkmp_shared.locale_id import Number as Number
from kkmp_shared.locale_id import decimal as _to_decimal
from kkmp_shared.locale_id import number as angka
from kkmp_shared.locale_id import periode as periode
from kkmp_shared.locale_id import quantity, rupiah_compact
from kkmp_shared.locale_id import rupiah as rupiah
from kkmp_shared.locale_id import tanggal as tanggal
from kkmp_shared.locale_id import waktu as waktu

JAKARTA = WIB  # Surabaya's zone, UTC+7 all year


def rupiah_ringkas(value: Number | None) -> str:
    """Large money, short, for headline tiles: ``Rp1,3 M`` (miliar), ``Rp12,5 jt`` (juta)."""
    return rupiah_compact(value, short=True)


UNIT_LABELS = {
    "tabung": "tabung",
    "liter": "liter",
    "kg": "kg",
    "pcs": "buah",
    "pack": "pak",
    "karung": "karung",
}


def jumlah(value: Number | None, unit: str | None = None, decimals: int = 1) -> str:
    """A quantity with its unit: ``jumlah(1234.5, "kg") == "1.234,5 kg"``."""
    return quantity(value, UNIT_LABELS.get(unit, unit) if unit else None, decimals)


def persen(value: Number | None, decimals: int = 1, *, ratio: bool = True) -> str:
    """A percentage: ``persen(0.873) == "87,3%"``; with ``ratio=False`` the value is already in percent."""
    number = _to_decimal(value)
    if number is None:
        return EMPTY
    return f"{angka(number * 100 if ratio else number, decimals)}%"


def parse_timestamp(value: str | datetime | date | None) -> datetime | None:
    """An ISO 8601 timestamp from an API as an aware datetime; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def sejak(value: str | datetime | None, now: datetime | None = None) -> str:
    """How long ago, in words: ``"baru saja"``, ``"5 menit lalu"``, ``"3 jam lalu"``, ``"12 hari lalu"``."""
    moment = parse_timestamp(value)
    if moment is None:
        return EMPTY
    now = now or clock.now()
    seconds = (now - moment).total_seconds()
    if seconds < 60:
        return "baru saja"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} menit lalu"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} jam lalu"
    days = hours // 24
    return f"{angka(days, 0)} hari lalu"


def durasi_jam(hours: Number | None) -> str:
    """Hours in words: ``durasi_jam(30) == "1 hari 6 jam"``, ``durasi_jam(5.5) == "5,5 jam"``."""
    number = _to_decimal(hours)
    if number is None:
        return EMPTY
    if number < 24:
        return f"{angka(number, 1)} jam"
    days, rest = divmod(int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP)), 24)
    return f"{days} hari" + (f" {rest} jam" if rest else "")


# --- parsing what people type -------------------------------------------------------------------------

_GROUPED = re.compile(r"^\d{1,3}(\.\d{3})+$")


def parse_angka(text: str | None) -> Decimal | None:
    """A number typed the Indonesian way (or the plain way) as a Decimal; None when empty or not a number.

    ``"1.250.000"`` → 1250000, ``"1,5"`` → 1.5, ``"1.234,5"`` → 1234.5, ``"Rp 12.500"`` → 12500,
    ``"2.5"`` → 2.5 (a single dot not followed by exactly three digits is a decimal point).
    """
    if text is None:
        return None
    cleaned = re.sub(r"(?i)^\s*rp\.?\s*", "", text.strip()).replace(" ", "").replace("\u00a0", "")
    if cleaned == "":
        return None
    if "," in cleaned:
        whole, _, frac = cleaned.rpartition(",")
        if "," in whole:
            return None
        if whole and not (_GROUPED.match(whole) or whole.isdigit()):
            return None
        cleaned = f"{whole.replace('.', '') or '0'}.{frac}"
    elif _GROUPED.match(cleaned):
        cleaned = cleaned.replace(".", "")
    if not re.fullmatch(r"-?\d+(\.\d+)?", cleaned):
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


# --- labels for codes the APIs return -------------------------------------------------------------------

STOCK_STATUS = {"ok": "Aman", "low": "Menipis", "stockout": "Habis", "stalled": "Macet"}
HEALTH_LEVEL = {"aktif": "Aktif", "kurang_aktif": "Kurang aktif", "tidak_aktif": "Tidak aktif"}
NEED_STATUS = {
    "open": "Baru",
    "acknowledged": "Diterima",
    "in_progress": "Sedang ditangani",
    "resolved": "Selesai",
    "rejected": "Ditolak",
}
NEED_KIND = {"supply": "Pasokan barang", "capital": "Modal", "training": "Pelatihan", "other": "Lainnya"}
MOVEMENT_KIND = {
    "receipt": "Barang masuk",
    "sale": "Penjualan",
    "adjustment": "Penyesuaian",
    "transfer_in": "Terima pindahan",
    "transfer_out": "Kirim pindahan",
    "spoilage": "Rusak/susut",
}
COOP_STATUS = {
    "formed": "Baru dibentuk",
    "operating": "Beroperasi",
    "suspended": "Dibekukan",
    "dissolved": "Dibubarkan",
}
FORMATION = {"new": "Pembentukan baru", "revitalized": "Revitalisasi"}
REDISTRIBUTION_STATUS = {
    "proposed": "Menunggu jawaban",
    "pending": "Menunggu jawaban",
    "accepted": "Diterima",
    "declined": "Ditolak",
    "withdrawn": "Ditarik",
    "completed": "Selesai",
    "expired": "Kedaluwarsa",
    "cancelled": "Dibatalkan",
}
# Why sourcing proposes moving stock to this cooperative (its "taker reason").
REDISTRIBUTION_REASON = {
    "open_need": "Koperasi tujuan mengajukan kebutuhan pasokan komoditas ini.",
    "stockout": "Stok komoditas ini di koperasi tujuan habis.",
    "low": "Stok komoditas ini di koperasi tujuan menipis.",
}
DECISION = {"accept": "menerima", "accepted": "menerima", "decline": "menolak", "declined": "menolak"}
ORDER_STATUS = {
    "placed": "Dipesan",
    "confirmed": "Dikonfirmasi pemasok",
    "partially_delivered": "Dikirim sebagian",
    "delivered": "Diterima koperasi",
    "cancelled": "Dibatalkan",
}
ROLE = {
    "admin": "Administrator",
    "officer": "Petugas Dinkopdag",
    "coop_manager": "Pengurus koperasi",
    "supplier": "Pemasok",
}
MEMBER_KIND = {"resident": "Warga", "umkm": "UMKM"}
BOARD_ROLE = {
    "ketua": "Ketua",
    "wakil_ketua": "Wakil ketua",
    "sekretaris": "Sekretaris",
    "bendahara": "Bendahara",
    "manajer": "Manajer",
    "pengawas_ketua": "Ketua pengawas",
    "pengawas": "Pengawas",
}
BUSINESS_UNIT = {
    "sembako": "Sembako",
    "lpg": "Pangkalan LPG",
    "apotek": "Apotek desa",
    "klinik": "Klinik desa",
    "simpan_pinjam": "Simpan pinjam",
    "cold_storage": "Gudang pendingin",
    "logistik": "Logistik",
    "payment_services": "Layanan pembayaran",
    "kemitraan": "Kemitraan",
    "seragam": "Seragam",
    "jasa_konstruksi": "Jasa konstruksi",
    "transportasi": "Transportasi",
    "others": "Lainnya",
    "lainnya": "Lainnya",
}
TRAINING_STATUS = {
    "planned": "Direncanakan",
    "ongoing": "Berlangsung",
    "completed": "Selesai",
    "cancelled": "Dibatalkan",
}
HEALTH_FACTOR = {
    "trading_activity": "Kegiatan jual beli",
    "stalled_stock": "Stok macet",
    "unanswered_needs": "Kebutuhan belum ditanggapi",
    "reports_on_time": "Laporan tepat waktu",
    "member_growth": "Pertumbuhan anggota",
    "training": "Pelatihan",
}


def label(mapping: dict[str, str], code: object) -> str:
    """The Indonesian label for an API code; an unknown code is shown humanised rather than hidden."""
    if code is None or code == "":
        return EMPTY
    text = str(code)
    return mapping.get(text, text.replace("_", " ").capitalize())
