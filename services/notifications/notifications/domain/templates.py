"""Messages in Bahasa Indonesia, one template per event type, each with a link to the portal page.

A template turns an event's data (plus the names the service knows: cooperatives from the registry's
events, commodity names from the catalogue) into a title, a body and a portal path. Every routable
type has one; an unknown type still gets a plain generic message rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notifications.domain.formatting import (
    capitalised,
    in_sentence,
    number,
    periode,
    quantity,
    rupiah,
    rupiah_approx,
    tanggal,
)


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    path: str | None = None

    def link(self, portal_url: str) -> str | None:
        return f"{portal_url.rstrip('/')}{self.path}" if self.path else None


@dataclass(frozen=True)
class CooperativeName:
    name: str
    kelurahan_name: str | None = None


@dataclass(frozen=True)
class Names:
    """What a template may look up: cooperatives by id, kelurahan and commodity names by code."""

    cooperatives: Mapping[str, CooperativeName] = field(default_factory=dict)
    commodities: Mapping[str, str] = field(default_factory=dict)
    kelurahan: Mapping[str, str] = field(default_factory=dict)

    def cooperative(self, cooperative_id: Any, kelurahan_code: Any = None) -> str:
        """The cooperative's registered name; before the registry's event arrived, "KKMP <kelurahan>"
        (one KKMP per kelurahan, so that names it unambiguously)."""
        known = self.cooperatives.get(str(cooperative_id)) if cooperative_id else None
        if known is not None:
            return known.name
        if kelurahan_code:
            name = self.kelurahan.get(str(kelurahan_code))
            return f"KKMP {name}" if name else f"KKMP kelurahan {kelurahan_code}"
        return f"koperasi {str(cooperative_id)[:8]}" if cooperative_id else "koperasi"

    def commodity(self, code: Any) -> str:
        """The name inside a sentence ("beras medium"); an unknown code reads as words."""
        if not code:
            return "barang"
        return in_sentence(self.commodities.get(str(code)) or str(code).replace("_", " "))


NEED_KINDS = {"supply": "pasokan", "capital": "permodalan", "training": "pelatihan", "other": "lainnya"}
NEED_STATUSES = {
    "open": "terbuka",
    "acknowledged": "diterima Dinkopdag",
    "in_progress": "sedang diproses",
    "resolved": "selesai",
    "rejected": "ditolak",
}
HEALTH_LEVELS = {"aktif": "aktif", "kurang_aktif": "kurang aktif", "tidak_aktif": "tidak aktif"}
CONDITIONS = {"stalled": "macet", "low": "menipis", "stockout": "habis"}


def _coop_path(data: Mapping[str, Any], key: str = "cooperative_id") -> str | None:
    return f"/koperasi/{data[key]}" if data.get(key) else None


def _need_path(data: Mapping[str, Any]) -> str | None:
    return f"/kebutuhan/{data['need_id']}" if data.get("need_id") else None


def _qty(data: Mapping[str, Any], amount_key: str = "quantity", unit_key: str = "unit") -> str:
    amount = data.get(amount_key)
    if amount is None:
        return ""
    unit = data.get(unit_key)
    return quantity(amount, unit)


Template = Callable[[Mapping[str, Any], Names], Message]


def _stalled(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    return Message(
        f"Stok macet: {capitalised(commodity)}",
        f"Stok {commodity} di {coop} tidak terjual selama {d.get('days_since_sale')} hari "
        f"({_qty(d, 'on_hand')}, ± {rupiah_approx(d.get('value') or 0)}).",
        _coop_path(d),
    )


def _low(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    return Message(
        f"Stok menipis: {capitalised(commodity)}",
        f"Stok {commodity} di {coop} tinggal {_qty(d, 'on_hand')}, cukup untuk ± "
        f"{number(d.get('days_of_cover') or 0, 1)} hari penjualan.",
        _coop_path(d),
    )


def _stockout(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    last = f" (penjualan terakhir {tanggal(d['last_sale_at'])})" if d.get("last_sale_at") else ""
    return Message(
        f"Stok habis: {capitalised(commodity)}",
        f"Stok {commodity} di {coop} habis, padahal masih dicari pembeli{last}.",
        _coop_path(d),
    )


def _recovered(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    condition = CONDITIONS.get(str(d.get("condition")), str(d.get("condition")))
    return Message(
        f"Stok pulih: {capitalised(commodity)}",
        f"Stok {commodity} di {coop} tidak lagi {condition} (sisa {_qty(d, 'on_hand')}).",
        _coop_path(d),
    )


def _price(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    unit = d.get("unit") or "satuan"
    return Message(
        f"Harga di atas batas: {capitalised(commodity)}",
        f"{coop} menjual {_qty(d)} {commodity} seharga {rupiah(d.get('unit_price'))}/{unit} pada "
        f"{tanggal(d.get('occurred_at'))}, di atas batas {rupiah(d.get('price_ceiling'))}/{unit} "
        f"(selisih {rupiah(d.get('excess'))}).",
        _coop_path(d),
    )


def _need_what(d: Mapping[str, Any], n: Names) -> str:
    kind = NEED_KINDS.get(str(d.get("kind")), str(d.get("kind")))
    what = f"kebutuhan {kind}"
    if d.get("commodity"):
        what += f" {n.commodity(d['commodity'])}"
    if d.get("quantity") is not None:
        what += f" {_qty(d)}"
    return what


def _need_submitted(d: Mapping[str, Any], n: Names) -> Message:
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    by = f", dibutuhkan sebelum {tanggal(d['needed_by'])}" if d.get("needed_by") else ""
    description = str(d.get("description") or "").strip()
    quote = f" \u201c{description[:200]}\u201d" if description else ""
    kind = NEED_KINDS.get(str(d.get("kind")), str(d.get("kind")))
    return Message(
        f"Kebutuhan baru ({kind}): {coop}",
        f"{coop} mengajukan {_need_what(d, n)}{by}.{quote}",
        _need_path(d),
    )


def _need_status(d: Mapping[str, Any], n: Names) -> Message:
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    status = NEED_STATUSES.get(str(d.get("new_status")), str(d.get("new_status")))
    note = f" Catatan: {str(d['note']).strip()[:200]}" if d.get("note") else ""
    return Message(
        f"Kebutuhan {status}",
        f"{capitalised(_need_what(d, n))} {coop} kini berstatus {status}.{note}",
        _need_path(d),
    )


def _need_escalated(d: Mapping[str, Any], n: Names) -> Message:
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    return Message(
        f"Eskalasi: kebutuhan {coop} belum ditanggapi",
        f"{capitalised(_need_what(d, n))} dari {coop} belum ditanggapi selama {d.get('waited_hours')} jam "
        f"(diajukan {tanggal(d.get('submitted_at'))}). Mohon segera ditindaklanjuti.",
        _need_path(d),
    )


def _redistribution(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    giver = n.cooperative(d.get("from_cooperative_id") or d.get("cooperative_id"), d.get("kelurahan_code"))
    taker = n.cooperative(d.get("to_cooperative_id"), d.get("to_kelurahan_code"))
    return Message(
        f"Usulan redistribusi: {capitalised(commodity)}",
        f"Diusulkan memindahkan {_qty(d)} {commodity} yang macet dari {giver} ke {taker} "
        f"(± {number(d.get('distance_km') or 0, 1)} km). Kedua pengurus dapat menerima atau menolak.",
        _coop_path(d),
    )


def _redistribution_accepted(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    giver = n.cooperative(d.get("from_cooperative_id") or d.get("cooperative_id"), d.get("kelurahan_code"))
    taker = n.cooperative(d.get("to_cooperative_id"), d.get("to_kelurahan_code"))
    return Message(
        f"Redistribusi disetujui: {capitalised(commodity)}",
        f"Pemindahan {_qty(d)} {commodity} dari {giver} ke {taker} telah disetujui.",
        _coop_path(d),
    )


def _health(d: Mapping[str, Any], n: Names) -> Message:
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    new = HEALTH_LEVELS.get(str(d.get("new_level")), str(d.get("new_level")))
    old = HEALTH_LEVELS.get(str(d.get("old_level")), None) if d.get("old_level") else None
    change = f"berubah dari {old} menjadi {new}" if old else f"kini {new}"
    return Message(
        f"Kesehatan koperasi: {coop} {new}",
        f"Tingkat kesehatan {coop} {change} (skor {number(d.get('score') or 0, 0)}/100).",
        _coop_path(d),
    )


def _report_overdue(d: Mapping[str, Any], n: Names) -> Message:
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    return Message(
        f"Laporan bulanan terlambat: {periode(str(d.get('period')))}",
        f"Laporan bulanan {coop} untuk periode {periode(str(d.get('period')))} belum masuk "
        f"(batas {tanggal(d.get('due_date'))}).",
        _coop_path(d),
    )


def _report_submitted(d: Mapping[str, Any], n: Names) -> Message:
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    timing = "tepat waktu" if d.get("on_time") else "terlambat"
    omzet = f", omzet {rupiah(d['omzet'])}" if d.get("omzet") is not None else ""
    return Message(
        f"Laporan bulanan masuk: {periode(str(d.get('period')))}",
        f"{coop} mengirim laporan periode {periode(str(d.get('period')))} {timing}{omzet}.",
        _coop_path(d),
    )


def _order_placed(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    return Message(
        f"Pesanan dibuat: {capitalised(commodity)}",
        f"Pesanan {_qty(d)} {commodity} untuk {coop} dibuat dengan harga "
        f"{rupiah(d.get('unit_price'))} per satuan.",
        _need_path(d) or _coop_path(d),
    )


def _order_delivered(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    done = "" if d.get("complete", True) else " (sebagian; sisanya menyusul)"
    return Message(
        f"Pesanan tiba: {capitalised(commodity)}",
        f"{_qty(d)} {commodity} dari pemasok telah diterima {coop} pada "
        f"{tanggal(d.get('delivered_at'))}{done}.",
        _coop_path(d),
    )


def _supplier_matched(d: Mapping[str, Any], n: Names) -> Message:
    commodity = n.commodity(d.get("commodity"))
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    count = len(d.get("matches") or [])
    return Message(
        f"Pemasok ditemukan: {capitalised(commodity)}",
        f"{count} pemasok cocok untuk kebutuhan {commodity} {coop}.",
        _need_path(d),
    )


def _registered(d: Mapping[str, Any], n: Names) -> Message:
    name = d.get("name") or n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    place = f" di kelurahan {d['kelurahan_name']}" if d.get("kelurahan_name") else ""
    return Message(f"KKMP baru terdaftar: {name}", f"{name}{place} telah terdaftar.", _coop_path(d))


def _updated(d: Mapping[str, Any], n: Names) -> Message:
    name = d.get("name") or n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    changed = ", ".join(d.get("changed") or []) or "profil"
    return Message(f"Data koperasi diperbarui: {name}", f"Data {name} diperbarui ({changed}).", _coop_path(d))


def _training(d: Mapping[str, Any], n: Names) -> Message:
    coop = n.cooperative(d.get("cooperative_id"), d.get("kelurahan_code"))
    return Message(
        f"Pelatihan selesai: {d.get('title')}",
        f"{coop} menyelesaikan pelatihan \u201c{d.get('title')}\u201d ({d.get('participants')} peserta).",
        _coop_path(d),
    )


def _potential(d: Mapping[str, Any], _n: Names) -> Message:
    return Message(
        f"Potensi kelurahan dipetakan: {d.get('sector')}",
        f"Potensi {d.get('sector')} dipetakan di kelurahan {d.get('kelurahan_code')}: "
        f"{str(d.get('description') or '')[:200]}",
        _coop_path(d),
    )


TEMPLATES: dict[str, Template] = {
    "stock.stalled.v1": _stalled,
    "stock.low.v1": _low,
    "stock.stockout.v1": _stockout,
    "stock.recovered.v1": _recovered,
    "price.ceiling_exceeded.v1": _price,
    "need.submitted.v1": _need_submitted,
    "need.status_changed.v1": _need_status,
    "need.escalated": _need_escalated,
    "redistribution.proposed.v1": _redistribution,
    "redistribution.accepted.v1": _redistribution_accepted,
    "cooperative.health_changed.v1": _health,
    "report.overdue.v1": _report_overdue,
    "report.submitted.v1": _report_submitted,
    "order.placed.v1": _order_placed,
    "order.delivered.v1": _order_delivered,
    "supplier.matched.v1": _supplier_matched,
    "cooperative.registered.v1": _registered,
    "cooperative.updated.v1": _updated,
    "training.completed.v1": _training,
    "potential.mapped.v1": _potential,
}

#: Short Indonesian labels of the types, for preference screens.
LABELS: dict[str, str] = {
    "stock.stalled.v1": "Stok macet",
    "stock.low.v1": "Stok menipis",
    "stock.stockout.v1": "Stok habis",
    "stock.recovered.v1": "Stok pulih",
    "price.ceiling_exceeded.v1": "Harga di atas batas (HET/HAP)",
    "need.submitted.v1": "Kebutuhan baru",
    "need.status_changed.v1": "Status kebutuhan berubah",
    "need.escalated": "Eskalasi kebutuhan belum ditanggapi",
    "redistribution.proposed.v1": "Usulan redistribusi",
    "redistribution.accepted.v1": "Redistribusi disetujui",
    "cooperative.health_changed.v1": "Perubahan kesehatan koperasi",
    "report.overdue.v1": "Laporan bulanan terlambat",
    "report.submitted.v1": "Laporan bulanan masuk",
    "order.placed.v1": "Pesanan dibuat",
    "order.delivered.v1": "Pesanan tiba",
    "supplier.matched.v1": "Pemasok ditemukan",
    "cooperative.registered.v1": "KKMP baru terdaftar",
    "cooperative.updated.v1": "Data koperasi diperbarui",
    "training.completed.v1": "Pelatihan selesai",
    "potential.mapped.v1": "Potensi kelurahan dipetakan",
    "announcement": "Pengumuman Dinkopdag",
    "digest.daily": "Ringkasan harian",
}


def render(event_type: str, data: Mapping[str, Any], names: Names) -> Message:
    template = TEMPLATES.get(event_type)
    if template is None:
        label = LABELS.get(event_type, event_type)
        coop = data.get("cooperative_id")
        where = f" untuk {names.cooperative(coop, data.get('kelurahan_code'))}" if coop else ""
        return Message(f"Pemberitahuan: {label}", f"Ada pemberitahuan {label}{where}.", _coop_path(data))
    return template(data, names)


@dataclass(frozen=True)
class DigestLine:
    title: str
    body: str
    created_at: datetime


def render_digest(lines: list[DigestLine], max_lines: int, day: datetime) -> Message:
    """One message for a day's worth of notifications held for an officer who chose a digest."""
    shown = lines[:max_lines]
    body = "\n".join(f"\u2022 {line.title}: {line.body}" for line in shown)
    if len(lines) > len(shown):
        body += f"\n\u2026 dan {len(lines) - len(shown)} pemberitahuan lainnya."
    return Message(
        f"Ringkasan harian {tanggal(day)}: {len(lines)} pemberitahuan",
        body,
        "/notifikasi",
    )
