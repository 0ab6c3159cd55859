"""Needs (kebutuhan/kendala): submit, read in scope, move along the lifecycle, comment, and measure
how fast Dinkopdag answers. None of these commit: the route (or the batch) commits once, so a request
is all or nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from kkmp_shared.auth import Principal, ensure_can_write
from kkmp_shared.errors import ApiError, conflict, forbidden, not_found, unprocessable
from kkmp_shared.events.contracts import NeedStatus, NeedStatusChanged, NeedSubmitted
from sqlalchemy import and_, case, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm
from sourcing.domain.matching import unit_price_for
from sourcing.domain.needs import (
    ACTIVE_STATUSES,
    IllegalStatusChange,
    NeedTimes,
    answers_need,
    check_status_change,
    response_figures,
)
from sourcing.entrypoints import schemas
from sourcing.service_layer import matching
from sourcing.service_layer.common import (
    Context,
    as_utc,
    check_backdating,
    check_whole_units,
    dec,
    hours_between,
    local_date,
    new_id,
    now,
    require_staff,
    require_staff_for,
    unknown,
)

N = orm.needs


# --- reading ------------------------------------------------------------------------------------


def ordered_quantity_subquery() -> Any:
    """Per need: what is on order (cancelled orders count only for what they delivered)."""
    line, o = orm.order_lines, orm.orders
    return (
        select(
            line.c.need_id,
            func.sum(
                case((o.c.status == "cancelled", line.c.delivered_quantity), else_=line.c.quantity)
            ).label("ordered"),
        )
        .join(o, o.c.id == line.c.order_id)
        .where(line.c.need_id.is_not(None))
        .group_by(line.c.need_id)
        .subquery()
    )


def supplier_addressed(supplier_id: str) -> Any:
    """Needs addressed to a supplier: it was matched to them, or they hold an order for them."""
    m, line, o = orm.need_matches, orm.order_lines, orm.orders
    return or_(
        exists().where(and_(m.c.need_id == N.c.id, m.c.supplier_id == supplier_id)),
        exists().where(
            and_(line.c.need_id == N.c.id, line.c.order_id == o.c.id, o.c.supplier_id == supplier_id)
        ),
    )


def scope_filter(principal: Principal) -> Any | None:
    """The WHERE clause limiting needs to what the caller may read (None: everything)."""
    if principal.role == "coop_manager":
        return N.c.cooperative_id == (principal.cooperative_id or "")
    if principal.role == "supplier":
        return supplier_addressed(principal.supplier_id or "")
    codes = principal.kecamatan_filter()
    if codes is not None:
        return N.c.kecamatan_code.in_(codes)
    if principal.role in ("admin", "officer", "service"):
        return None
    return N.c.id.is_(None)


def can_read_need(principal: Principal, need: Any, addressed: bool = False) -> bool:
    if principal.role == "supplier":
        return addressed
    return principal.can_read_cooperative(need.cooperative_id, need.kecamatan_code)


async def _is_addressed(session: AsyncSession, principal: Principal, need_id: str) -> bool:
    if principal.role != "supplier" or not principal.supplier_id:
        return False
    query = select(N.c.id).where(N.c.id == need_id, supplier_addressed(principal.supplier_id))
    return (await session.execute(query)).first() is not None


async def load_need(session: AsyncSession, need_id: str) -> Any | None:
    ordered = ordered_quantity_subquery()
    return (
        await session.execute(
            select(N, orm.cooperatives.c.name.label("cooperative_name"), ordered.c.ordered)
            .outerjoin(orm.cooperatives, orm.cooperatives.c.id == N.c.cooperative_id)
            .outerjoin(ordered, ordered.c.need_id == N.c.id)
            .where(N.c.id == need_id)
        )
    ).first()


async def readable_need(session: AsyncSession, principal: Principal, need_id: str) -> Any:
    need = await load_need(session, need_id)
    if need is None or not can_read_need(principal, need, await _is_addressed(session, principal, need_id)):
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
    m, s = orm.need_matches, orm.suppliers
    match_query = (
        select(m, s.c.name.label("supplier_name"))
        .join(s, s.c.id == m.c.supplier_id)
        .where(m.c.need_id == need_id)
    )
    split = need.split
    if principal.role == "supplier":
        # A supplier sees its own line of the ranking, not its competitors' prices.
        match_query = match_query.where(m.c.supplier_id == principal.supplier_id)
        if split:
            parts = [p for p in split.get("parts", []) if p["supplier_id"] == principal.supplier_id]
            split = {**split, "parts": parts} if parts else None
    out["matches"] = [
        {**dict(r._mapping), "can_fill_quantity": dec(r.can_fill_quantity)}
        for r in await session.execute(match_query.order_by(m.c.rank))
    ]
    out["split"] = split
    out["matched_at"] = need.matched_at
    history = await session.execute(
        select(orm.need_history).where(orm.need_history.c.need_id == need_id).order_by(orm.need_history.c.id)
    )
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
        for h in history
    ]
    out["comments"] = await list_comments(session, need_id)
    return out


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
    conditions = []
    scope = scope_filter(principal)
    if scope is not None:
        conditions.append(scope)
    for column, value in (
        (N.c.status, status),
        (N.c.cooperative_id, cooperative_id),
        (N.c.kind, kind),
        (N.c.commodity, commodity),
        (N.c.kecamatan_code, kecamatan_code),
    ):
        if value:
            conditions.append(column == value)
    total = (await session.execute(select(func.count()).select_from(N).where(*conditions))).scalar_one()
    ordered = ordered_quantity_subquery()
    rows = await session.execute(
        select(N, orm.cooperatives.c.name.label("cooperative_name"), ordered.c.ordered)
        .outerjoin(orm.cooperatives, orm.cooperatives.c.id == N.c.cooperative_id)
        .outerjoin(ordered, ordered.c.need_id == N.c.id)
        .where(*conditions)
        .order_by(N.c.submitted_at.desc(), N.c.id)
        .limit(limit)
        .offset(offset)
    )
    return {"items": [need_out(r) for r in rows], "total": total, "limit": limit, "offset": offset}


# --- submitting ---------------------------------------------------------------------------------


async def submit_need(
    session: AsyncSession, ctx: Context, principal: Principal, data: schemas.NeedCreate
) -> str:
    """Record a need, announce it, and for a supply need rank suppliers and look for stalled stock."""
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot post a cooperative's needs.")
    if principal.role == "coop_manager" and data.cooperative_id != principal.cooperative_id:
        raise forbidden("You may only post needs for your own cooperative.")
    coop = await ctx.directory.get(session, data.cooperative_id)
    if coop is None:
        # Not (yet) known from the registry's events: an unknown id, as on every route (404).
        raise ApiError(
            404,
            "unknown_cooperative",
            "The cooperative does not exist (or sourcing has not heard of it yet).",
            [{"field": "cooperative_id", "message": f"Unknown cooperative {data.cooperative_id!r}."}],
        )
    ensure_can_write(principal, coop.id, coop.kecamatan_code)
    if coop.status == "dissolved":
        raise conflict("cooperative_dissolved", "A dissolved cooperative cannot post needs.")
    submitted_at = check_backdating(principal, "submitted_at", data.submitted_at)
    commodity = None
    if data.commodity is not None:
        commodity = ctx.reference.commodity(data.commodity)
        if commodity is None:
            raise unknown("commodity", "commodity", data.commodity, "unknown_commodity")
    check_whole_units(commodity, "quantity", data.quantity)
    if data.needed_by is not None and data.needed_by < local_date(submitted_at):
        raise unprocessable("needed_by", "needed_by cannot be in the past.", "needed_by_in_past")
    need_id = new_id()
    values = {
        "id": need_id,
        "cooperative_id": coop.id,
        "kelurahan_code": coop.kelurahan_code,
        "kecamatan_code": coop.kecamatan_code,
        "kind": data.kind,
        "commodity": data.commodity,
        "quantity": data.quantity,
        "unit": commodity.unit if commodity else None,
        "amount": data.amount,
        "needed_by": data.needed_by,
        "description": data.description,
        "status": "open",
        "submitted_at": submitted_at,
        "submitted_by": principal.sub,
        "submitted_by_role": principal.role,
        "status_changed_at": submitted_at,
    }
    await session.execute(insert(N).values(**values))
    await session.execute(
        insert(orm.need_history).values(
            need_id=need_id,
            old_status=None,
            new_status="open",
            note=None,
            changed_by=principal.sub,
            changed_by_role=principal.role,
            changed_at=submitted_at,
        )
    )
    await ctx.out().add(
        session,
        NeedSubmitted(
            cooperative_id=coop.id,
            kelurahan_code=coop.kelurahan_code,
            kecamatan_code=coop.kecamatan_code,
            need_id=need_id,
            kind=data.kind,
            commodity=data.commodity,
            quantity=data.quantity,
            unit=values["unit"],
            needed_by=data.needed_by,
            description=data.description,
            submitted_at=submitted_at,
            submitted_by=principal.sub,
        ),
    )
    if data.kind == "supply":
        need = (await session.execute(select(N).where(N.c.id == need_id))).one()
        await matching.match_need(session, ctx, need, as_of=local_date(submitted_at))
        # Stalled stock elsewhere may serve this need before any supplier does.
        from sourcing.service_layer import redistribution

        await redistribution.offer_stalled_to(session, ctx, data.commodity or "", coop.id)
    return need_id


# --- lifecycle ----------------------------------------------------------------------------------


async def change_status(
    session: AsyncSession,
    ctx: Context,
    principal: Principal,
    need_id: str,
    new_status: NeedStatus,
    *,
    note: str | None = None,
    assigned_to: str | None = None,
    changed_at: datetime | None = None,
    check_scope: bool = True,
) -> None:
    """Move a need along its lifecycle (officers and administrators in scope), announce the change."""
    need = (await session.execute(select(N).where(N.c.id == need_id))).first()
    if need is None:
        raise not_found("need")
    if check_scope:
        require_staff_for(principal, [need.kecamatan_code])
    try:
        check_status_change(need.status, new_status)
    except IllegalStatusChange as exc:
        raise conflict(
            "illegal_status_change", str(exc), {"from": exc.old, "to": exc.new, "allowed": exc.allowed}
        ) from exc
    at = (
        check_backdating(principal, "changed_at", changed_at, earliest=need.status_changed_at)
        if check_scope
        else (changed_at or now())
    )
    values: dict[str, Any] = {"status": new_status, "status_changed_at": at}
    if assigned_to is not None:
        values["assigned_to"] = assigned_to
    if answers_need(need.status):
        values["responded_at"] = at
    if new_status in ("acknowledged", "in_progress") and need.acknowledged_at is None:
        values["acknowledged_at"] = at
    if new_status in ("resolved", "rejected"):
        values["resolved_at"] = at
    # Only if nobody moved it meanwhile: two officers answering at once get one change and one 409.
    result = await session.execute(
        update(N).where(N.c.id == need_id, N.c.status == need.status).values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict("illegal_status_change", "The need's status changed meanwhile; reload and retry.")
    await session.execute(
        insert(orm.need_history).values(
            need_id=need_id,
            old_status=need.status,
            new_status=new_status,
            note=note,
            assigned_to=assigned_to,
            changed_by=principal.sub,
            changed_by_role=principal.role,
            changed_at=at,
        )
    )
    await ctx.out().add(
        session,
        NeedStatusChanged(
            cooperative_id=need.cooperative_id,
            kelurahan_code=need.kelurahan_code,
            kecamatan_code=need.kecamatan_code,
            need_id=need_id,
            kind=need.kind,
            commodity=need.commodity,
            old_status=need.status,
            new_status=new_status,
            note=note,
            submitted_at=need.submitted_at,
            changed_at=at,
            changed_by=principal.sub,
        ),
    )


async def rematch(session: AsyncSession, ctx: Context, principal: Principal, need_id: str) -> None:
    need = (await session.execute(select(N).where(N.c.id == need_id))).first()
    if need is None:
        raise not_found("need")
    require_staff_for(principal, [need.kecamatan_code])
    if need.kind != "supply":
        raise unprocessable("need_id", "Only supply needs are matched to suppliers.", "not_a_supply_need")
    await matching.match_need(session, ctx, need)


# --- comments -----------------------------------------------------------------------------------


async def list_comments(session: AsyncSession, need_id: str) -> list[dict[str, Any]]:
    c = orm.need_comments
    rows = await session.execute(select(c).where(c.c.need_id == need_id).order_by(c.c.created_at, c.c.id))
    return [dict(r._mapping) for r in rows]


async def add_comment(session: AsyncSession, principal: Principal, need_id: str, text: str) -> dict[str, Any]:
    need = await load_need(session, need_id)
    if need is None:
        raise not_found("need")
    if principal.role == "supplier":
        if not await _is_addressed(session, principal, need_id):
            raise forbidden("This need is not addressed to you.")
    elif principal.role == "coop_manager":
        if principal.cooperative_id != need.cooperative_id:
            raise forbidden("You may only comment on your own cooperative's needs.")
    elif principal.role == "officer":
        require_staff_for(principal, [need.kecamatan_code])
    elif principal.role != "admin":
        raise forbidden()
    comment = {
        "id": new_id(),
        "need_id": need_id,
        "text": text,
        "author": principal.sub,
        "author_name": principal.username,
        "author_role": principal.role,
        "created_at": now(),
    }
    await session.execute(insert(orm.need_comments).values(**comment))
    return comment


async def system_comment(session: AsyncSession, need_id: str, text: str) -> None:
    await session.execute(
        insert(orm.need_comments).values(
            id=new_id(),
            need_id=need_id,
            text=text,
            author=None,
            author_name="KKMP",
            author_role="system",
            created_at=now(),
        )
    )


# --- figures ------------------------------------------------------------------------------------


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
    scope = []
    if kecamatan_code:
        scope.append(N.c.kecamatan_code == kecamatan_code)
    elif (codes := principal.kecamatan_filter()) is not None:
        scope.append(N.c.kecamatan_code.in_(codes))
    if kind:
        scope.append(N.c.kind == kind)
    rows = (
        await session.execute(
            select(N.c.kecamatan_code, N.c.status, N.c.submitted_at, N.c.responded_at, N.c.resolved_at).where(
                *scope, N.c.submitted_at >= since, N.c.submitted_at <= until
            )
        )
    ).all()
    open_now = (
        await session.execute(select(func.count()).select_from(N).where(*scope, N.c.status == "open"))
    ).scalar_one()
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


# --- pooled demand ------------------------------------------------------------------------------


async def pooling_candidates(
    session: AsyncSession, ctx: Context, principal: Principal, commodity: str | None
) -> list[dict[str, Any]]:
    """Open supply needs of one commodity from several cooperatives, not yet ordered: what one pooled
    order would cost with the best offer, against ordering each separately."""
    require_staff(principal)
    ordered = ordered_quantity_subquery()
    conditions = [N.c.kind == "supply", N.c.status.in_(ACTIVE_STATUSES)]
    if commodity:
        conditions.append(N.c.commodity == commodity)
    if (codes := principal.kecamatan_filter()) is not None:
        conditions.append(N.c.kecamatan_code.in_(codes))
    rows = (
        await session.execute(
            select(
                N.c.id,
                N.c.cooperative_id,
                N.c.commodity,
                N.c.unit,
                N.c.quantity,
                N.c.needed_by,
                ordered.c.ordered,
            )
            .outerjoin(ordered, ordered.c.need_id == N.c.id)
            .where(*conditions)
            .order_by(N.c.commodity, N.c.needed_by, N.c.submitted_at)
        )
    ).all()
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
        offers = await matching.offers_for(session, ctx, code)
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
