"""Running the supplier ranking for supply needs: gather offers, commitments and track records in a few
set-based queries, rank with the domain's rules, keep the result on the need and announce it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from kkmp_shared.events.contracts import SupplierMatch, SupplierMatched
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import matching as matching_rows
from sourcing.adapters import needs as need_rows
from sourcing.domain.geo import Point
from sourcing.domain.matching import (
    NeedSpec,
    Offer,
    Performance,
    PriceTier,
    propose_split,
    rank_suppliers,
)
from sourcing.service_layer.common import Context, dec, local_date, now

supplier_performance = matching_rows.supplier_performance


async def offers_for(session: AsyncSession, ctx: Context, commodity: str) -> list[Offer]:
    rows = await matching_rows.active_offers(session, commodity)
    committed = await matching_rows.open_commitments(session, commodity) if rows else {}
    offers = []
    for r in rows:
        codes = list(r.service_kecamatan_codes or [])
        offers.append(
            Offer(
                supplier_id=r.supplier_id,
                supplier_name=r.name,
                unit_price=int(r.unit_price),
                min_order=dec(r.min_order),
                capacity_per_week=dec(r.capacity_per_week),
                lead_time_days=int(r.lead_time_days),
                price_tiers=tuple(
                    PriceTier(Decimal(str(t["min_quantity"])), int(t["unit_price"]))
                    for t in r.price_tiers or []
                ),
                supplier_kind=r.kind,
                points=ctx.reference.supplier_points(r.lat, r.lon, codes),
                service_kecamatan_codes=tuple(codes),
                committed=dec(committed[r.supplier_id]) if r.supplier_id in committed else Decimal(0),
            )
        )
    return offers


async def cooperative_point(
    session: AsyncSession, ctx: Context, cooperative_id: str, kelurahan_code: str
) -> Point | None:
    """The registry's point for the cooperative when known, else its kelurahan's reference point."""
    return await matching_rows.cooperative_position(session, cooperative_id) or ctx.reference.kelurahan_point(
        kelurahan_code
    )


def _signature(matches: list[dict[str, Any]], split: dict[str, Any] | None) -> Any:
    """What makes a ranking different for its readers: who, in which order, at what price, how much."""
    ranked = [(m["supplier_id"], m["unit_price"], str(dec(m["can_fill_quantity"]))) for m in matches]
    parts = [(p["supplier_id"], str(dec(p["quantity"]))) for p in (split or {}).get("parts", [])]
    return ranked, parts


@dataclass(frozen=True)
class Candidates:
    """What the ranking of one commodity's needs draws on, loaded once for all of them."""

    offers: list[Offer]
    performance: dict[str, Performance]


async def candidates_for(session: AsyncSession, ctx: Context, commodity: str) -> Candidates:
    offers = await offers_for(session, ctx, commodity)
    performance = await supplier_performance(session, [o.supplier_id for o in offers]) if offers else {}
    return Candidates(offers, performance)


async def match_need(
    uow: UnitOfWork,
    ctx: Context,
    need: Any,
    *,
    as_of: date | None = None,
    always_announce: bool = True,
    candidates: Candidates | None = None,
    location: Point | None = None,
) -> bool:
    """Rank suppliers for a supply need, store the ranking on it and announce `supplier.matched.v1`.

    With `always_announce=False` (a refresh after suppliers changed) the event goes out only when the
    ranking actually changed. Returns whether it changed.
    """
    session = uow.session
    commodity = ctx.commodity(need.commodity, need.unit)
    candidates = candidates or await candidates_for(session, ctx, need.commodity)
    offers, performance = candidates.offers, candidates.performance
    spec = NeedSpec(
        commodity=commodity,
        quantity=dec(need.quantity),
        needed_by=need.needed_by,
        today=as_of or local_date(now()),
        location=location or await cooperative_point(session, ctx, need.cooperative_id, need.kelurahan_code),
        horizon_days=ctx.settings.default_horizon_days,
        kecamatan_code=need.kecamatan_code,
    )
    ranked = rank_suppliers(spec, offers, performance)
    split = propose_split(spec.quantity, ranked, {o.supplier_id: o.min_order for o in offers})
    kept = ranked[: ctx.settings.match_limit]
    rows = [
        {
            "need_id": need.id,
            "supplier_id": m.supplier_id,
            "rank": rank,
            "score": m.score,
            "unit_price": m.unit_price,
            "lead_time_days": m.lead_time_days,
            "can_fill_quantity": m.can_fill_quantity,
            "distance_km": m.distance_km,
            "on_time": m.on_time,
            "components": m.components,
            "reasons": m.reasons,
        }
        for rank, m in enumerate(kept, start=1)
    ]
    split_json = (
        {
            "parts": [
                {
                    "supplier_id": p.supplier_id,
                    "supplier_name": p.supplier_name,
                    "quantity": float(p.quantity),
                    "unit_price": p.unit_price,
                    "cost": p.cost,
                }
                for p in split.parts
            ],
            "quantity": float(split.quantity),
            "shortfall": float(split.shortfall),
            "complete": split.complete,
            "cost": split.cost,
        }
        if split is not None
        else None
    )
    previous = await matching_rows.ranking(session, need.id)
    changed = _signature(previous, need.split) != _signature(rows, split_json)
    await matching_rows.keep_ranking(session, need.id, rows, split_json, now())
    if always_announce or changed:
        await uow.publish(
            SupplierMatched(
                cooperative_id=need.cooperative_id,
                kelurahan_code=need.kelurahan_code,
                kecamatan_code=need.kecamatan_code,
                need_id=need.id,
                commodity=need.commodity,
                quantity=spec.quantity,
                matches=[
                    SupplierMatch(
                        supplier_id=m.supplier_id,
                        score=m.score,
                        quantity=m.can_fill_quantity,
                        unit_price=m.unit_price,
                        lead_time_days=m.lead_time_days,
                        distance_km=m.distance_km,
                        reasons=m.reasons,
                    )
                    for m in kept
                ],
                split=split is not None,
                split_parts=[
                    SupplierMatch(
                        supplier_id=p.supplier_id, score=0.0, quantity=p.quantity, unit_price=p.unit_price
                    )
                    for p in (split.parts if split else ())
                ],
            ),
        )
    return changed


async def rematch_commodities(uow: UnitOfWork, ctx: Context, commodities: Iterable[str]) -> int:
    """Refresh the ranking of every active supply need for these commodities (suppliers changed).

    Returns how many rankings changed (and were announced again).
    """
    codes = sorted(set(commodities))
    if not codes:
        return 0
    session = uow.session
    needs = await need_rows.active_supply_needs_for(session, codes)
    # Offers, track records and positions are read once per refresh, not once per need.
    positions = await matching_rows.cooperative_positions(session, {n.cooperative_id for n in needs})
    candidates = {code: await candidates_for(session, ctx, code) for code in {n.commodity for n in needs}}
    changed = 0
    for need in needs:
        location = positions.get(need.cooperative_id) or ctx.reference.kelurahan_point(need.kelurahan_code)
        changed += await match_need(
            uow,
            ctx,
            need,
            always_announce=False,
            candidates=candidates[need.commodity],
            location=location,
        )
    return changed
