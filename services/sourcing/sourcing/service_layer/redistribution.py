"""Redistribution of stalled stock: from inventory's stock events to proposals, and the two managers'
answers to a proposal.

Inventory announces stock conditions; sourcing keeps the low and stockout episodes (who needs what) and
the stalled items (who has too much), and proposes moving stock from the second to the first, nearest
first. A later taker (a new supply need, a new low or empty shelf) is offered stock that is still stalled.
When both sides accept, `redistribution.accepted.v1` tells inventory to record the transfer out and in.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import conflict, forbidden, not_found
from kkmp_shared.events.contracts import (
    RedistributionAccepted,
    RedistributionProposed,
    StockLow,
    StockRecovered,
    StockStalled,
    StockStockout,
)
from kkmp_shared.events.envelope import CloudEvent
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm
from sourcing.domain.geo import Point, haversine_km
from sourcing.domain.needs import ACTIVE_STATUSES
from sourcing.domain.redistribution import (
    ACTIVE_STALLED_STATUSES,
    Taker,
    allocate_stalled_stock,
    member_uses,
    stalled_suggestions,
)
from sourcing.entrypoints import schemas
from sourcing.service_layer.common import Context, dec, new_id, now, upsert
from sourcing.service_layer.matching import cooperative_point
from sourcing.service_layer.needs import ordered_quantity_subquery, system_comment

R = orm.redistributions
S = orm.stalled_items
PENDING_OR_ACCEPTED = ("proposed", "accepted")
INACTIVE_COOPERATIVE = ("suspended", "dissolved")


# --- inventory's stock conditions ----------------------------------------------------------------


async def on_stock_low(session: AsyncSession, ctx: Context, _event: CloudEvent, data: StockLow) -> None:
    await upsert(
        session,
        orm.stock_conditions,
        {
            "cooperative_id": data.cooperative_id,
            "commodity": data.commodity,
            "condition": "low",
            "kelurahan_code": data.kelurahan_code,
            "kecamatan_code": data.kecamatan_code,
            "on_hand": data.on_hand,
            "avg_daily_sales": data.avg_daily_sales,
            "days_of_cover": data.days_of_cover,
            "detected_at": data.detected_at,
        },
        keys=("cooperative_id", "commodity", "condition"),
        update=(
            "kelurahan_code",
            "kecamatan_code",
            "on_hand",
            "avg_daily_sales",
            "days_of_cover",
            "detected_at",
        ),
    )
    await offer_stalled_to(session, ctx, data.commodity, data.cooperative_id)


async def on_stock_stockout(
    session: AsyncSession, ctx: Context, _event: CloudEvent, data: StockStockout
) -> None:
    c = orm.stock_conditions
    # The event has no sales rate; one known from an earlier low-stock episode sizes the need.
    avg = (
        await session.execute(
            select(c.c.avg_daily_sales).where(
                c.c.cooperative_id == data.cooperative_id,
                c.c.commodity == data.commodity,
                c.c.condition == "low",
            )
        )
    ).scalar()
    await upsert(
        session,
        c,
        {
            "cooperative_id": data.cooperative_id,
            "commodity": data.commodity,
            "condition": "stockout",
            "kelurahan_code": data.kelurahan_code,
            "kecamatan_code": data.kecamatan_code,
            "on_hand": Decimal(0),
            "avg_daily_sales": avg,
            "days_of_cover": Decimal(0),
            "detected_at": data.detected_at,
        },
        keys=("cooperative_id", "commodity", "condition"),
        update=(
            "kelurahan_code",
            "kecamatan_code",
            "on_hand",
            "avg_daily_sales",
            "days_of_cover",
            "detected_at",
        ),
    )
    await offer_stalled_to(session, ctx, data.commodity, data.cooperative_id)


async def on_stock_recovered(
    session: AsyncSession, ctx: Context, _event: CloudEvent, data: StockRecovered
) -> None:
    if data.condition in ("low", "stockout"):
        c = orm.stock_conditions
        await session.execute(
            delete(c).where(
                c.c.cooperative_id == data.cooperative_id,
                c.c.commodity == data.commodity,
                c.c.condition == data.condition,
            )
        )
        return
    item = (
        await session.execute(
            select(S).where(S.c.active_key == _active_key(data.cooperative_id, data.commodity))
        )
    ).first()
    if item is None:
        return
    # Offers the remaining stock can no longer cover are withdrawn; the others stand.
    await session.execute(
        update(R)
        .where(R.c.stalled_item_id == item.id, R.c.status == "proposed", R.c.quantity > data.on_hand)
        .values(status="withdrawn", closed_at=now())
    )
    accepted = await _count(session, item.id, ("accepted",))
    await session.execute(
        update(S)
        .where(S.c.id == item.id)
        .values(
            status="redistributed" if accepted else "recovered",
            active_key=None,
            on_hand=data.on_hand,
            recovered_at=data.detected_at,
            updated_at=now(),
        )
    )


def _active_key(cooperative_id: str, commodity: str) -> str:
    return f"{cooperative_id}:{commodity}"


async def on_stock_stalled(
    session: AsyncSession, ctx: Context, event: CloudEvent, data: StockStalled
) -> None:
    """Record the stalled item (one active episode per cooperative and commodity) and propose it."""
    commodity = ctx.commodity(data.commodity, data.unit)
    suggestions = [s.__dict__ for s in await _suggestions(session, ctx, data)]
    key = _active_key(data.cooperative_id, data.commodity)
    existing = (await session.execute(select(S).where(S.c.active_key == key))).first()
    values = {
        "kelurahan_code": data.kelurahan_code,
        "kecamatan_code": data.kecamatan_code,
        "unit": data.unit or commodity.unit,
        "on_hand": data.on_hand,
        "unit_cost": data.unit_cost,
        "value": data.value,
        "last_sale_at": data.last_sale_at,
        "days_since_sale": data.days_since_sale,
        "suggestions": suggestions,
        "updated_at": now(),
    }
    if existing is not None:
        # The same episode announced again (another event id): refresh it, never duplicate proposals.
        await session.execute(update(S).where(S.c.id == existing.id).values(**values))
        await propose_for_item(session, ctx, existing.id)
        return
    item = SimpleNamespace(
        id=new_id(), cooperative_id=data.cooperative_id, commodity=data.commodity, status="no_taker", **values
    )
    await session.execute(
        insert(S).values(event_id=event.id, active_key=key, detected_at=data.detected_at, **vars(item))
    )
    # A new episode has no offers yet: nothing to read back, and its status follows from what is made
    # here (what refresh_item_status would count).
    if await _propose(session, ctx, item, offered=[]):
        await session.execute(update(S).where(S.c.id == item.id).values(status="proposed"))


async def _suggestions(session: AsyncSession, ctx: Context, data: StockStalled) -> list[Any]:
    commodity = ctx.commodity(data.commodity, data.unit)
    members = (
        await session.execute(
            select(orm.umkm_members.c.sector, orm.umkm_members.c.products).where(
                orm.umkm_members.c.cooperative_id == data.cooperative_id
            )
        )
    ).all()
    users = [
        (m.sector or ", ".join(m.products or [])) or "UMKM"
        for m in members
        if member_uses(data.commodity, m.sector, m.products or [])
    ]
    o, line, s = orm.orders, orm.order_lines, orm.suppliers
    last_supplier = (
        await session.execute(
            select(s.c.name)
            .join(o, o.c.supplier_id == s.c.id)
            .join(line, line.c.order_id == o.c.id)
            .where(
                line.c.cooperative_id == data.cooperative_id,
                o.c.commodity == data.commodity,
                line.c.delivered_quantity > 0,
            )
            .order_by(o.c.placed_at.desc())
            .limit(1)
        )
    ).scalar()
    return stalled_suggestions(
        commodity, data.on_hand, data.days_since_sale, umkm_users=users, last_supplier=last_supplier
    )


# --- proposing ----------------------------------------------------------------------------------


async def _count(session: AsyncSession, item_id: str, statuses: tuple[str, ...]) -> int:
    return int(
        (
            await session.execute(
                select(func.count())
                .select_from(R)
                .where(R.c.stalled_item_id == item_id, R.c.status.in_(statuses))
            )
        ).scalar_one()
    )


async def load_takers(
    session: AsyncSession, ctx: Context, commodity: str, exclude: set[str], only: str | None = None
) -> list[Taker]:
    """Cooperatives that need the commodity: an open supply need with something left to source, or a
    low or empty shelf not yet recovered. Suspended or dissolved cooperatives are left out."""
    n, c, k = orm.needs, orm.stock_conditions, orm.cooperatives
    ordered = ordered_quantity_subquery()
    transferred = (
        select(R.c.need_id, func.sum(R.c.quantity).label("moved"))
        .where(R.c.need_id.is_not(None), R.c.status.in_(PENDING_OR_ACCEPTED))
        .group_by(R.c.need_id)
        .subquery()
    )
    need_query = (
        select(n, ordered.c.ordered, transferred.c.moved, k.c.lat, k.c.lon, k.c.status.label("coop_status"))
        .outerjoin(ordered, ordered.c.need_id == n.c.id)
        .outerjoin(transferred, transferred.c.need_id == n.c.id)
        .outerjoin(k, k.c.id == n.c.cooperative_id)
        .where(n.c.kind == "supply", n.c.commodity == commodity, n.c.status.in_(ACTIVE_STATUSES))
        .order_by(n.c.needed_by, n.c.submitted_at)
    )
    condition_query = (
        select(c, k.c.lat, k.c.lon, k.c.status.label("coop_status"))
        .outerjoin(k, k.c.id == c.c.cooperative_id)
        .where(c.c.commodity == commodity)
    )
    if only is not None:
        need_query = need_query.where(n.c.cooperative_id == only)
        condition_query = condition_query.where(c.c.cooperative_id == only)

    # A low or empty shelf already offered this commodity (waiting, or accepted since the episode began)
    # is served; offering it a second lot would over-supply it.
    served: dict[str, list[Any]] = {}
    for r in await session.execute(
        select(R.c.to_cooperative_id, R.c.status, R.c.created_at).where(
            R.c.commodity == commodity, R.c.status.in_(PENDING_OR_ACCEPTED), R.c.reason != "open_need"
        )
    ):
        served.setdefault(r.to_cooperative_id, []).append(r)

    def already_served(row: Any) -> bool:
        return any(
            p.status == "proposed" or p.created_at >= row.detected_at
            for p in served.get(row.cooperative_id, [])
        )

    def point(row: Any) -> Point | None:
        if row.lat is not None and row.lon is not None:
            return Point(row.lat, row.lon)
        return ctx.reference.kelurahan_point(row.kelurahan_code)

    takers: list[Taker] = []
    for r in await session.execute(need_query):
        remaining = dec(r.quantity) - dec(r.ordered) - dec(r.moved)
        if r.cooperative_id in exclude or r.coop_status in INACTIVE_COOPERATIVE or remaining <= 0:
            continue
        takers.append(
            Taker(
                r.cooperative_id, r.kelurahan_code, r.kecamatan_code, point(r), "open_need", r.id, remaining
            )
        )
    for r in await session.execute(condition_query):
        if r.cooperative_id in exclude or r.coop_status in INACTIVE_COOPERATIVE or already_served(r):
            continue
        takers.append(
            Taker(
                r.cooperative_id,
                r.kelurahan_code,
                r.kecamatan_code,
                point(r),
                r.condition,
                on_hand=None if r.on_hand is None else dec(r.on_hand),
                avg_daily_sales=None if r.avg_daily_sales is None else dec(r.avg_daily_sales),
            )
        )
    return takers


async def propose_for_item(session: AsyncSession, ctx: Context, item_id: str, only: str | None = None) -> int:
    """Offer what is left of a stalled item to the nearest cooperatives that need it and have not been
    offered it yet; returns how many proposals were made."""
    item = (await session.execute(select(S).where(S.c.id == item_id))).one()
    offered = (
        await session.execute(
            select(R.c.to_cooperative_id, R.c.status, R.c.quantity).where(R.c.stalled_item_id == item_id)
        )
    ).all()
    made = await _propose(session, ctx, item, offered, only)
    await refresh_item_status(session, item_id)
    return made


async def _propose(
    session: AsyncSession, ctx: Context, item: Any, offered: Sequence[Any], only: str | None = None
) -> int:
    """Record the proposals for `item` given the offers it already has; its status is left to the
    caller."""
    commodity = ctx.commodity(item.commodity, item.unit)
    allocated = sum((dec(r.quantity) for r in offered if r.status in PENDING_OR_ACCEPTED), Decimal(0))
    available = dec(item.on_hand) - allocated
    made = 0
    if available > 0:
        exclude = {r.to_cooperative_id for r in offered} | {item.cooperative_id}
        takers = await load_takers(session, ctx, item.commodity, exclude, only)
        origin = None
        if takers:
            origin = await cooperative_point(session, ctx, item.cooperative_id, item.kelurahan_code)
        allocations = allocate_stalled_stock(
            available,
            origin,
            takers,
            commodity,
            from_cooperative_id=item.cooperative_id,
            max_km=ctx.settings.redistribution_max_km,
            max_takers=max(
                0, ctx.settings.redistribution_max_takers - sum(r.status == "proposed" for r in offered)
            ),
            target_days=ctx.settings.low_stock_target_days,
        )
        created = now()
        for a in allocations:
            proposal_id = new_id()
            await session.execute(
                insert(R).values(
                    id=proposal_id,
                    stalled_item_id=item.id,
                    commodity=item.commodity,
                    unit=item.unit,
                    quantity=a.quantity,
                    unit_cost=item.unit_cost,
                    from_cooperative_id=item.cooperative_id,
                    from_kelurahan_code=item.kelurahan_code,
                    from_kecamatan_code=item.kecamatan_code,
                    to_cooperative_id=a.taker.cooperative_id,
                    to_kelurahan_code=a.taker.kelurahan_code,
                    to_kecamatan_code=a.taker.kecamatan_code,
                    distance_km=a.distance_km,
                    reason=a.taker.reason,
                    need_id=a.taker.need_id,
                    status="proposed",
                    created_at=created,
                )
            )
            await ctx.out().add(
                session,
                RedistributionProposed(
                    cooperative_id=item.cooperative_id,
                    kelurahan_code=item.kelurahan_code,
                    kecamatan_code=item.kecamatan_code,
                    proposal_id=proposal_id,
                    commodity=item.commodity,
                    quantity=a.quantity,
                    unit=item.unit,
                    from_cooperative_id=item.cooperative_id,
                    to_cooperative_id=a.taker.cooperative_id,
                    to_kelurahan_code=a.taker.kelurahan_code,
                    to_kecamatan_code=a.taker.kecamatan_code,
                    distance_km=a.distance_km if a.distance_km is not None else -1.0,
                    reason=a.reason_text,
                    proposed_at=created,
                ),
            )
            made += 1
    return made


async def refresh_item_status(session: AsyncSession, item_id: str) -> None:
    """An active stalled item is `proposed` while offers wait, `redistributed` once some were taken,
    `no_taker` otherwise; a recovered one keeps its final status."""
    pending = await _count(session, item_id, ("proposed",))
    accepted = await _count(session, item_id, ("accepted",))
    status = "proposed" if pending else "redistributed" if accepted else "no_taker"
    await session.execute(
        update(S).where(S.c.id == item_id, S.c.status.in_(ACTIVE_STALLED_STATUSES)).values(status=status)
    )


async def offer_stalled_to(session: AsyncSession, ctx: Context, commodity: str, cooperative_id: str) -> None:
    """A cooperative newly needs the commodity: offer it stalled stock still unclaimed, nearest first."""
    items = (
        await session.execute(
            select(S.c.id, S.c.cooperative_id, S.c.kelurahan_code).where(
                S.c.commodity == commodity,
                S.c.active_key.is_not(None),
                S.c.cooperative_id != cooperative_id,
                ~select(R.c.id)
                .where(and_(R.c.stalled_item_id == S.c.id, R.c.to_cooperative_id == cooperative_id))
                .exists(),
            )
        )
    ).all()
    if not items:
        return
    taker_row = (
        await session.execute(
            select(orm.cooperatives.c.kelurahan_code).where(orm.cooperatives.c.id == cooperative_id)
        )
    ).first()
    kelurahan = taker_row.kelurahan_code if taker_row else None
    here = await cooperative_point(session, ctx, cooperative_id, kelurahan or "")

    def distance(item: Any) -> float:
        there = ctx.reference.kelurahan_point(item.kelurahan_code)
        return haversine_km(here, there) if here and there else float("inf")

    for item in sorted(items, key=distance)[:5]:
        if await propose_for_item(session, ctx, item.id, only=cooperative_id):
            return


# --- reading ------------------------------------------------------------------------------------


def _side(row: Any, side: str) -> dict[str, Any]:
    return {
        "decision": getattr(row, f"{side}_decision"),
        "decided_by": getattr(row, f"{side}_decided_by"),
        "decided_at": getattr(row, f"{side}_decided_at"),
        "note": getattr(row, f"{side}_note"),
    }


def proposal_out(row: Any) -> dict[str, Any]:
    out = {
        c: getattr(row, c)
        for c in R.c.keys()
        if not c.startswith(
            ("from_decision", "from_decided", "from_note", "to_decision", "to_decided", "to_note")
        )
    }
    out["quantity"] = dec(row.quantity)
    out["from_side"] = _side(row, "from")
    out["to_side"] = _side(row, "to")
    return out


def _proposal_scope(principal: Principal) -> Any | None:
    if principal.role == "coop_manager":
        own = principal.cooperative_id or ""
        return (R.c.from_cooperative_id == own) | (R.c.to_cooperative_id == own)
    if principal.role == "supplier":
        return R.c.id.is_(None)
    codes = principal.kecamatan_filter()
    if codes is not None:
        return R.c.from_kecamatan_code.in_(codes) | R.c.to_kecamatan_code.in_(codes)
    return None


def can_read_proposal(principal: Principal, row: Any) -> bool:
    return principal.role != "supplier" and (
        principal.can_read_cooperative(row.from_cooperative_id, row.from_kecamatan_code)
        or principal.can_read_cooperative(row.to_cooperative_id, row.to_kecamatan_code)
    )


async def list_proposals(
    session: AsyncSession,
    principal: Principal,
    *,
    commodity: str | None,
    status: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    conditions = []
    if (scope := _proposal_scope(principal)) is not None:
        conditions.append(scope)
    if commodity:
        conditions.append(R.c.commodity == commodity)
    if status:
        conditions.append(R.c.status == status)
    if cooperative_id:
        conditions.append(
            (R.c.from_cooperative_id == cooperative_id) | (R.c.to_cooperative_id == cooperative_id)
        )
    total = (await session.execute(select(func.count()).select_from(R).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(R)
        .where(*conditions)
        .order_by(R.c.created_at.desc(), R.c.distance_km, R.c.id)
        .limit(limit)
        .offset(offset)
    )
    return {"items": [proposal_out(r) for r in rows], "total": total, "limit": limit, "offset": offset}


async def get_proposal(session: AsyncSession, principal: Principal, proposal_id: str) -> dict[str, Any]:
    row = (await session.execute(select(R).where(R.c.id == proposal_id))).first()
    if row is None or not can_read_proposal(principal, row):
        raise not_found("redistribution proposal")
    return proposal_out(row)


def stalled_out(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["on_hand"] = dec(row.on_hand)
    out["allocated_quantity"] = dec(out.pop("allocated", None))
    return out


async def list_stalled(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    commodity: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    conditions: list[Any] = []
    if principal.role == "supplier":
        conditions.append(S.c.id.is_(None))
    elif principal.role == "coop_manager":
        conditions.append(S.c.cooperative_id == (principal.cooperative_id or ""))
    elif (codes := principal.kecamatan_filter()) is not None:
        conditions.append(S.c.kecamatan_code.in_(codes))
    for column, value in (
        (S.c.status, status),
        (S.c.commodity, commodity),
        (S.c.cooperative_id, cooperative_id),
    ):
        if value:
            conditions.append(column == value)
    allocated = (
        select(R.c.stalled_item_id, func.sum(R.c.quantity).label("allocated"))
        .where(R.c.status.in_(PENDING_OR_ACCEPTED))
        .group_by(R.c.stalled_item_id)
        .subquery()
    )
    total = (await session.execute(select(func.count()).select_from(S).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(
            *[c for c in S.c if c.name not in ("active_key", "event_id", "updated_at")], allocated.c.allocated
        )
        .outerjoin(allocated, allocated.c.stalled_item_id == S.c.id)
        .where(*conditions)
        .order_by(S.c.detected_at.desc(), S.c.id)
        .limit(limit)
        .offset(offset)
    )
    return {"items": [stalled_out(r) for r in rows], "total": total, "limit": limit, "offset": offset}


# --- answering ----------------------------------------------------------------------------------


def _sides_for(principal: Principal, row: Any) -> list[str]:
    """The sides of a proposal the caller may answer for."""
    if principal.role == "coop_manager":
        return [
            side
            for side, coop in (("from", row.from_cooperative_id), ("to", row.to_cooperative_id))
            if coop == principal.cooperative_id
        ]
    if principal.role in ("admin", "officer"):
        return [
            side
            for side, kec in (("from", row.from_kecamatan_code), ("to", row.to_kecamatan_code))
            if principal.covers_kecamatan(kec)
        ]
    return []


async def decide(
    session: AsyncSession,
    ctx: Context,
    principal: Principal,
    proposal_id: str,
    decision: str,
    data: schemas.DecisionIn,
) -> dict[str, Any]:
    """A side accepts or declines. Declined by either → declined (and the stock is offered onwards);
    accepted by both → accepted, announced for inventory to move the stock."""
    row = (await session.execute(select(R).where(R.c.id == proposal_id))).first()
    if row is None:
        raise not_found("redistribution proposal")
    allowed = _sides_for(principal, row)
    if not allowed:
        raise forbidden(
            "Only the two cooperatives' managers or an officer in scope may answer this proposal."
        )
    if data.side in ("from", "to"):
        if data.side not in allowed:
            raise forbidden(f"You may not answer for the '{data.side}' side of this proposal.")
        wanted: list[str] = [data.side]
    elif data.side == "both":
        if len(allowed) < 2:
            raise forbidden("You may answer for one side of this proposal only.")
        wanted = allowed
    else:
        wanted = allowed
    answered = [side for side in wanted if getattr(row, f"{side}_decision") is not None]
    # Explicit sides must all be unanswered; by default the caller answers what is still open.
    unanswered = [side for side in wanted if side not in answered]
    if not unanswered or (data.side is not None and answered):
        raise conflict(
            "already_answered", "This side has already answered the proposal.", {"answered": answered}
        )
    if row.status != "proposed":
        raise conflict("proposal_closed", f"The proposal is already {row.status}.")
    at = now()
    value = "accepted" if decision == "accept" else "declined"
    for side in unanswered:
        result = await session.execute(
            update(R)
            .where(R.c.id == proposal_id, R.c.status == "proposed", R.c[f"{side}_decision"].is_(None))
            .values(
                **{
                    f"{side}_decision": value,
                    f"{side}_decided_by": principal.sub,
                    f"{side}_decided_at": at,
                    f"{side}_note": data.note,
                }
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise conflict("already_answered", "The proposal was answered meanwhile; reload it.")
    if value == "declined":
        await session.execute(
            update(R)
            .where(R.c.id == proposal_id, R.c.status == "proposed")
            .values(status="declined", closed_at=at)
        )
        # The stock is still stalled: offer it to the next cooperative that needs it.
        await propose_for_item(session, ctx, row.stalled_item_id)
    else:
        # Both sides' answers are in the row now; only one transaction can flip it to accepted.
        result = await session.execute(
            update(R)
            .where(
                R.c.id == proposal_id,
                R.c.status == "proposed",
                R.c.from_decision == "accepted",
                R.c.to_decision == "accepted",
            )
            .values(status="accepted", closed_at=at)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            await ctx.out().add(
                session,
                RedistributionAccepted(
                    cooperative_id=row.from_cooperative_id,
                    kelurahan_code=row.from_kelurahan_code,
                    kecamatan_code=row.from_kecamatan_code,
                    proposal_id=row.id,
                    commodity=row.commodity,
                    quantity=dec(row.quantity),
                    unit=row.unit,
                    unit_cost=row.unit_cost,
                    from_cooperative_id=row.from_cooperative_id,
                    to_cooperative_id=row.to_cooperative_id,
                    to_kelurahan_code=row.to_kelurahan_code,
                    to_kecamatan_code=row.to_kecamatan_code,
                    accepted_at=at,
                ),
            )
            await refresh_item_status(session, row.stalled_item_id)
            if row.need_id:
                await system_comment(
                    session,
                    row.need_id,
                    f"Redistribusi {dec(row.quantity).normalize():f} {row.unit or ''} {row.commodity} "
                    "dari koperasi "
                    f"lain disetujui kedua pihak (usulan {row.id}).",
                )
    updated = (await session.execute(select(R).where(R.c.id == proposal_id))).one()
    return proposal_out(updated)
