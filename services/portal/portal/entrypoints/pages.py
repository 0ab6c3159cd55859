"""The portal's pages for Dinkopdag (admin, officer) and the pages everyone shares.

Each route gathers what it shows from the services concurrently, turns it into display rows, and
renders a Jinja2 template. Cooperative-scoped pages (a cooperative's profile, stock, forms) live in
``cooperative.py``; signing in and out in ``auth.py``. ``router`` here includes both.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from kkmp_shared import clock
from portal.adapters.clients import UpstreamError
from portal.domain import dashboard as dash
from portal.domain import format as fmt
from portal.domain.format import parse_angka
from portal.entrypoints import auth, cooperative
from portal.entrypoints.lookups import Names, commodities_by_code, cooperatives_by_id, names_for
from portal.entrypoints.web import (
    CsrfChecked,
    Dinkopdag,
    PageNotFound,
    SignedIn,
    flash,
    gather,
    redirect,
    render,
    required,
    safe_next,
    signed_in,
)
from starlette.background import BackgroundTask

router = APIRouter()
router.include_router(auth.router)
router.include_router(cooperative.router)


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    visit = await signed_in(request)
    return redirect(auth.home_for(visit.user))


# --- dashboard -----------------------------------------------------------------------------------------


@router.get("/dasbor", include_in_schema=False)
async def dashboard(visit: Dinkopdag, peta: str = "kesehatan") -> Response:
    now = clock.now()
    r = await gather(
        summary=visit.reporting.summary(),
        kecamatan=visit.reporting.kecamatan(),
        stalled=visit.reporting.stalled(),
        open_needs=visit.sourcing.needs(status="open"),
        all_needs=visit.sourcing.needs(),
        coops=cooperatives_by_id(visit),
        commodities=commodities_by_code(visit),
        health=visit.reporting.cooperatives_health(),
        series=visit.reporting.timeseries(weeks=12),
    )
    reference = visit.reference
    coops: dict[str, dict[str, Any]] = r["coops"].or_({})
    names = Names(visit, coops, r["commodities"].or_({}))
    figures = dash.kecamatan_figures(r["kecamatan"].or_([]))
    city = reference.city_map
    map_view = dash.colour_map(city, figures, peta)
    coops_by_kelurahan = {str(c.get("kelurahan_code")): c for c in coops.values() if c.get("kelurahan_code")}
    levels = {
        str(row.get("cooperative_id") or row.get("id")): str(
            row.get("level") or dash.dig(row, "health", "level") or ""
        )
        for row in r["health"].or_([])
    }
    map_view.points = dash.cooperative_points(
        city.projection,
        ((p.code, p.name, p.lat, p.lon) for p in reference.kelurahan.values()),
        coops_by_kelurahan,
        levels,
    )
    kecamatan_names = {code: place.name for code, place in reference.kecamatan.items()}
    stalled_chart = dash.stalled_by_kecamatan(figures, kecamatan_names)
    on_time_chart = dash.needs_on_time_series(r["all_needs"].or_([]), now)
    # Reporting's weeks carry the sales value in rupiah as "value" (older drafts called it "sales").
    sales_chart = (
        (dash.weekly_series(r["series"].value, "value") or dash.weekly_series(r["series"].value, "sales"))
        if r["series"].ok
        else None
    )
    stalled_weekly = dash.weekly_series(r["series"].value, "stalled_value") if r["series"].ok else None
    charts = {
        "sales": sales_chart.__dict__ if sales_chart else None,
        "stalled": (stalled_weekly or stalled_chart).__dict__,
        "stalled_kind": "weekly" if stalled_weekly else "kecamatan",
        "ontime": on_time_chart.__dict__,
        "target_hours": dash.RESPONSE_TARGET_HOURS,
    }
    stalled_rows = sorted(r["stalled"].or_([]), key=lambda s: float(s.get("value") or 0), reverse=True)
    attention = dash.cooperatives_needing_attention(
        r["health"].or_([]), r["stalled"].or_([]), r["open_needs"].or_([]), now
    )
    kecamatan_rows = sorted(
        figures.values(),
        key=lambda f: (f.active_share if f.active_share is not None else 2, -f.stalled_value),
    )
    return await render(
        visit.request,
        "dashboard.html",
        {
            "r": r,
            "summary": r["summary"].value or {},
            "map": map_view,
            "map_modes": dash.MAP_MODES,
            "charts_json": json.dumps(charts, ensure_ascii=False),
            "has_sales": sales_chart is not None,
            "stalled_kind": charts["stalled_kind"],
            "stalled_rows": stalled_rows[:15],
            "stalled_total": len(stalled_rows),
            "open_needs": dash.oldest_first(r["open_needs"].or_([]))[:15],
            "open_needs_total": len(r["open_needs"].or_([])),
            "attention": attention,
            "kecamatan_rows": kecamatan_rows,
            "names": names,
            "now": now,
            "target_hours": dash.RESPONSE_TARGET_HOURS,
        },
        visit=visit,
    )


# --- cooperatives list -----------------------------------------------------------------------------------

PAGE_SIZE = 30


@router.get("/koperasi", include_in_schema=False)
async def cooperatives(
    visit: Dinkopdag, kecamatan: str = "", status: str = "", q: str = "", halaman: int = 1
) -> Response:
    halaman = max(1, halaman)
    page = required(
        (
            await gather(
                page=visit.registry.cooperatives(
                    kecamatan_code=kecamatan or None,
                    status=status or None,
                    q=q.strip() or None,
                    limit=PAGE_SIZE,
                    offset=(halaman - 1) * PAGE_SIZE,
                )
            )
        )["page"]
    )
    names = Names(visit)
    pages = max(1, -(-page.total // PAGE_SIZE))
    return await render(
        visit.request,
        "cooperatives.html",
        {
            "page": page,
            "halaman": halaman,
            "pages": pages,
            "filters": {"kecamatan": kecamatan, "status": status, "q": q},
            "kecamatan_options": sorted(visit.reference.kecamatan.values(), key=lambda p: p.name),
            "names": names,
        },
        visit=visit,
    )


# --- needs inbox ---------------------------------------------------------------------------------------

NEED_TABS = ["open", "acknowledged", "in_progress", "resolved", "rejected"]
NEXT_STATUSES = {
    "open": ["acknowledged", "in_progress", "rejected"],
    "acknowledged": ["in_progress", "rejected"],
    "in_progress": ["resolved", "rejected"],
}
STATUS_ACTIONS = {
    "acknowledged": "Terima (tanggapi)",
    "in_progress": "Tangani",
    "resolved": "Selesai",
    "rejected": "Tolak",
}


@router.get("/kebutuhan", include_in_schema=False)
async def needs_inbox(visit: Dinkopdag, status: str = "open", jenis: str = "") -> Response:
    status = status if status in NEED_TABS else "open"
    r = await gather(needs=visit.sourcing.needs(status=status, kind=jenis or None))
    needs = required(r["needs"])
    rows = (
        dash.oldest_first(needs)
        if status in ("open", "acknowledged", "in_progress")
        else sorted(needs, key=lambda n: str(n.get("updated_at") or n.get("created_at") or ""), reverse=True)
    )
    return await render(
        visit.request,
        "needs.html",
        {
            "needs": rows,
            "status": status,
            "jenis": jenis,
            "tabs": NEED_TABS,
            "names": await names_for(visit),
            "now": clock.now(),
            "target_hours": dash.RESPONSE_TARGET_HOURS,
        },
        visit=visit,
    )


@router.get("/kebutuhan/{need_id}", include_in_schema=False)
async def need_detail(visit: SignedIn, need_id: str) -> Response:
    r = await gather(
        need=visit.sourcing.need(need_id),
        orders=visit.sourcing.orders(need_id=need_id),
        suppliers=visit.sourcing.suppliers() if visit.user.is_dinkopdag else _none(),
    )
    need = required(r["need"])
    if not visit.user.may_open_cooperative(str(need.get("cooperative_id"))):
        raise PageNotFound()
    suppliers = {str(s.get("id")): s for s in (r["suppliers"].or_([]) or [])}
    return await render(
        visit.request,
        "need_detail.html",
        {
            "need": need,
            "matches": need.get("matches") or [],
            "orders": [o for o in r["orders"].or_([]) if str(o.get("need_id", need_id)) == str(need_id)],
            "suppliers": suppliers,
            "next_statuses": NEXT_STATUSES.get(str(need.get("status")), [])
            if visit.user.is_dinkopdag
            else [],
            "status_actions": STATUS_ACTIONS,
            "names": await names_for(visit),
            "history": need.get("history") or need.get("status_history") or [],
        },
        visit=visit,
    )


async def _none() -> None:
    return None


@router.post("/kebutuhan/{need_id}/status", include_in_schema=False)
async def change_need_status(visit: Dinkopdag, need_id: str, _csrf: CsrfChecked) -> Response:
    form = await visit.request.form()
    status = str(form.get("status") or "")
    note = str(form.get("note") or "").strip()[:1000]
    assigned_to = str(form.get("assigned_to") or "").strip()[:200]
    back = safe_next(str(form.get("kembali") or ""), f"/kebutuhan/{need_id}")
    if status not in STATUS_ACTIONS:
        flash(visit.request, "Pilihan status tidak dikenal.", "error")
        return redirect(back)
    try:
        await visit.sourcing.change_need_status(need_id, status, note or None, assigned_to or None)
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        flash(visit.request, exc.message, "error")
        return redirect(back)
    flash(visit.request, f"Status kebutuhan diubah menjadi “{fmt.label(fmt.NEED_STATUS, status)}”.")
    return redirect(back)


@router.post("/kebutuhan/{need_id}/pesan", include_in_schema=False)
async def place_order(visit: Dinkopdag, need_id: str, _csrf: CsrfChecked) -> Response:
    form = await visit.request.form()
    supplier_id = str(form.get("supplier_id") or "")
    quantity = parse_angka(str(form.get("quantity") or ""))
    back = f"/kebutuhan/{need_id}"
    if not supplier_id or quantity is None or quantity <= 0:
        flash(visit.request, "Isi jumlah pesanan dengan angka lebih dari nol.", "error")
        return redirect(back)
    try:
        await visit.sourcing.place_order(need_id, supplier_id, float(quantity))
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        flash(visit.request, exc.message, "error")
        return redirect(back)
    flash(visit.request, f"Pesanan {fmt.angka(quantity)} dikirim ke pemasok.")
    return redirect(back)


# --- redistribution proposals --------------------------------------------------------------------------


@router.get("/usulan", include_in_schema=False)
async def redistributions(visit: Dinkopdag, status: str = "", komoditas: str = "") -> Response:
    r = await gather(rows=visit.sourcing.redistributions(status=status or None, commodity=komoditas or None))
    rows = required(r["rows"])
    names = await names_for(visit)
    return await render(
        visit.request,
        "redistributions.html",
        {
            "rows": rows,
            "status": status,
            "komoditas": komoditas,
            "names": names,
            "back": "/usulan",
            "scope_id": None,
            "commodity_options": sorted(names._commodities.values(), key=lambda c: str(c.get("name"))),
        },
        visit=visit,
    )


@router.post("/usulan/{proposal_id}/{decision}", include_in_schema=False)
async def decide_redistribution(
    visit: SignedIn, proposal_id: str, decision: str, _csrf: CsrfChecked
) -> Response:
    form = await visit.request.form()
    back = safe_next(str(form.get("kembali") or ""), "/usulan")
    if decision not in ("terima", "tolak"):
        raise PageNotFound()
    try:
        await visit.sourcing.decide_redistribution(proposal_id, accept=decision == "terima")
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        flash(visit.request, exc.message, "error")
        return redirect(back)
    flash(
        visit.request,
        "Usulan pemindahan stok diterima." if decision == "terima" else "Usulan pemindahan stok ditolak.",
    )
    return redirect(back)


# --- suppliers, potentials, trainings ------------------------------------------------------------------


@router.get("/pemasok", include_in_schema=False)
async def suppliers(visit: Dinkopdag, komoditas: str = "") -> Response:
    r = await gather(
        rows=visit.sourcing.suppliers(commodity=komoditas or None), commodities=commodities_by_code(visit)
    )
    commodities = r["commodities"].or_({})
    return await render(
        visit.request,
        "suppliers.html",
        {
            "rows": required(r["rows"]),
            "komoditas": komoditas,
            "names": Names(visit, None, commodities),
            "commodity_options": sorted(commodities.values(), key=lambda c: str(c.get("name"))),
        },
        visit=visit,
    )


@router.get("/potensi", include_in_schema=False)
async def potentials(visit: Dinkopdag, kecamatan: str = "") -> Response:
    reference = visit.reference
    options = sorted(reference.kecamatan.values(), key=lambda p: p.name)
    if kecamatan not in reference.kecamatan:
        kecamatan = options[0].code if options else ""
    kelurahan = reference.kelurahan_in(kecamatan)
    r = await gather(**{p.code: visit.registry.potentials(p.code) for p in kelurahan})
    rows = [{"kelurahan": p, "potentials": r[p.code].or_([]), "error": r[p.code].message} for p in kelurahan]
    return await render(
        visit.request,
        "potentials.html",
        {"rows": rows, "kecamatan": kecamatan, "kecamatan_options": options, "names": Names(visit)},
        visit=visit,
    )


@router.get("/pelatihan", include_in_schema=False)
async def trainings(visit: Dinkopdag) -> Response:
    r = await gather(rows=visit.registry.trainings())
    rows = sorted(
        required(r["rows"]), key=lambda t: str(t.get("date") or t.get("starts_at") or ""), reverse=True
    )
    return await render(
        visit.request,
        "trainings.html",
        {"rows": rows, "names": await names_for(visit, commodities=False)},
        visit=visit,
    )


# --- exports -------------------------------------------------------------------------------------------

EXPORTS = {
    "cooperatives": "Daftar koperasi",
    "stalled": "Stok macet",
    "needs": "Kebutuhan dan kendala",
    "reports": "Laporan bulanan koperasi",
}
EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# The monthly PDF is not named in the contract; reporting serves it here (``?period=YYYY-MM``).
MONTHLY_PDF_PATH = "/exports/monthly-report.pdf"


def _previous_month(now: datetime) -> str:
    local = now.astimezone(fmt.JAKARTA)
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@router.get("/ekspor", include_in_schema=False)
async def exports(visit: Dinkopdag) -> Response:
    now = clock.now()
    local = now.astimezone(fmt.JAKARTA)
    periods = []
    year, month = local.year, local.month
    for _ in range(12):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return await render(
        visit.request,
        "exports.html",
        {"exports": EXPORTS, "periods": periods, "default_period": _previous_month(now)},
        visit=visit,
    )


async def _proxy(
    visit: Any, path: str, filename: str, media_type: str, params: dict[str, Any] | None = None
) -> Response:
    """Stream a file from reporting to the browser with the user's token (the browser never holds it)."""
    upstream = await visit.reporting.open_stream(path, params)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:  # also when the browser goes away mid-download: give the connection back to the pool
            await upstream.aclose()

    return StreamingResponse(
        body(),
        media_type=upstream.headers.get("content-type", media_type),
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )


@router.get("/ekspor/{name}.{ext}", include_in_schema=False)
async def export_file(visit: Dinkopdag, name: str, ext: str) -> Response:
    if name not in EXPORTS or ext not in EXPORT_TYPES:
        raise PageNotFound()
    stamp = clock.now().astimezone(fmt.JAKARTA).strftime("%Y%m%d")
    return await _proxy(visit, f"/exports/{name}.{ext}", f"kkmp-{name}-{stamp}.{ext}", EXPORT_TYPES[ext])


@router.get("/ekspor/laporan-bulanan", include_in_schema=False)
async def monthly_pdf(visit: Dinkopdag, periode: str = "") -> Response:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", periode):
        periode = _previous_month(clock.now())
    return await _proxy(
        visit, MONTHLY_PDF_PATH, f"kkmp-laporan-{periode}.pdf", "application/pdf", {"period": periode}
    )


# --- notifications (everyone) --------------------------------------------------------------------------


@router.get("/notifikasi", include_in_schema=False)
async def notifications(visit: SignedIn, belum: int = 0) -> Response:
    r = await gather(rows=visit.notifications.inbox(unread=True if belum else None, limit=100))
    rows = required(r["rows"])
    return await render(
        visit.request,
        "notifications.html",
        {
            "rows": rows,
            "belum": belum,
            "names": await names_for(visit, commodities=False),
            "unread_here": sum(1 for n in rows if not n.get("read_at")),
        },
        visit=visit,
    )


@router.post("/notifikasi/{notification_id}/baca", include_in_schema=False)
async def mark_read(visit: SignedIn, notification_id: str, _csrf: CsrfChecked) -> Response:
    form = await visit.request.form()
    try:
        await visit.notifications.mark_read(notification_id)
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        flash(visit.request, exc.message, "error")
    return redirect(safe_next(str(form.get("kembali") or ""), "/notifikasi"))


@router.post("/notifikasi/baca-semua", include_in_schema=False)
async def mark_all_read(visit: SignedIn, _csrf: CsrfChecked) -> Response:
    try:
        await visit.notifications.mark_all_read()
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        flash(visit.request, exc.message, "error")
    else:
        flash(visit.request, "Semua notifikasi sudah ditandai dibaca.")
    return redirect("/notifikasi")
