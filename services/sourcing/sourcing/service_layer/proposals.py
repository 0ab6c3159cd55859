"""Redistribution proposals: offer stalled stock to the nearest cooperatives that need it, and the two
managers' answers. When both sides accept, `redistribution.accepted.v1` tells inventory to record the
transfer out and in.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import conflict, forbidden, not_found
from kkmp_shared.events.contracts import RedistributionAccepted, RedistributionProposed
from kkmp_shared.unit_of_work import UnitOfWork

from sourcing.adapters import matching as matching_rows
from sourcing.adapters import redistribution as rows
from sourcing.adapters.redistribution import PENDING_OR_ACCEPTED
from sourcing.domain.geo import Point, haversine_km
from sourcing.domain.redistribution import Taker, allocate_stalled_stock
from sourcing.service_layer.commands import AnswerProposal
from sourcing.service_layer.common import Context, dec, new_id, now
from sourcing.service_layer.events import SupplyNeedSubmitted
from sourcing.service_layer.matching import cooperative_point
from sourcing.service_layer.needs import system_comment

INACTIVE_COOPERATIVE = ("suspended", "dissolved")


# --- proposing ----------------------------------------------------------------------------------


async def load_takers(
    uow: UnitOfWork, ctx: Context, commodity: str, exclude: set[str], only: str | None = None
) -> list[Taker]:
    """Cooperatives that need the commodity: an open supply need with something left to source, or a
    low or empty shelf not yet recovered. Suspended or dissolved cooperatives are left out."""
    session = uow.session
    # A low or empty shelf already offered this commodity (waiting, or accepted since the episode began)
    # is served; offering it a second lot would over-supply it.
    served: dict[str, list[Any]] = {}
    for r in await rows.shelf_offers(session, commodity):
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
    for r in await rows.open_supply_needs(session, commodity, only):
        remaining = dec(r.quantity) - dec(r.ordered) - dec(r.moved)
        if r.cooperative_id in exclude or r.coop_status in INACTIVE_COOPERATIVE or remaining <= 0:
            continue
        takers.append(
            Taker(
                r.cooperative_id, r.kelurahan_code, r.kecamatan_code, point(r), "open_need", r.id, remaining
            )
        )
    for r in await rows.short_shelves(session, commodity, only):
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


async def propose_for_item(uow: UnitOfWork, ctx: Context, item_id: str, only: str | None = None) -> int:
    """Offer what is left of a stalled item to the nearest cooperatives that need it and have not been
    offered it yet; returns how many proposals were made."""
    item = await rows.stalled_item(uow.session, item_id)
    offered = await rows.offers_of_item(uow.session, item_id)
    made = await propose(uow, ctx, item, offered, only)
    await refresh_item_status(uow, item_id)
    return made


async def propose(
    uow: UnitOfWork, ctx: Context, item: Any, offered: Sequence[Any], only: str | None = None
) -> int:
    """Record the proposals for `item` given the offers it already has; its status is left to the
    caller."""
    commodity = ctx.commodity(item.commodity, item.unit)
    allocated = sum((dec(r.quantity) for r in offered if r.status in PENDING_OR_ACCEPTED), Decimal(0))
    available = dec(item.on_hand) - allocated
    made = 0
    if available > 0:
        exclude = {r.to_cooperative_id for r in offered} | {item.cooperative_id}
        takers = await load_takers(uow, ctx, item.commodity, exclude, only)
        origin = None
        if takers:
            origin = await cooperative_point(uow.session, ctx, item.cooperative_id, item.kelurahan_code)
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
            await rows.add_proposal(
                uow.session,
                {
                    "id": proposal_id,
                    "stalled_item_id": item.id,
                    "commodity": item.commodity,
                    "unit": item.unit,
                    "quantity": a.quantity,
                    "unit_cost": item.unit_cost,
                    "from_cooperative_id": item.cooperative_id,
                    "from_kelurahan_code": item.kelurahan_code,
                    "from_kecamatan_code": item.kecamatan_code,
                    "to_cooperative_id": a.taker.cooperative_id,
                    "to_kelurahan_code": a.taker.kelurahan_code,
                    "to_kecamatan_code": a.taker.kecamatan_code,
                    "distance_km": a.distance_km,
                    "reason": a.taker.reason,
                    "need_id": a.taker.need_id,
                    "status": "proposed",
                    "created_at": created,
                },
            )
            await uow.publish(
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


async def refresh_item_status(uow: UnitOfWork, item_id: str) -> None:
    """An active stalled item is `proposed` while offers wait, `redistributed` once some were taken,
    `no_taker` otherwise; a recovered one keeps its final status."""
    pending = await rows.count_proposals(uow.session, item_id, ("proposed",))
    accepted = await rows.count_proposals(uow.session, item_id, ("accepted",))
    status = "proposed" if pending else "redistributed" if accepted else "no_taker"
    await rows.set_active_item_status(uow.session, item_id, status)


async def offer_stalled_to(uow: UnitOfWork, ctx: Context, commodity: str, cooperative_id: str) -> None:
    """A cooperative newly needs the commodity: offer it stalled stock still unclaimed, nearest first."""
    items = await rows.stalled_items_not_offered_to(uow.session, commodity, cooperative_id)
    if not items:
        return
    kelurahan = await matching_rows.cooperative_kelurahan(uow.session, cooperative_id)
    here = await cooperative_point(uow.session, ctx, cooperative_id, kelurahan or "")

    def distance(item: Any) -> float:
        there = ctx.reference.kelurahan_point(item.kelurahan_code)
        return haversine_km(here, there) if here and there else float("inf")

    for item in sorted(items, key=distance)[:5]:
        if await propose_for_item(uow, ctx, item.id, only=cooperative_id):
            return


async def offer_stalled_for_need(event: SupplyNeedSubmitted, uow: UnitOfWork, ctx: Context) -> None:
    """Stalled stock elsewhere may serve a new supply need before any supplier does."""
    await offer_stalled_to(uow, ctx, event.commodity, event.cooperative_id)


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
    uow: UnitOfWork, ctx: Context, principal: Principal, proposal_id: str, answer: AnswerProposal
) -> None:
    """A side accepts or declines. Declined by either → declined (and the stock is offered onwards);
    accepted by both → accepted, announced for inventory to move the stock."""
    session = uow.session
    row = await rows.get_proposal(session, proposal_id)
    if row is None:
        raise not_found("redistribution proposal")
    allowed = _sides_for(principal, row)
    if not allowed:
        raise forbidden(
            "Only the two cooperatives' managers or an officer in scope may answer this proposal."
        )
    if answer.side in ("from", "to"):
        if answer.side not in allowed:
            raise forbidden(f"You may not answer for the '{answer.side}' side of this proposal.")
        wanted: list[str] = [answer.side]
    elif answer.side == "both":
        if len(allowed) < 2:
            raise forbidden("You may answer for one side of this proposal only.")
        wanted = allowed
    else:
        wanted = allowed
    answered = [side for side in wanted if getattr(row, f"{side}_decision") is not None]
    # Explicit sides must all be unanswered; by default the caller answers what is still open.
    unanswered = [side for side in wanted if side not in answered]
    if not unanswered or (answer.side is not None and answered):
        raise conflict(
            "already_answered", "This side has already answered the proposal.", {"answered": answered}
        )
    if row.status != "proposed":
        raise conflict("proposal_closed", f"The proposal is already {row.status}.")
    at = now()
    value = "accepted" if answer.decision == "accept" else "declined"
    for side in unanswered:
        if not await rows.record_answer(session, proposal_id, side, value, principal.sub, at, answer.note):
            raise conflict("already_answered", "The proposal was answered meanwhile; reload it.")
    if value == "declined":
        await rows.close_declined(session, proposal_id, at)
        # The stock is still stalled: offer it to the next cooperative that needs it.
        await propose_for_item(uow, ctx, row.stalled_item_id)
    elif await rows.close_if_both_accepted(session, proposal_id, at):
        await uow.publish(
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
        await refresh_item_status(uow, row.stalled_item_id)
        if row.need_id:
            await system_comment(
                uow,
                row.need_id,
                f"Redistribusi {dec(row.quantity).normalize():f} {row.unit or ''} {row.commodity} "
                "dari koperasi "
                f"lain disetujui kedua pihak (usulan {row.id}).",
            )
