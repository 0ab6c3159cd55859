"""Readable Indonesian sentences for the services' error bodies.

The services answer ``{"error": {"code", "message", "details"}}`` with an English ``message`` meant for
developers. People get a sentence chosen by ``code`` (or, for a code we do not know, by HTTP status), and
for validation errors one line per field with the field's Indonesian name.
"""

from __future__ import annotations

from typing import Any

BY_CODE: dict[str, str] = {
    "insufficient_stock": "Stok tidak cukup: jumlah yang dikeluarkan melebihi stok yang ada.",
    "invalid_credentials": "Nama pengguna atau kata sandi salah.",
    "invalid_grant": "Nama pengguna atau kata sandi salah.",
    "unauthorized": "Sesi Anda sudah berakhir. Silakan masuk kembali.",
    "not_authenticated": "Sesi Anda sudah berakhir. Silakan masuk kembali.",
    "invalid_token": "Sesi Anda sudah berakhir. Silakan masuk kembali.",
    "token_expired": "Sesi Anda sudah berakhir. Silakan masuk kembali.",
    "forbidden": "Anda tidak berhak melakukan tindakan ini.",
    "not_found": "Data yang dicari tidak ditemukan.",
    "conflict": "Permintaan bertentangan dengan data yang sudah ada.",
    "duplicate": "Data yang sama sudah tercatat.",
    "already_exists": "Data yang sama sudah tercatat.",
    "kelurahan_taken": "Kelurahan ini sudah memiliki koperasi.",
    "illegal_transition": "Status tidak dapat diubah ke tahap itu dari status sekarang.",
    "invalid_transition": "Status tidak dapat diubah ke tahap itu dari status sekarang.",
    "illegal_state_change": "Status tidak dapat diubah ke tahap itu dari status sekarang.",
    "invalid_status_transition": "Status tidak dapat diubah ke tahap itu dari status sekarang.",
    "already_decided": "Usulan ini sudah dijawab sebelumnya.",
    "report_exists": "Laporan untuk periode ini sudah dikirim.",
    "duplicate_report": "Laporan untuk periode ini sudah dikirim.",
    "validation_error": "Ada isian yang belum benar. Periksa kembali formulir.",
    "request_validation_error": "Ada isian yang belum benar. Periksa kembali formulir.",
    "payload_too_large": "Data yang dikirim terlalu besar.",
    "rate_limited": "Terlalu banyak permintaan. Tunggu sebentar lalu coba lagi.",
    "too_many_requests": "Terlalu banyak permintaan. Tunggu sebentar lalu coba lagi.",
    "idempotency_conflict": (
        "Formulir ini sudah pernah dikirim dengan isi berbeda. Muat ulang halaman lalu coba lagi."
    ),
    "unknown_commodity": "Komoditas tidak dikenal.",
    "idempotency_key_reused": (
        "Formulir ini sudah pernah dikirim dengan isi berbeda. Muat ulang halaman lalu coba lagi."
    ),
    "duplicate_reference": "Nomor nota ini sudah pernah dicatat untuk jenis catatan yang sama.",
    "illegal_status_change": "Status tidak dapat diubah ke tahap itu. Muat ulang halaman.",
    "concurrent_change": "Data ini baru saja diubah orang lain. Muat ulang halaman lalu coba lagi.",
    "need_closed": "Kebutuhan ini sudah selesai atau ditolak.",
    "exceeds_need": "Jumlah pesanan melebihi kebutuhan yang belum dipesan.",
    "supplier_inactive": "Pemasok ini sedang tidak aktif.",
    "proposal_closed": "Usulan ini sudah ditutup.",
    "already_answered": "Usulan ini sudah dijawab sebelumnya.",
    "cooperative_dissolved": "Koperasi ini sudah dibubarkan.",
    "illegal_order_change": "Pesanan tidak dapat diubah dari status sekarang.",
    "exceeds_order": "Jumlah melebihi pesanan.",
    "auth_unavailable": "Layanan akun sedang tidak dapat dihubungi. Coba lagi beberapa saat lagi.",
}

# 5xx codes with a sentence of their own; any other 5xx says which service is in trouble.
SERVER_CODES = frozenset({"auth_unavailable"})

BY_STATUS: dict[int, str] = {
    400: "Permintaan tidak dapat diproses.",
    401: "Sesi Anda sudah berakhir. Silakan masuk kembali.",
    403: "Anda tidak berhak melakukan tindakan ini.",
    404: "Data yang dicari tidak ditemukan.",
    409: "Permintaan bertentangan dengan data yang sudah ada.",
    413: "Data yang dikirim terlalu besar.",
    422: "Ada isian yang belum benar. Periksa kembali formulir.",
    429: "Terlalu banyak permintaan. Tunggu sebentar lalu coba lagi.",
}

SERVER_TROUBLE = "Layanan {service} sedang mengalami gangguan. Coba lagi beberapa saat lagi."
UNREACHABLE = "Layanan {service} sedang tidak dapat dihubungi. Coba lagi beberapa saat lagi."

SERVICE_NAMES = {
    "registry": "data koperasi",
    "inventory": "stok",
    "sourcing": "kebutuhan & pemasok",
    "reporting": "laporan",
    "notifications": "notifikasi",
}

FIELD_NAMES: dict[str, str] = {
    "username": "Nama pengguna",
    "password": "Kata sandi",
    "commodity": "Komoditas",
    "kind": "Jenis",
    "quantity": "Jumlah",
    "unit_price": "Harga satuan",
    "occurred_at": "Waktu",
    "reference": "Catatan/nomor bukti",
    "description": "Uraian",
    "needed_by": "Dibutuhkan paling lambat",
    "simpanan": "Simpanan",
    "assigned_to": "Petugas",
    "cooperative_id": "Koperasi",
    "period": "Periode",
    "omzet": "Omzet",
    "revenue": "Omzet",
    "members": "Jumlah anggota",
    "member_count": "Jumlah anggota",
    "transactions": "Jumlah transaksi",
    "transaction_count": "Jumlah transaksi",
    "status": "Status",
    "note": "Catatan",
    "supplier_id": "Pemasok",
    "need_id": "Kebutuhan",
}

VALIDATION_TYPES: dict[str, str] = {
    "missing": "wajib diisi",
    "greater_than": "harus lebih dari {gt}",
    "greater_than_equal": "tidak boleh kurang dari {ge}",
    "less_than_equal": "tidak boleh lebih dari {le}",
    "string_too_short": "terlalu pendek",
    "string_too_long": "terlalu panjang",
    "enum": "pilihan tidak dikenal",
    "literal_error": "pilihan tidak dikenal",
    "int_parsing": "harus berupa bilangan bulat",
    "float_parsing": "harus berupa angka",
    "decimal_parsing": "harus berupa angka",
    "date_from_datetime_parsing": "tanggal tidak valid",
    "datetime_from_date_parsing": "waktu tidak valid",
    "string_pattern_mismatch": "formatnya tidak sesuai",
}


def service_name(service: str) -> str:
    return SERVICE_NAMES.get(service, service)


def message_for(status: int, code: str | None, service: str = "") -> str:
    """One sentence for a failed call, by error code first, then by HTTP status."""
    if status >= 500 and code not in SERVER_CODES:
        return SERVER_TROUBLE.format(service=service_name(service))
    if code and code in BY_CODE:
        return BY_CODE[code]
    return BY_STATUS.get(status, "Permintaan tidak dapat diproses.")


def _field_of(loc: Any) -> str:
    if isinstance(loc, list | tuple):
        names = [str(p) for p in loc if not isinstance(p, int) and str(p) not in ("body", "query", "path")]
        return names[-1] if names else ""
    return str(loc or "")


def field_errors(details: Any) -> dict[str, str]:
    """Per-field Indonesian messages from a 422 ``details`` list (pydantic style: ``loc``, ``type``, ``ctx``,
    or the simpler ``{"field", "message"}``). Unknown shapes give an empty dict."""
    result: dict[str, str] = {}
    if isinstance(details, dict):
        details = (
            details.get("errors")
            or details.get("fields")
            or [{"field": k, "message": v} for k, v in details.items() if isinstance(v, str)]
        )
    if not isinstance(details, list):
        return result
    for item in details:
        if not isinstance(item, dict):
            continue
        field = _field_of(item.get("loc")) or str(item.get("field") or "")
        if not field or field in result:
            continue
        kind = str(item.get("type") or "")
        raw_ctx = item.get("ctx")
        ctx: dict[str, Any] = raw_ctx if isinstance(raw_ctx, dict) else {}
        template = VALIDATION_TYPES.get(kind)
        if template:
            try:
                text = template.format(**ctx)
            except (KeyError, IndexError):
                text = template.split(" {")[0]
        else:
            text = "isian tidak valid"
        result[field] = f"{FIELD_NAMES.get(field, field.replace('_', ' ').capitalize())} {text}."
    return result
