"""Supplier matching (pencocokan pemasok): rank suppliers for a supply need by a transparent score.

The score is a weighted sum of five components, each between 0 and 1, and every component leaves a
reason in plain words, so an officer can see why a supplier ranks where it does:

- price: the cheapest offer scores 1, dearer ones the ratio cheapest/price; an offer above the HET
  scores 0 (a KKMP could not resell it at or below the ceiling).
- fill: the share of the quantity the supplier can deliver by `needed_by` (weekly capacity over the
  weeks left after its lead time, minus what it already owes on open orders); halved when its
  minimum order exceeds the need.
- speed: the slack its lead time leaves before `needed_by` (0 when it would arrive late).
- distance: 1 / (1 + km/10) from the nearest point the supplier serves to the cooperative.
- performance: on-time and fill record of its past orders, pulled towards neutral (0.5) while the
  record is short.

When no single supplier can fill the quantity in time, `propose_split` divides it over the ranked
suppliers in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sourcing.domain.commodities import Commodity, format_quantity, format_rupiah
from sourcing.domain.geo import Point, nearest_km

# Price and the ability to deliver in time decide most; speed beyond "in time" is a small bonus, since
# a cooperative saves more from a cheaper sack than from rice that arrives days before it is needed.
WEIGHTS: dict[str, float] = {
    "price": 0.35,
    "fill": 0.30,
    "distance": 0.15,
    "speed": 0.05,
    "performance": 0.15,
}
# A distance of this many km halves the distance component.
DISTANCE_HALF_KM = 10.0
# Past orders weigh in as if two neutral ones had been seen before them.
PERFORMANCE_PRIOR_ORDERS = 2


@dataclass(frozen=True)
class PriceTier:
    """A lower unit price from a quantity upwards (the reason pooled demand pays)."""

    min_quantity: Decimal
    unit_price: int


@dataclass(frozen=True)
class Offer:
    supplier_id: str
    supplier_name: str
    unit_price: int
    min_order: Decimal
    capacity_per_week: Decimal
    lead_time_days: int
    price_tiers: tuple[PriceTier, ...] = ()
    supplier_kind: str | None = None
    points: tuple[Point, ...] = ()
    service_kecamatan_codes: tuple[str, ...] = ()  # empty: the whole city
    committed: Decimal = Decimal(0)  # still undelivered on its open orders for this commodity

    def serves(self, kecamatan_code: str | None) -> bool:
        return not self.service_kecamatan_codes or kecamatan_code in self.service_kecamatan_codes


@dataclass(frozen=True)
class Performance:
    orders: int = 0
    on_time: int = 0
    fill_ratio_sum: float = 0.0

    def score(self) -> float:
        prior = PERFORMANCE_PRIOR_ORDERS
        raw = 0.5 * self.on_time + 0.5 * self.fill_ratio_sum
        return (raw + 0.5 * prior) / (self.orders + prior)


@dataclass(frozen=True)
class NeedSpec:
    commodity: Commodity
    quantity: Decimal
    needed_by: date | None
    today: date
    location: Point | None
    horizon_days: int = 14
    kecamatan_code: str | None = None

    @property
    def days_available(self) -> int:
        if self.needed_by is None:
            return self.horizon_days
        return (self.needed_by - self.today).days


@dataclass
class Match:
    supplier_id: str
    supplier_name: str
    score: float
    unit_price: int
    lead_time_days: int
    can_fill_quantity: Decimal
    distance_km: float | None
    on_time: bool
    components: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SplitPart:
    supplier_id: str
    supplier_name: str
    quantity: Decimal
    unit_price: int

    @property
    def cost(self) -> int:
        return round(self.quantity * self.unit_price)


@dataclass(frozen=True)
class Split:
    parts: tuple[SplitPart, ...]
    quantity: Decimal
    shortfall: Decimal

    @property
    def complete(self) -> bool:
        return self.shortfall <= 0

    @property
    def cost(self) -> int:
        return sum(p.cost for p in self.parts)


def unit_price_for(offer: Offer, quantity: Decimal) -> int:
    """The offer's price for this quantity: the best tier the quantity reaches."""
    prices = [offer.unit_price] + [t.unit_price for t in offer.price_tiers if quantity >= t.min_quantity]
    return min(prices)


def capacity_by(
    capacity_per_week: Decimal,
    lead_time_days: int,
    days_available: int,
    committed: Decimal = Decimal(0),
) -> Decimal:
    """What a supplier can still deliver within `days_available` days (0 if its lead time is longer).

    Deliveries start after the lead time; the weeks left after it (at least one) times the weekly
    capacity, less what the supplier already owes on open orders.
    """
    delivery_days = days_available - lead_time_days
    if delivery_days < 0:
        return Decimal(0)
    weeks = max(Decimal(1), Decimal(delivery_days) / Decimal(7))
    return max(Decimal(0), capacity_per_week * weeks - committed)


def _price_component(price: int, cheapest: int, commodity: Commodity) -> tuple[float, str]:
    unit = commodity.unit
    ceiling = commodity.price_ceiling
    if ceiling is not None and price > ceiling:
        return 0.0, (
            f"Harga {format_rupiah(price)}/{unit} melebihi {commodity.ceiling_kind or 'HET'} "
            f"{format_rupiah(ceiling)}: tidak bisa dijual ulang sesuai ketentuan"
        )
    score = cheapest / price if price > 0 else 0.0
    if price == cheapest:
        text = f"Harga termurah: {format_rupiah(price)}/{unit}"
    else:
        dearer = round((price / cheapest - 1) * 100)
        text = f"Harga {format_rupiah(price)}/{unit}, {dearer}% di atas yang termurah"
    if ceiling is not None:
        margin = round((ceiling - price) / ceiling * 100)
        text += f" ({margin}% di bawah {commodity.ceiling_kind or 'HET'} {format_rupiah(ceiling)})"
    return score, text


def _fill_component(need: NeedSpec, offer: Offer) -> tuple[float, Decimal, bool, list[str]]:
    unit = need.commodity.unit
    days = need.days_available
    deadline = "tenggat" if need.needed_by is not None else f"{days} hari"
    on_time = offer.lead_time_days <= days
    if not on_time:
        return (
            0.0,
            Decimal(0),
            False,
            [f"Waktu kirim {offer.lead_time_days} hari melewati {deadline} ({days} hari lagi)"],
        )
    available = capacity_by(offer.capacity_per_week, offer.lead_time_days, days, offer.committed)
    can_fill = need.commodity.round_down(min(need.quantity, available))
    score = float(can_fill / need.quantity) if need.quantity > 0 else 0.0
    reasons = []
    if can_fill >= need.quantity:
        reasons.append(f"Sanggup memenuhi seluruh {format_quantity(need.quantity, unit)} sebelum {deadline}")
    else:
        text = (
            f"Hanya sanggup {format_quantity(can_fill, unit)} dari {format_quantity(need.quantity, unit)} "
            f"sebelum {deadline} (kapasitas {format_quantity(offer.capacity_per_week, unit)}/minggu"
        )
        if offer.committed > 0:
            text += f", {format_quantity(offer.committed, unit)} terikat pesanan lain"
        reasons.append(text + ")")
    if offer.min_order > need.quantity:
        score *= 0.5
        reasons.append(
            f"Pesanan minimum {format_quantity(offer.min_order, unit)} melebihi kebutuhan: "
            "gabungkan dengan kebutuhan koperasi lain"
        )
    return score, can_fill, True, reasons


def _speed_component(need: NeedSpec, offer: Offer) -> tuple[float, str]:
    days = need.days_available
    if offer.lead_time_days > days:
        return 0.0, f"Waktu kirim {offer.lead_time_days} hari: terlambat"
    score = 1.0 if days <= 0 else 1.0 - offer.lead_time_days / days
    return score, f"Waktu kirim {offer.lead_time_days} hari"


def _distance_component(need: NeedSpec, offer: Offer) -> tuple[float, float | None, str]:
    km = nearest_km(need.location, offer.points)
    if km is None:
        return 0.5, None, "Jarak tidak diketahui"
    area = "melayani kecamatan ini" if offer.serves(need.kecamatan_code) else "di luar wilayah layanannya"
    return 1.0 / (1.0 + km / DISTANCE_HALF_KM), km, f"Jarak {km:.1f} km".replace(".", ",") + f", {area}"


def _performance_component(perf: Performance | None) -> tuple[float, str]:
    if perf is None or perf.orders == 0:
        return 0.5, "Belum ada riwayat pengiriman (nilai netral)"
    return perf.score(), f"{perf.on_time} dari {perf.orders} pesanan terkirim tepat waktu"


def rank_suppliers(
    need: NeedSpec,
    offers: Sequence[Offer],
    performance: dict[str, Performance] | None = None,
    limit: int | None = None,
) -> list[Match]:
    """Score every offer for the need and return the matches best first, each with its reasons."""
    if not offers:
        return []
    performance = performance or {}
    prices = {o.supplier_id: unit_price_for(o, need.quantity) for o in offers}
    ceiling = need.commodity.price_ceiling
    # The yardstick is the cheapest offer a KKMP could legally resell; an offer above the HET is no benchmark.
    resellable = [p for p in prices.values() if ceiling is None or p <= ceiling]
    cheapest = min(resellable or prices.values())
    matches: list[Match] = []
    for offer in offers:
        price = prices[offer.supplier_id]
        price_score, price_reason = _price_component(price, cheapest, need.commodity)
        fill_score, can_fill, on_time, fill_reasons = _fill_component(need, offer)
        speed_score, speed_reason = _speed_component(need, offer)
        distance_score, km, distance_reason = _distance_component(need, offer)
        perf_score, perf_reason = _performance_component(performance.get(offer.supplier_id))
        components = {
            "price": round(price_score, 4),
            "fill": round(fill_score, 4),
            "distance": round(distance_score, 4),
            "speed": round(speed_score, 4),
            "performance": round(perf_score, 4),
        }
        score = round(sum(WEIGHTS[k] * v for k, v in components.items()), 4)
        matches.append(
            Match(
                supplier_id=offer.supplier_id,
                supplier_name=offer.supplier_name,
                score=score,
                unit_price=price,
                lead_time_days=offer.lead_time_days,
                can_fill_quantity=can_fill,
                distance_km=None if km is None else round(km, 2),
                on_time=on_time,
                components=components,
                reasons=[price_reason, *fill_reasons, speed_reason, distance_reason, perf_reason],
            )
        )
    matches.sort(key=lambda m: (-m.score, m.unit_price, m.supplier_name, m.supplier_id))
    return matches[:limit] if limit else matches


def propose_split(
    quantity: Decimal, matches: Sequence[Match], min_orders: dict[str, Decimal] | None = None
) -> Split | None:
    """Divide the quantity over ranked suppliers when none can fill it alone; None when one can.

    Suppliers are taken in rank order, each for what it can deliver in time; one whose minimum order
    exceeds what is left is passed over. A split has at least two parts; a shortfall remains when
    all of them together cannot fill the need.
    """
    min_orders = min_orders or {}
    if any(m.can_fill_quantity >= quantity for m in matches):
        return None
    remaining = quantity
    parts: list[SplitPart] = []
    for match in matches:
        if remaining <= 0:
            break
        take = min(remaining, match.can_fill_quantity)
        if take <= 0 or take < min_orders.get(match.supplier_id, Decimal(0)):
            continue
        parts.append(SplitPart(match.supplier_id, match.supplier_name, take, match.unit_price))
        remaining -= take
    if len(parts) < 2:
        return None
    return Split(parts=tuple(parts), quantity=quantity, shortfall=max(Decimal(0), remaining))


def due_date(needed_by: date | None, placed_on: date, lead_time_days: int) -> date:
    """When an order must be delivered to count as on time: the need's date, else placed + lead time."""
    return needed_by if needed_by is not None else placed_on + timedelta(days=lead_time_days + 1)
