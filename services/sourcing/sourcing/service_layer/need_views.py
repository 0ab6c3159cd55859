"""Needs as their readers see them: one need in detail, lists in the caller's scope, how fast Dinkopdag
answers, and which open supply needs one pooled order could combine. Reads only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import forbidden, not_found, unprocessable
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import needs as need_rows
from sourcing.domain.matching import unit_price_for
from sourcing.domain.needs import NeedTimes, response_figures
from sourcing.service_layer.common import Context, as_utc, dec, hours_between, now, require_staff
from sourcing.service_layer.matching import offers_for


def can_read_need(principal: Principal, need: Any, addressed: bool = False) -> bool:
    if principal.role == "supplier":
        return addressed
    return principal.can_read_cooperative(need.cooperative_id, need.kecamatan_code)


async def readable_need(session: AsyncSession, principal: Principal, need_id: str) -> Any:
    """The need with what is on order for it, or 404 when it is unknown or outside the caller's scope."""
    need = await need_rows.get_with_orders(session, need_id)
    addressed = (
        principal.role == "supplier"
        and bool(principal.supplier_id)
        and await need_rows.is_addressed_to(session, principal.supplier_id or "", need_id)
    )
    if need is None or not can_read_need(principal, need, addressed):
        raise not_found("need")
    return need


def need_out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "cooperative_id": row.cooperative_id,
        "cooperative_name": getattr(row, "cooperative_name", None),
        "kelurahan_code": row.kelurahan_code,
        "kecamatan_code": row.kecamatan_code,
        "kind": row.kind,
        "commodity": row.commodity,
        "unit": row.unit,
        "quantity": None if row.quantity is None else dec(row.quantity),
        "ordered_quantity": dec(getattr(row, "ordered", None)) if row.kind == "supply" else None,
        "amount": row.amount,
        "needed_by": row.needed_by,
        "description": row.description,
        "status": row.status,
        "assigned_to": row.assigned_to,
        "submitted_at": row.submitted_at,
        "created_at": row.submitted_at,
        "submitted_by": row.submitted_by,
        "responded_at": row.responded_at,
        "acknowledged_at": row.acknowledged_at,
        "resolved_at": row.resolved_at,
        "status_changed_at": row.status_changed_at,
        "response_hours": hours_between(row.submitted_at, row.responded_at),
        "resolution_hours": hours_between(row.submitted_at, row.resolved_at)
        if row.status == "resolved"
        else None,
    }


async def need_detail(session: AsyncSession, principal: Principal, need_id: str) -> dict[str, Any]:
    need = await readable_need(session, principal, need_id)
    out = need_out(need)
    split = need.split
    only: str | None = None
    if principal.role == "supplier":
        # A supplier sees its own line of the ranking, not its competitors' prices.
        only = principal.supplier_id
        if split:
            parts = [p for p in split.get("parts", []) if p["supplier_id"] == principal.supplier_id]
            split = {**split, "parts": parts} if parts else None
    out["matches"] = [
        {**dict(r._mapping), "can_fill_quantity": dec(r.can_fill_quantity)}
        for r in await need_rows.matches(session, need_id, only)
    ]
    out["split"] = split
    out["matched_at"] = need.matched_at
    out["history"] = [
        {
            "old_status": h.old_status,
            "status": h.new_status,
            "note": h.note,
            "assigned_to": h.assigned_to,
            "changed_by": h.changed_by,
            "changed_by_role": h.changed_by_role,
            "at": h.changed_at,
        }
        for h in await need_rows.history(session, need_id)
    ]
    out["comments"] = await need_rows.comments(session, need_id)
    return out


async def list_comments(session: AsyncSession, principal: Principal, need_id: str) -> list[dict[str, Any]]:
    await readable_need(session, principal, need_id)
    return await need_rows.comments(session, need_id)


async def list_needs(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    cooperative_id: str | None,
    kind: str | None,
    commodity: str | None,
    kecamatan_code: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    if cooperative_id and principal.role == "coop_manager" and cooperative_id != principal.cooperative_id:
        raise not_found("cooperative")
    total, rows = await need_rows.page(
        session,
        principal,
        status=status,
        cooperative_id=cooperative_id,
        kind=kind,
        commodity=commodity,
        kecamatan_code=kecamatan_code,
        limit=limit,
        offset=offset,
    )
    return {"items": [need_out(r) for r in rows], "total": total, "limit": limit, "offset": offset}


async def stats(
    session: AsyncSession,
    ctx: Context,
    principal: Principal,
    *,
    kecamatan_code: str | None,
    kind: str | None,
    since: datetime | None,
    until: datetime | None,
    by_kecamatan: bool,
) -> dict[str, Any]:
    """Response and resolution figures for needs submitted in [since, until], in the caller's scope."""
    if principal.role not in ("admin", "officer", "service"):
        raise forbidden("Only Dinkopdag staff see the response figures.")
    if kecamatan_code and not principal.covers_kecamatan(kecamatan_code):
        raise forbidden("This kecamatan is outside your scope.")
    current = now()
    # A time without zone in a query string is read as UTC, like every time this service stores.
    since = as_utc(since)
    until = as_utc(until) or current
    since = since or until - timedelta(days=ctx.settings.stats_window_days)
    if since > until:
        raise unprocessable("since", "since must be before until.")
    codes = [kecamatan_code] if kecamatan_code else principal.kecamatan_filter()
    rows, open_now = await need_rows.submission_times(
        session, kecamatan_codes=codes, kind=kind, since=since, until=until
    )
    times = [NeedTimes(r.status, r.submitted_at, r.responded_at, r.resolved_at) for r in rows]
    figures = response_figures(times, until)
    out: dict[str, Any] = {
        **figures,
        "kecamatan_code": kecamatan_code,
        "since": since,
        "until": until,
        "open_now": open_now,
    }
    if by_kecamatan:
        grouped: dict[str, list[NeedTimes]] = defaultdict(list)
        for r, t in zip(rows, times, strict=True):
            grouped[r.kecamatan_code].append(t)
        out["by_kecamatan"] = [
            {"kecamatan_code": code, **response_figures(items, until)}
            for code, items in sorted(grouped.items())
        ]
    return out


async def pooling_candidates(
    session: AsyncSession, ctx: Context, principal: Principal, commodity: str | None
) -> list[dict[str, Any]]:
    """Open supply needs of one commodity from several cooperatives, not yet ordered: what one pooled
    order would cost with the best offer, against ordering each separately."""
    require_staff(principal)
    rows = await need_rows.active_supply_needs(session, commodity, principal.kecamatan_filter())
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        remaining = dec(r.quantity) - dec(r.ordered)
        if remaining > 0:
            groups[r.commodity].append((r, remaining))
    pools = []
    for code, items in groups.items():
        if len({r.cooperative_id for r, _ in items}) < 2:
            continue
        # One need per cooperative in a pool: deliveries are split by cooperative.
        seen: set[str] = set()
        members = [(r, q) for r, q in items if not (r.cooperative_id in seen or seen.add(r.cooperative_id))]  # type: ignore[func-returns-value]
        total = sum((q for _, q in members), Decimal(0))
        pool: dict[str, Any] = {
            "commodity": code,
            "unit": members[0][0].unit,
            "total_quantity": total,
            "needs": [
                {"need_id": r.id, "cooperative_id": r.cooperative_id, "quantity": q, "needed_by": r.needed_by}
                for r, q in members
            ],
        }
        offers = await offers_for(session, ctx, code)
        if offers:
            best = min(offers, key=lambda o: (unit_price_for(o, total), o.lead_time_days, o.supplier_name))
            pooled_price = unit_price_for(best, total)
            separate = sum(round(q * min(unit_price_for(o, q) for o in offers)) for _, q in members)
            pooled_cost = round(total * pooled_price)
            pool.update(
                best_supplier_id=best.supplier_id,
                best_supplier_name=best.supplier_name,
                pooled_unit_price=pooled_price,
                separate_cost=separate,
                pooled_cost=pooled_cost,
                saving=separate - pooled_cost,
            )
        pools.append(pool)
    return pools


def remaining_quantity(need: Any) -> Decimal:
    return dec(need.quantity) - dec(getattr(need, "ordered", None))
