"""The supplier registry (pemasok): Bulog, Pertamina agents and pangkalan, wholesalers, UMKM producers,
partner regions; what each offers, and its delivery record. A change to suppliers refreshes the ranking
of the open supply needs it touches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import conflict, forbidden, not_found, unprocessable
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import suppliers as supplier_rows
from sourcing.service_layer.commands import ChangeSupplier, OfferTerms, RegisterSupplier, ReplaceOffers
from sourcing.service_layer.common import Context, dec, new_id, now, require_staff
from sourcing.service_layer.matching import rematch_commodities, supplier_performance


def _check_reference(
    ctx: Context, codes: Sequence[str], offers: Sequence[OfferTerms], prefix: str = ""
) -> None:
    for i, code in enumerate(codes):
        if code not in ctx.reference.kecamatan:
            raise unprocessable(
                f"{prefix}service_kecamatan_codes.{i}",
                f"Unknown kecamatan code {code!r}.",
                "unknown_kecamatan",
            )
    for i, offer in enumerate(offers):
        if ctx.reference.commodity(offer.commodity) is None:
            raise unprocessable(
                f"{prefix}offers.{i}.commodity",
                f"Unknown commodity {offer.commodity!r}.",
                "unknown_commodity",
            )
        for tier in offer.price_tiers:
            if tier.unit_price >= offer.unit_price:
                raise unprocessable(
                    f"{prefix}offers.{i}.price_tiers",
                    "A price tier must be cheaper than the base price.",
                )


def _offer_rows(supplier_id: str, offers: Sequence[OfferTerms], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id(),
            "supplier_id": supplier_id,
            "commodity": o.commodity,
            "unit_price": o.unit_price,
            "min_order": o.min_order,
            "capacity_per_week": o.capacity_per_week,
            "lead_time_days": o.lead_time_days,
            "price_tiers": [
                {"min_quantity": float(t.min_quantity), "unit_price": t.unit_price}
                for t in sorted(o.price_tiers, key=lambda t: t.min_quantity)
            ],
            "updated_at": at,
        }
        for o in offers
    ]


async def create_supplier(
    uow: UnitOfWork,
    ctx: Context,
    principal: Principal,
    data: RegisterSupplier,
    *,
    prefix: str = "",
) -> str:
    session = uow.session
    require_staff(principal)
    _check_reference(ctx, data.service_kecamatan_codes, data.offers, prefix)
    key = data.name.casefold()
    if await supplier_rows.name_taken(session, key):
        raise conflict("duplicate_supplier", f"A supplier named {data.name!r} already exists.")
    supplier_id = new_id()
    at = now()
    await supplier_rows.add(
        session,
        dict(
            id=supplier_id,
            name=data.name,
            name_key=key,
            kind=data.kind,
            contact=data.contact,
            phone=data.phone,
            email=data.email,
            address=data.address,
            service_kecamatan_codes=list(dict.fromkeys(data.service_kecamatan_codes)),
            lat=data.lat,
            lon=data.lon,
            active=True,
            created_by=principal.sub,
            created_at=at,
            updated_at=at,
        ),
    )
    if data.offers:
        await supplier_rows.add_offers(session, _offer_rows(supplier_id, data.offers, at))
    await rematch_commodities(uow, ctx, [o.commodity for o in data.offers])
    return supplier_id


async def create_batch(
    uow: UnitOfWork, ctx: Context, principal: Principal, batch: Sequence[RegisterSupplier]
) -> list[str]:
    require_staff(principal)
    names = [s.name.casefold() for s in batch]
    if len(set(names)) != len(names):
        raise unprocessable("suppliers", "Two suppliers in the batch share a name.", "duplicate_supplier")
    ids = []
    for i, item in enumerate(batch):
        ids.append(await create_supplier(uow, ctx, principal, item, prefix=f"suppliers.{i}."))
    return ids


async def update_supplier(
    uow: UnitOfWork, ctx: Context, principal: Principal, supplier_id: str, data: ChangeSupplier
) -> None:
    session = uow.session
    require_staff(principal)
    row = await supplier_rows.get(session, supplier_id)
    if row is None:
        raise not_found("supplier")
    changes = dict(data.changes)
    if "service_kecamatan_codes" in changes:
        _check_reference(ctx, changes["service_kecamatan_codes"] or [], [])
        changes["service_kecamatan_codes"] = list(dict.fromkeys(changes["service_kecamatan_codes"] or []))
    if None in (changes.get("name", ""), changes.get("kind", ""), changes.get("active", False)):
        raise unprocessable("name", "name, kind and active cannot be null.")
    lat = changes.get("lat", row.lat)
    lon = changes.get("lon", row.lon)
    if (lat is None) != (lon is None):
        raise unprocessable("lat", "lat and lon go together.")
    if "name" in changes:
        key = changes["name"].casefold()
        if await supplier_rows.name_taken(session, key, other_than=supplier_id):
            raise conflict("duplicate_supplier", f"A supplier named {changes['name']!r} already exists.")
        changes["name_key"] = key
    if not changes:
        return
    await supplier_rows.change(session, supplier_id, {**changes, "updated_at": now()})
    if {"lat", "lon", "service_kecamatan_codes", "active"} & changes.keys():
        commodities = await supplier_rows.offered_commodities(session, supplier_id)
        await rematch_commodities(uow, ctx, commodities)


async def replace_offers(
    uow: UnitOfWork, ctx: Context, principal: Principal, supplier_id: str, data: ReplaceOffers
) -> None:
    """Staff, or the supplier itself, replace what a supplier offers."""
    session = uow.session
    if principal.role == "supplier":
        if principal.supplier_id != supplier_id:
            raise forbidden("You may only change your own offers.")
    else:
        require_staff(principal)
    if not await supplier_rows.exists_by_id(session, supplier_id):
        raise not_found("supplier")
    _check_reference(ctx, [], data.offers)
    before = set(await supplier_rows.offered_commodities(session, supplier_id))
    await supplier_rows.remove_offers(session, supplier_id)
    at = now()
    if data.offers:
        await supplier_rows.add_offers(session, _offer_rows(supplier_id, data.offers, at))
    await supplier_rows.change(session, supplier_id, {"updated_at": at})
    await rematch_commodities(uow, ctx, before | {o.commodity for o in data.offers})


# --- reading ------------------------------------------------------------------------------------


async def _suppliers_out(session: AsyncSession, ctx: Context, rows: list[Any]) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    offers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if ids:
        for o in await supplier_rows.offers_of(session, ids):
            commodity = ctx.reference.commodity(o.commodity)
            offers[o.supplier_id].append(
                {
                    "commodity": o.commodity,
                    "unit": commodity.unit if commodity else None,
                    "unit_price": o.unit_price,
                    "min_order": dec(o.min_order),
                    "capacity_per_week": dec(o.capacity_per_week),
                    "lead_time_days": o.lead_time_days,
                    "price_tiers": o.price_tiers or [],
                }
            )
    performance = await supplier_performance(session, ids) if ids else {}
    out = []
    for r in rows:
        perf = performance.get(r.id)
        out.append(
            {
                **dict(r._mapping),
                "service_kecamatan_codes": list(r.service_kecamatan_codes or []),
                "offers": offers[r.id],
                "performance": {
                    "orders": perf.orders if perf else 0,
                    "on_time": perf.on_time if perf else 0,
                    "on_time_rate": round(perf.on_time / perf.orders, 4) if perf and perf.orders else None,
                    "fill_rate": round(perf.fill_ratio_sum / perf.orders, 4)
                    if perf and perf.orders
                    else None,
                },
            }
        )
    return out


async def list_suppliers(
    session: AsyncSession,
    ctx: Context,
    principal: Principal,
    *,
    commodity: str | None,
    kecamatan_code: str | None,
    kind: str | None,
    q: str | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    rows = await supplier_rows.matching(
        session,
        only=(principal.supplier_id or "") if principal.role == "supplier" else None,
        commodity=commodity,
        kind=kind,
        q=q,
        active=active,
    )
    if kecamatan_code:
        # The service area is a JSON list (portable across both databases); empty = the whole city.
        rows = [
            r for r in rows if not r.service_kecamatan_codes or kecamatan_code in r.service_kecamatan_codes
        ]
    total = len(rows)
    page = rows[offset : offset + limit]
    return {
        "items": await _suppliers_out(session, ctx, page),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


async def get_supplier(
    session: AsyncSession, ctx: Context, principal: Principal, supplier_id: str
) -> dict[str, Any]:
    if principal.role == "supplier" and principal.supplier_id != supplier_id:
        raise not_found("supplier")
    row = await supplier_rows.get(session, supplier_id)
    if row is None:
        raise not_found("supplier")
    return (await _suppliers_out(session, ctx, [row]))[0]
