"""Redistribution of stalled stock (stok macet): who should take it, how much, and what to do if nobody.

A cooperative needs a commodity when it has an open supply need for it, or its stock of it is low or
out (known from inventory's events and not yet recovered). Stalled stock is offered to those
cooperatives nearest first, each for what it needs: the open need's remaining quantity, or for a low
or empty shelf `target_days` of its average daily sales; when that is unknown, an equal share of the
stalled quantity. A stalled item nobody needs still gets the domain's suggestions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sourcing.domain.commodities import Commodity, format_quantity, format_rupiah
from sourcing.domain.geo import Point, haversine_km

TakerReason = Literal["open_need", "stockout", "low"]
# An explicit need beats an empty shelf, which beats a low one, at the same distance.
REASON_PRIORITY: dict[str, int] = {"open_need": 0, "stockout": 1, "low": 2}

REASON_TEXT: dict[str, str] = {
    "open_need": "mengajukan kebutuhan pasokan",
    "stockout": "stok habis",
    "low": "stok menipis",
}

PROPOSAL_STATUSES = ("proposed", "accepted", "declined", "withdrawn")
STALLED_STATUSES = ("no_taker", "proposed", "redistributed", "recovered")
ACTIVE_STALLED_STATUSES = ("no_taker", "proposed", "redistributed")


@dataclass(frozen=True)
class Taker:
    cooperative_id: str
    kelurahan_code: str
    kecamatan_code: str
    location: Point | None
    reason: TakerReason
    need_id: str | None = None
    needed_quantity: Decimal | None = None  # an open need's remaining quantity
    on_hand: Decimal | None = None
    avg_daily_sales: Decimal | None = None


@dataclass(frozen=True)
class Allocation:
    taker: Taker
    quantity: Decimal
    distance_km: float | None

    @property
    def reason_text(self) -> str:
        return REASON_TEXT[self.taker.reason]


def estimated_need(taker: Taker, target_days: int) -> Decimal | None:
    """What a taker needs: an open need's remainder, else `target_days` of sales less what is on hand."""
    if taker.reason == "open_need":
        return taker.needed_quantity
    if taker.avg_daily_sales is not None and taker.avg_daily_sales > 0:
        return max(Decimal(0), taker.avg_daily_sales * target_days - (taker.on_hand or Decimal(0)))
    return None


def _merge_by_cooperative(takers: Iterable[Taker]) -> list[Taker]:
    """One entry per cooperative: its strongest reason (an open need, then stockout, then low)."""
    best: dict[str, Taker] = {}
    for t in takers:
        current = best.get(t.cooperative_id)
        if current is None or REASON_PRIORITY[t.reason] < REASON_PRIORITY[current.reason]:
            # Keep sales figures known from a low-stock event when an empty shelf replaces it.
            if current is not None and t.avg_daily_sales is None and current.avg_daily_sales is not None:
                t = Taker(**{**t.__dict__, "avg_daily_sales": current.avg_daily_sales})
            best[t.cooperative_id] = t
        elif current.avg_daily_sales is None and t.avg_daily_sales is not None:
            best[t.cooperative_id] = Taker(**{**current.__dict__, "avg_daily_sales": t.avg_daily_sales})
    return list(best.values())


def allocate_stalled_stock(
    available: Decimal,
    origin: Point | None,
    takers: Sequence[Taker],
    commodity: Commodity,
    *,
    from_cooperative_id: str,
    max_km: float,
    max_takers: int,
    target_days: int,
) -> list[Allocation]:
    """Offer `available` units to the nearest cooperatives that need them, nearest first."""
    candidates: list[tuple[float, int, Taker]] = []
    for taker in _merge_by_cooperative(t for t in takers if t.cooperative_id != from_cooperative_id):
        km = haversine_km(origin, taker.location) if origin and taker.location else None
        if km is not None and km > max_km:
            continue
        # Unknown positions go last: a known neighbour is the better bet.
        candidates.append((km if km is not None else float("inf"), REASON_PRIORITY[taker.reason], taker))
    candidates.sort(key=lambda c: (c[0], c[1], c[2].cooperative_id))
    chosen = candidates[:max_takers]
    if not chosen or available <= 0:
        return []
    share = available / len(chosen)
    allocations: list[Allocation] = []
    remaining = available
    for km, _, taker in chosen:
        wanted = estimated_need(taker, target_days)
        quantity = commodity.round_down(min(remaining, share if wanted is None else wanted))
        if quantity <= 0:
            continue
        allocations.append(Allocation(taker, quantity, None if km == float("inf") else round(km, 2)))
        remaining -= quantity
        if remaining <= 0:
            break
    return allocations


# What UMKM members who would use a commodity make or sell (matched against their sector and products).
COMMODITY_USES: dict[str, tuple[str, ...]] = {
    "beras": ("nasi", "warung", "katering", "catering", "makan", "kuliner", "kantin"),
    "tepung_terigu": ("kue", "roti", "gorengan", "mie", "bakso", "martabak", "bakery", "jajan", "kuliner"),
    "minyak": ("gorengan", "warung", "katering", "keripik", "kerupuk", "kuliner", "makan"),
    "gula": ("kue", "minuman", "es ", "jamu", "kopi", "roti", "kuliner"),
    "telur": ("kue", "roti", "martabak", "warung", "katering", "kuliner"),
    "daging_ayam": ("warung", "katering", "penyetan", "soto", "ayam goreng", "kuliner"),
    "lpg": ("warung", "gorengan", "katering", "kuliner", "makan", "kantin"),
    "bawang": ("sambal", "warung", "katering", "penyetan", "kuliner", "bumbu"),
    "cabai": ("sambal", "warung", "katering", "penyetan", "kuliner", "bumbu"),
    "kedelai": ("tahu", "tempe", "susu kedelai"),
    "garam": ("kerupuk", "ikan asin", "katering", "kuliner"),
    "mie_instan": ("warung", "kantin"),
    "susu_kental_manis": ("minuman", "es ", "kue", "kopi"),
    "ikan_bandeng": ("otak-otak", "bandeng", "presto", "katering", "kuliner"),
}


def uses_for(commodity_code: str) -> tuple[str, ...]:
    for prefix, uses in COMMODITY_USES.items():
        if commodity_code.startswith(prefix):
            return uses
    return ("kuliner",)


def member_uses(commodity_code: str, sector: str | None, products: Iterable[str]) -> bool:
    """Whether a UMKM member's business plausibly uses the commodity."""
    text = " ".join([sector or "", *products]).lower() + " "
    return any(word in text for word in uses_for(commodity_code))


@dataclass(frozen=True)
class Suggestion:
    code: Literal["sell_to_umkm_members", "promotion", "return_to_supplier"]
    text: str


def stalled_suggestions(
    commodity: Commodity,
    on_hand: Decimal,
    days_since_sale: int,
    *,
    umkm_users: Sequence[str] = (),
    last_supplier: str | None = None,
) -> list[Suggestion]:
    """What a cooperative can do with stalled stock that no other cooperative needs."""
    qty = format_quantity(on_hand, commodity.unit)
    suggestions: list[Suggestion] = []
    if umkm_users:
        names = ", ".join(umkm_users[:3]) + (" dan lainnya" if len(umkm_users) > 3 else "")
        suggestions.append(
            Suggestion(
                "sell_to_umkm_members",
                f"Tawarkan {qty} {commodity.name} ke {len(umkm_users)} anggota UMKM yang memakainya "
                f"({names}) dengan harga anggota.",
            )
        )
    else:
        suggestions.append(
            Suggestion(
                "sell_to_umkm_members",
                f"Tawarkan {commodity.name} ke anggota UMKM kuliner atau warung di kelurahan "
                "(belum ada anggota UMKM tercatat yang memakainya).",
            )
        )
    urgency = " segera, barang mudah rusak" if commodity.perishable else ""
    promo = f"Adakan promosi{urgency}: potongan harga atau paket bundling dengan barang yang laku"
    if commodity.price_ceiling is not None:
        ceiling = f"{commodity.ceiling_kind or 'HET'} {format_rupiah(commodity.price_ceiling)}"
        promo += f"; harga tetap di bawah {ceiling}"
    suggestions.append(Suggestion("promotion", promo + f" (tidak terjual {days_since_sale} hari)."))
    if commodity.perishable:
        back = "Retur ke pemasok jarang diterima untuk barang segar; utamakan promosi dan penjualan ke UMKM."
    elif last_supplier:
        back = f"Ajukan retur atau tukar barang ke pemasok terakhir, {last_supplier}, sesuai perjanjian."
    else:
        back = "Ajukan retur atau tukar barang ke pemasok bila perjanjian memungkinkan."
    suggestions.append(Suggestion("return_to_supplier", back))
    return suggestions
