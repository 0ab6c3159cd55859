"""Pages scoped to one cooperative: its profile (Dinkopdag and its own managers) and the managers' quick
forms (stock in, sales, needs, proposals, the monthly report).

A manager asking for another cooperative's page gets the 404 page before any service is called; the
services refuse it too. Forms are built for a phone: one column, big tap targets, numbers typed the
Indonesian way (``1.250.000``, ``2,5``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from kkmp_shared import clock
from portal.adapters.clients import ServiceUnavailable, UpstreamError
from portal.domain import format as fmt
from portal.domain import proposals
from portal.domain.format import parse_angka
from portal.entrypoints.lookups import Names, commodities_by_code, names_for
from portal.entrypoints.web import (
    CsrfChecked,
    SignedIn,
    Visit,
    flash,
    gather,
    new_idempotency_key,
    redirect,
    render,
    required,
)

router = APIRouter()

# What a manager records day to day; adjustments and transfers come from other flows.
QUICK_KINDS = {
    "receipt": ("Barang masuk", "Catat barang yang baru diterima (pembelian, kiriman pemasok)."),
    "sale": ("Penjualan", "Catat barang yang terjual ke anggota atau warga."),
    "spoilage": ("Rusak/susut", "Catat barang yang rusak, kedaluwarsa atau hilang."),
}
NEED_KINDS = ["supply", "capital", "training", "other"]


async def _cooperative(visit: Visit, cooperative_id: str) -> dict[str, Any]:
    visit.ensure_cooperative(cooperative_id)
    return required((await gather(coop=visit.registry.cooperative(cooperative_id)))["coop"])


# --- profile -------------------------------------------------------------------------------------------


@router.get("/koperasi/{cooperative_id}", include_in_schema=False)
async def profile(visit: SignedIn, cooperative_id: str) -> Response:
    visit.ensure_cooperative(cooperative_id)
    r = await gather(
        coop=visit.registry.cooperative(cooperative_id),
        members=visit.registry.members(cooperative_id),
        trainings=visit.registry.trainings(cooperative_id=cooperative_id),
        stock=visit.inventory.stock(cooperative_id),
        commodities=commodities_by_code(visit),
        needs=visit.sourcing.needs(cooperative_id=cooperative_id),
        health=visit.reporting.health(cooperative_id),
        reports=visit.reporting.reports(cooperative_id),
    )
    coop = required(r["coop"])
    names = Names(visit, {str(coop.get("id")): coop}, r["commodities"].or_({}))
    needs = sorted(r["needs"].or_([]), key=lambda n: str(n.get("created_at") or ""), reverse=True)
    reports = sorted(r["reports"].or_([]), key=lambda x: str(x.get("period") or ""), reverse=True)
    return await render(
        visit.request,
        "cooperative.html",
        {
            "coop": coop,
            "r": r,
            "board": _board_rows(coop.get("board")),
            "members": r["members"].or_([]),
            "stock": _stock_rows(r["stock"].or_([]), names),
            "needs": needs,
            "health": r["health"].value or {},
            "reports": reports,
            "trainings": r["trainings"].or_([]),
            "names": names,
        },
        visit=visit,
    )


def _board_rows(board: Any) -> list[dict[str, str]]:
    """The board as (position, name) rows whether the registry sends a list or a mapping."""
    rows: list[dict[str, str]] = []
    if isinstance(board, dict):
        for position, person in board.items():
            people = person if isinstance(person, list) else [person]
            for p in people:
                name = p.get("name") if isinstance(p, dict) else p
                if name:
                    rows.append({"position": fmt.label(fmt.BOARD_ROLE, position), "name": str(name)})
    elif isinstance(board, list):
        for p in board:
            if isinstance(p, dict) and p.get("name"):
                rows.append(
                    {
                        "position": fmt.label(fmt.BOARD_ROLE, p.get("position") or p.get("role")),
                        "name": str(p["name"]),
                    }
                )
    return rows


STATUS_ORDER = {"stockout": 0, "low": 1, "stalled": 2, "ok": 3}


def _stock_rows(stock: list[dict[str, Any]], names: Names) -> list[dict[str, Any]]:
    rows = []
    for item in stock:
        code = item.get("commodity")
        rows.append(
            {
                **item,
                "name": item.get("name") or names.commodity(code),
                "unit": item.get("unit") or names.unit(code),
            }
        )
    return sorted(rows, key=lambda x: (STATUS_ORDER.get(str(x.get("status")), 9), x["name"]))


# --- stock ---------------------------------------------------------------------------------------------


@router.get("/koperasi/{cooperative_id}/stok", include_in_schema=False)
async def stock(visit: SignedIn, cooperative_id: str) -> Response:
    visit.ensure_cooperative(cooperative_id)
    r = await gather(
        coop=visit.registry.cooperative(cooperative_id),
        stock=visit.inventory.stock(cooperative_id),
        commodities=commodities_by_code(visit),
        movements=visit.inventory.movements(cooperative_id, limit=8),
        proposals=visit.sourcing.redistributions(cooperative_id=cooperative_id, status="proposed"),
    )
    coop = required(r["coop"])
    stock_rows = required(r["stock"])
    names = Names(visit, {str(coop.get("id")): coop}, r["commodities"].or_({}))
    rows = _stock_rows(stock_rows, names)
    waiting = [
        p
        for p in r["proposals"].or_([])
        if proposals.involves(p, cooperative_id) and proposals.awaits_answer(p, cooperative_id)
    ]
    counts = {s: sum(1 for x in rows if x.get("status") == s) for s in ("stockout", "low", "stalled")}
    return await render(
        visit.request,
        "stock.html",
        {
            "coop": coop,
            "rows": rows,
            "counts": counts,
            "names": names,
            "movements": r["movements"].or_([]),
            "waiting_proposals": len(waiting),
        },
        visit=visit,
    )


# --- recording movements -------------------------------------------------------------------------------


def _movement_form(kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "commodity": "",
        "quantity": "",
        "unit_price": "",
        "occurred_at": "",
        "reference": "",
    }


async def _render_movement(
    visit: Visit,
    coop: dict[str, Any],
    form: dict[str, Any],
    key: str,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    r = await gather(commodities=commodities_by_code(visit), stock=visit.inventory.stock(str(coop.get("id"))))
    commodities = r["commodities"].or_({})
    on_hand = {str(s.get("commodity")): s.get("on_hand") for s in r["stock"].or_([])}
    ordered = sorted(commodities.values(), key=lambda c: str(c.get("name")))
    return await render(
        visit.request,
        "movement_form.html",
        {
            "coop": coop,
            "form": form,
            "kinds": QUICK_KINDS,
            "idempotency_key": key,
            # What the cooperative keeps comes first; the rest of the catalogue waits behind a click.
            "commodities": [c for c in ordered if str(c.get("code")) in on_hand],
            "other_commodities": [
                c for c in ordered if str(c.get("code")) not in on_hand and c.get("active", True)
            ],
            "commodities_error": r["commodities"].message,
            "on_hand": on_hand,
            "errors": errors or {},
            "error": error,
            "now_local": clock.now().astimezone(fmt.JAKARTA).strftime("%Y-%m-%dT%H:%M"),
        },
        visit=visit,
        status_code=status_code,
    )


@router.get("/koperasi/{cooperative_id}/catat", include_in_schema=False)
async def movement_form(
    visit: SignedIn, cooperative_id: str, jenis: str = "sale", komoditas: str = ""
) -> Response:
    coop = await _cooperative(visit, cooperative_id)
    form = _movement_form(jenis if jenis in QUICK_KINDS else "sale")
    form["commodity"] = komoditas
    # A new key per form shown: the same form submitted twice records once (the service dedups by key).
    return await _render_movement(visit, coop, form, new_idempotency_key())


def _number(value: Decimal) -> int | float:
    """A JSON number for a quantity: whole numbers stay integers (``5``, not ``5.0``)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _local_datetime(text: str) -> datetime | None:
    """``2025-01-05T14:30`` from a datetime-local input, meant in Jakarta time."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=fmt.JAKARTA)
    except ValueError:
        return None


@router.post("/koperasi/{cooperative_id}/catat", include_in_schema=False)
async def record_movement(visit: SignedIn, cooperative_id: str, _csrf: CsrfChecked) -> Response:
    coop = await _cooperative(visit, cooperative_id)
    raw = await visit.request.form()
    form = {k: str(raw.get(k) or "").strip() for k in _movement_form("sale")}
    key = str(raw.get("idempotency_key") or "") or new_idempotency_key()
    errors: dict[str, str] = {}
    if form["kind"] not in QUICK_KINDS:
        errors["kind"] = "Pilih jenis catatan."
    if not form["commodity"]:
        errors["commodity"] = "Pilih komoditas."
    quantity = parse_angka(form["quantity"])
    if quantity is None or quantity <= 0:
        errors["quantity"] = "Isi jumlah dengan angka lebih dari nol, misalnya 10 atau 2,5."
    elif quantity != quantity.quantize(Decimal("0.001")):
        errors["quantity"] = "Jumlah paling banyak tiga angka di belakang koma."
    unit_price: Decimal | None = None
    if form["unit_price"]:
        unit_price = parse_angka(form["unit_price"])
        if unit_price is None or unit_price < 0:
            errors["unit_price"] = "Isi harga dengan angka, misalnya 13.500."
        elif unit_price != unit_price.to_integral_value():
            errors["unit_price"] = "Harga dalam rupiah bulat, tanpa sen."
    occurred_at: datetime | None = None
    if form["occurred_at"]:
        occurred_at = _local_datetime(form["occurred_at"])
        if occurred_at is None:
            errors["occurred_at"] = "Waktu tidak valid."
        elif occurred_at > clock.now():
            errors["occurred_at"] = "Waktu tidak boleh di masa depan."
    if errors or quantity is None:
        return await _render_movement(visit, coop, form, key, errors, status_code=422)

    movement: dict[str, Any] = {
        "commodity": form["commodity"],
        "kind": form["kind"],
        "quantity": _number(quantity),
    }
    if unit_price is not None:
        movement["unit_price"] = int(unit_price)  # whole rupiah: the services refuse fractions
    if occurred_at is not None:
        movement["occurred_at"] = occurred_at.isoformat()
    if form["reference"]:
        movement["reference"] = form["reference"][:200]
    try:
        await visit.inventory.record_movement(cooperative_id, movement, key)
    except ServiceUnavailable as exc:
        # The outcome is unknown: keep the same key so pressing "Simpan" again cannot record it twice.
        return await _render_movement(
            visit,
            coop,
            form,
            key,
            error=f"{exc.message} Data mungkin belum tersimpan; tekan Simpan lagi "
            "(tidak akan tercatat dua kali).",
            status_code=503,
        )
    except UpstreamError as exc:
        if exc.status in (401, 404):
            raise
        # A refused movement is final for this key (same key → same answer): a corrected form needs a new key.
        return await _render_movement(
            visit,
            coop,
            form,
            new_idempotency_key(),
            exc.fields,
            exc.message,
            status_code=exc.status if exc.status < 500 else 502,
        )
    names = await names_for(visit, coops=False)
    what = QUICK_KINDS[form["kind"]][0]
    flash(
        visit.request,
        f"{what} {fmt.jumlah(quantity, names.unit(form['commodity']))} "
        f"{names.commodity(form['commodity'])} tercatat.",
    )
    commodity = (
        (await commodities_by_code(visit)).get(form["commodity"], {}) if form["kind"] == "sale" else {}
    )
    ceiling = commodity.get("price_ceiling") if commodity else None
    if unit_price is not None and ceiling is not None and unit_price > Decimal(str(ceiling)):
        flash(
            visit.request,
            f"Harga jual {fmt.rupiah(unit_price)} di atas HET {fmt.rupiah(ceiling)}. "
            "Dinkopdag akan menerima pemberitahuan.",
            "warning",
        )
    return redirect(f"/koperasi/{cooperative_id}/catat?jenis={form['kind']}")


# --- needs ---------------------------------------------------------------------------------------------


def _need_form() -> dict[str, str]:
    return {"kind": "supply", "commodity": "", "quantity": "", "needed_by": "", "description": ""}


async def _render_needs(
    visit: Visit,
    coop: dict[str, Any],
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    cooperative_id = str(coop.get("id"))
    r = await gather(
        needs=visit.sourcing.needs(cooperative_id=cooperative_id), commodities=commodities_by_code(visit)
    )
    commodities = r["commodities"].or_({})
    needs = sorted(r["needs"].or_([]), key=lambda n: str(n.get("created_at") or ""), reverse=True)
    return await render(
        visit.request,
        "coop_needs.html",
        {
            "coop": coop,
            "needs": needs,
            "needs_error": r["needs"].message,
            "form": form,
            "errors": errors or {},
            "error": error,
            "kinds": NEED_KINDS,
            "names": Names(visit, {cooperative_id: coop}, commodities),
            "commodities": sorted(commodities.values(), key=lambda c: str(c.get("name"))),
            "today": clock.today(fmt.JAKARTA).isoformat(),
        },
        visit=visit,
        status_code=status_code,
    )


@router.get("/koperasi/{cooperative_id}/kebutuhan", include_in_schema=False)
async def coop_needs(visit: SignedIn, cooperative_id: str) -> Response:
    coop = await _cooperative(visit, cooperative_id)
    return await _render_needs(visit, coop, _need_form())


@router.post("/koperasi/{cooperative_id}/kebutuhan", include_in_schema=False)
async def submit_need(visit: SignedIn, cooperative_id: str, _csrf: CsrfChecked) -> Response:
    coop = await _cooperative(visit, cooperative_id)
    raw = await visit.request.form()
    form = {k: str(raw.get(k) or "").strip() for k in _need_form()}
    errors: dict[str, str] = {}
    if form["kind"] not in NEED_KINDS:
        errors["kind"] = "Pilih jenis kebutuhan."
    if form["kind"] == "supply" and not form["commodity"]:
        errors["commodity"] = "Untuk kebutuhan pasokan, pilih komoditasnya."
    if form["kind"] == "supply" and not form["quantity"]:
        errors["quantity"] = "Untuk kebutuhan pasokan, isi jumlah yang dibutuhkan."
    quantity = parse_angka(form["quantity"]) if form["quantity"] else None
    if form["quantity"] and (quantity is None or quantity <= 0):
        errors["quantity"] = "Isi jumlah dengan angka lebih dari nol."
    if form["needed_by"]:
        try:
            if date.fromisoformat(form["needed_by"]) < clock.today(fmt.JAKARTA):
                errors["needed_by"] = "Tanggal tidak boleh sudah lewat."
        except ValueError:
            errors["needed_by"] = "Tanggal tidak valid."
    if len(form["description"]) < 5:
        errors["description"] = "Jelaskan kebutuhan atau kendala Anda (paling sedikit 5 huruf)."
    if errors:
        return await _render_needs(visit, coop, form, errors, status_code=422)
    need: dict[str, Any] = {
        "cooperative_id": cooperative_id,
        "kind": form["kind"],
        "description": form["description"][:2000],
    }
    if form["commodity"] and form["kind"] == "supply":
        need["commodity"] = form["commodity"]
    if quantity is not None:
        need["quantity"] = _number(quantity)
    if form["needed_by"]:
        need["needed_by"] = form["needed_by"]
    try:
        await visit.sourcing.submit_need(need)
    except UpstreamError as exc:
        if exc.status in (401, 404):
            raise
        return await _render_needs(
            visit, coop, form, exc.fields, exc.message, status_code=exc.status if exc.status < 500 else 502
        )
    flash(visit.request, "Kebutuhan terkirim ke Dinkopdag. Anda akan menerima notifikasi saat ditanggapi.")
    return redirect(f"/koperasi/{cooperative_id}/kebutuhan")


# --- redistribution proposals --------------------------------------------------------------------------


@router.get("/koperasi/{cooperative_id}/usulan", include_in_schema=False)
async def coop_redistributions(visit: SignedIn, cooperative_id: str) -> Response:
    coop = await _cooperative(visit, cooperative_id)
    r = await gather(rows=visit.sourcing.redistributions(cooperative_id=cooperative_id))
    rows = sorted(
        [p for p in required(r["rows"]) if proposals.involves(p, cooperative_id)],
        key=lambda p: (not proposals.awaits_answer(p, cooperative_id), str(p.get("created_at") or "")),
    )
    names = await names_for(visit)
    return await render(
        visit.request,
        "redistributions.html",
        {
            "rows": rows,
            "names": names,
            "coop": coop,
            "scope_id": cooperative_id,
            "back": f"/koperasi/{cooperative_id}/usulan",
            "status": "",
            "komoditas": "",
            "commodity_options": [],
        },
        visit=visit,
    )


# --- monthly report ------------------------------------------------------------------------------------

REPORT_FIELDS = ("period", "omzet", "members", "transactions", "simpanan", "notes")


def _recent_periods(today: date, count: int = 4) -> list[str]:
    year, month = today.year, today.month
    periods = []
    for _ in range(count):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return periods


async def _render_report(
    visit: Visit,
    coop: dict[str, Any],
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    r = await gather(reports=visit.reporting.reports(str(coop.get("id"))))
    reports = sorted(r["reports"].or_([]), key=lambda x: str(x.get("period") or ""), reverse=True)
    today = clock.now().astimezone(fmt.JAKARTA).date()
    return await render(
        visit.request,
        "report_form.html",
        {
            "coop": coop,
            "form": form,
            "errors": errors or {},
            "error": error,
            "reports": reports,
            "periods": _recent_periods(today),
        },
        visit=visit,
        status_code=status_code,
    )


@router.get("/koperasi/{cooperative_id}/laporan", include_in_schema=False)
async def report_form(visit: SignedIn, cooperative_id: str) -> Response:
    coop = await _cooperative(visit, cooperative_id)
    today = clock.now().astimezone(fmt.JAKARTA).date()
    periods = _recent_periods(today)
    form = {k: "" for k in REPORT_FIELDS}
    form["period"] = periods[1]  # the month just closed is the one usually reported
    form["members"] = str(coop.get("member_count") or "")
    return await _render_report(visit, coop, form)


@router.post("/koperasi/{cooperative_id}/laporan", include_in_schema=False)
async def submit_report(visit: SignedIn, cooperative_id: str, _csrf: CsrfChecked) -> Response:
    coop = await _cooperative(visit, cooperative_id)
    raw = await visit.request.form()
    form = {k: str(raw.get(k) or "").strip() for k in REPORT_FIELDS}
    errors: dict[str, str] = {}
    today = clock.now().astimezone(fmt.JAKARTA).date()
    if form["period"] not in _recent_periods(today, 13):
        errors["period"] = "Pilih periode laporan."
    # Reporting takes whole numbers only (rupiah without sen, counts): checked here, in words.
    values: dict[str, int] = {}
    for name, text, needed in (
        ("omzet", "Isi omzet dalam rupiah bulat, misalnya 12.500.000.", True),
        ("members", "Isi jumlah anggota dengan bilangan bulat.", True),
        ("transactions", "Isi jumlah transaksi dengan bilangan bulat.", True),
        ("simpanan", "Isi simpanan dalam rupiah bulat, atau kosongkan.", False),
    ):
        if not form[name] and not needed:
            continue
        value = parse_angka(form[name])
        if value is None or value < 0 or value != value.to_integral_value():
            errors[name] = text
        else:
            values[name] = int(value)
    if errors:
        return await _render_report(visit, coop, form, errors, status_code=422)
    report: dict[str, Any] = {
        "period": form["period"],
        "omzet": values["omzet"],
        "members": values["members"],
        "transactions": values["transactions"],
    }
    if "simpanan" in values:
        report["simpanan"] = values["simpanan"]
    if form["notes"]:
        report["notes"] = form["notes"][:2000]
    try:
        await visit.reporting.submit_report(cooperative_id, report)
    except UpstreamError as exc:
        if exc.status in (401, 404):
            raise
        return await _render_report(
            visit, coop, form, exc.fields, exc.message, status_code=exc.status if exc.status < 500 else 502
        )
    flash(visit.request, f"Laporan {fmt.periode(form['period'])} terkirim. Terima kasih.")
    return redirect(f"/koperasi/{cooperative_id}/laporan")
