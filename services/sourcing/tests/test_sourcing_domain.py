"""Sourcing's pure rules: ranking with reasons, splits, the need lifecycle and its figures, the choice
of takers for stalled stock, and the division of deliveries. No I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sourcing.adapters.reference import load_reference
from sourcing.domain.commodities import Commodity, format_quantity, format_rupiah
from sourcing.domain.geo import Point, haversine_km
from sourcing.domain.matching import (
    NeedSpec,
    Offer,
    Performance,
    PriceTier,
    capacity_by,
    propose_split,
    rank_suppliers,
    unit_price_for,
)
from sourcing.domain.needs import IllegalStatusChange, NeedTimes, check_status_change, response_figures
from sourcing.domain.orders import IllegalOrderChange, LineOwed, check_order_change, split_delivery
from sourcing.domain.redistribution import (
    Taker,
    allocate_stalled_stock,
    member_uses,
    stalled_suggestions,
)

pytestmark = pytest.mark.unit

REF = load_reference()
BERAS = REF.commodities["beras_medium"]
LPG = REF.commodities["lpg_3kg"]
TELUR = REF.commodities["telur"]
TEPUNG = REF.commodities["tepung_terigu"]
TODAY = date(2026, 3, 2)
# Kelurahan Karang Pilang (35.78.01.1001) and points around Surabaya.
HERE = REF.kelurahan["35.78.01.1001"]


def offer(
    supplier: str,
    price: int,
    *,
    km_point: Point | None = None,
    capacity: str = "1000",
    lead: int = 2,
    min_order: str = "0",
    committed: str = "0",
    tiers: tuple[PriceTier, ...] = (),
) -> Offer:
    return Offer(
        supplier_id=supplier,
        supplier_name=supplier.title(),
        unit_price=price,
        min_order=Decimal(min_order),
        capacity_per_week=Decimal(capacity),
        lead_time_days=lead,
        price_tiers=tiers,
        points=(km_point,) if km_point else (),
        committed=Decimal(committed),
    )


def test_haversine_matches_known_distance() -> None:
    # Karang Pilang to Rungkut kecamatan points: about 13 km across the south of the city.
    km = haversine_km(REF.kecamatan["35.78.01"], REF.kecamatan["35.78.03"])
    assert 12.5 < km < 14.0
    assert haversine_km(HERE, HERE) == 0


def test_reference_data_is_complete() -> None:
    assert len(REF.commodities) == 19 and len(REF.kecamatan) == 31 and len(REF.kelurahan) == 153
    assert BERAS.price_ceiling == 13500 and BERAS.unit == "kg" and LPG.discrete
    assert TEPUNG.price_ceiling is None


def test_ranking_trades_price_against_distance_and_speed_with_reasons() -> None:
    """Cheap but far and slow, close but dearer, fast but dearest: each wins where it should."""
    far = Point(-7.25, 112.80)  # about 12 km away
    near = Point(HERE.lat + 0.005, HERE.lon)  # about half a km
    offers = [
        offer("cheap", 12000, km_point=far, lead=6),
        offer("close", 12600, km_point=near, lead=3),
        offer("fast", 13000, km_point=far, lead=0),
    ]
    need = NeedSpec(BERAS, Decimal(500), TODAY + timedelta(days=14), TODAY, HERE)
    ranked = rank_suppliers(need, offers)
    assert [m.supplier_id for m in ranked] == ["close", "cheap", "fast"]
    cheap = next(m for m in ranked if m.supplier_id == "cheap")
    assert cheap.components["price"] == 1.0 and cheap.reasons[0].startswith("Harga termurah: Rp12.000/kg")
    assert "11% di bawah HET Rp13.500" in cheap.reasons[0]
    close = ranked[0]
    assert close.distance_km is not None and close.distance_km < 1
    assert any("Jarak 0,6 km" in r for r in close.reasons)

    # Needed in 4 days: the slow cheap supplier would be late, the fast one now beats it.
    urgent = NeedSpec(BERAS, Decimal(500), TODAY + timedelta(days=4), TODAY, HERE)
    ranked = rank_suppliers(urgent, offers)
    order = [m.supplier_id for m in ranked]
    assert order.index("fast") < order.index("cheap")
    late = next(m for m in ranked if m.supplier_id == "cheap")
    assert late.can_fill_quantity == 0 and not late.on_time
    assert any("melewati tenggat" in r for r in late.reasons)


def test_price_above_het_scores_zero_and_says_why() -> None:
    need = NeedSpec(BERAS, Decimal(100), None, TODAY, HERE)
    ranked = rank_suppliers(need, [offer("ok", 13000), offer("over", 14000)])
    over = next(m for m in ranked if m.supplier_id == "over")
    assert over.components["price"] == 0.0
    assert "melebihi HET Rp13.500" in over.reasons[0]
    assert ranked[0].supplier_id == "ok"


def test_capacity_over_the_weeks_left_after_lead_time() -> None:
    assert capacity_by(Decimal(100), 2, 30) == Decimal(100) * Decimal(28) / Decimal(7)
    assert capacity_by(Decimal(100), 2, 5) == Decimal(100)  # at least one week's worth
    assert capacity_by(Decimal(100), 10, 5) == 0  # arrives too late
    assert capacity_by(Decimal(100), 0, 7, committed=Decimal(60)) == Decimal(40)


def test_track_record_and_min_order_move_the_score() -> None:
    need = NeedSpec(BERAS, Decimal(100), None, TODAY, HERE)
    offers = [offer("reliable", 12500), offer("unreliable", 12500)]
    perf = {"reliable": Performance(5, 5, 5.0), "unreliable": Performance(5, 1, 3.0)}
    ranked = rank_suppliers(need, offers, perf)
    assert [m.supplier_id for m in ranked] == ["reliable", "unreliable"]
    assert "5 dari 5 pesanan terkirim tepat waktu" in ranked[0].reasons[-1]
    big_minimum = rank_suppliers(need, [offer("bulk", 12500, min_order="1000")])[0]
    assert big_minimum.components["fill"] == 0.5
    assert any("Pesanan minimum 1.000 kg" in r for r in big_minimum.reasons)


def test_split_when_no_single_supplier_suffices() -> None:
    need = NeedSpec(BERAS, Decimal(1000), TODAY + timedelta(days=6), TODAY, HERE)
    offers = [
        offer("a", 12500, capacity="400"),
        offer("b", 12700, capacity="300"),
        offer("c", 12900, capacity="200"),
    ]
    ranked = rank_suppliers(need, offers)
    split = propose_split(need.quantity, ranked)
    assert split is not None
    assert [(p.supplier_id, p.quantity) for p in split.parts] == [
        ("a", Decimal(400)),
        ("b", Decimal(300)),
        ("c", Decimal(200)),
    ]
    assert split.shortfall == Decimal(100) and not split.complete
    assert split.cost == 400 * 12500 + 300 * 12700 + 200 * 12900
    # One supplier able to fill it alone: no split.
    assert propose_split(Decimal(300), rank_suppliers(need, offers)) is None


def test_price_tiers_reward_volume() -> None:
    o = offer("bulog", 12500, tiers=(PriceTier(Decimal(1000), 12000), PriceTier(Decimal(5000), 11800)))
    assert unit_price_for(o, Decimal(999)) == 12500
    assert unit_price_for(o, Decimal(1000)) == 12000
    assert unit_price_for(o, Decimal(6000)) == 11800


def test_need_lifecycle() -> None:
    check_status_change("open", "acknowledged")
    check_status_change("open", "in_progress")
    check_status_change("in_progress", "resolved")
    check_status_change("acknowledged", "rejected")
    for old, new in [
        ("open", "resolved"),
        ("resolved", "open"),
        ("rejected", "in_progress"),
        ("open", "open"),
    ]:
        with pytest.raises(IllegalStatusChange):
            check_status_change(old, new)


def test_response_figures() -> None:
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
    now = t0 + timedelta(days=3)
    rows = [
        NeedTimes("resolved", t0, t0 + timedelta(hours=2), t0 + timedelta(hours=30)),
        NeedTimes("in_progress", t0, t0 + timedelta(hours=10), None),
        NeedTimes("acknowledged", t0, t0 + timedelta(hours=40), None),
        NeedTimes("open", t0, None, None),  # 72 h unanswered: counts against the 24 h share
        NeedTimes("open", now - timedelta(hours=1), None, None),  # too young to judge
    ]
    f = response_figures(rows, now)
    assert f["open"] == 2 and f["answered"] == 3
    assert f["median_response_hours"] == 10.0
    assert f["avg_response_hours"] == round((2 + 10 + 40) / 3, 2)
    assert f["median_resolution_hours"] == 30.0
    assert f["answered_within_24h_share"] == 0.5  # 2 of the 4 that can be judged
    assert f["unanswered_over_24h"] == 1 and f["oldest_open_hours"] == 72.0


def taker(coop: str, code: str, reason: str = "open_need", need: str | None = None, **kw: object) -> Taker:
    return Taker(coop, code, code[:8], REF.kelurahan[code], reason, need, **kw)  # type: ignore[arg-type]


def test_stalled_stock_goes_to_the_nearest_cooperatives_that_need_it() -> None:
    origin = REF.kelurahan["35.78.01.1001"]
    takers = [
        taker("far", "35.78.03.1005", needed_quantity=Decimal(40)),
        taker("near", "35.78.01.1002", needed_quantity=Decimal(30)),
        taker("low", "35.78.01.1003", "low", on_hand=Decimal(5), avg_daily_sales=Decimal(2)),
    ]
    allocations = allocate_stalled_stock(
        Decimal(50), origin, takers, BERAS, from_cooperative_id="me", max_km=30, max_takers=5, target_days=14
    )
    assert next(a.taker.cooperative_id for a in allocations) == "near"
    by = {a.taker.cooperative_id: a.quantity for a in allocations}
    assert by["near"] == 30
    # The low-stock taker needs 14 days × 2 − 5 = 23 but only 20 are left.
    assert sum(by.values()) == 50
    distances = [a.distance_km for a in allocations]
    assert distances == sorted(distances)


def test_no_taker_beyond_the_distance_limit_or_itself() -> None:
    origin = REF.kelurahan["35.78.01.1001"]
    takers = [taker("me", "35.78.01.1002"), taker("far", "35.78.03.1005", needed_quantity=Decimal(5))]
    assert (
        allocate_stalled_stock(
            Decimal(10),
            origin,
            takers,
            BERAS,
            from_cooperative_id="me",
            max_km=3,
            max_takers=5,
            target_days=14,
        )
        == []
    )


def test_unknown_need_gets_an_equal_share_in_whole_pieces() -> None:
    origin = REF.kelurahan["35.78.01.1001"]
    takers = [taker("a", "35.78.01.1002", "stockout"), taker("b", "35.78.01.1003", "stockout")]
    allocations = allocate_stalled_stock(
        Decimal(7), origin, takers, LPG, from_cooperative_id="me", max_km=30, max_takers=5, target_days=14
    )
    assert sorted(a.quantity for a in allocations) == [Decimal(3), Decimal(3)]


def test_suggestions_for_stalled_stock_nobody_needs() -> None:
    assert member_uses("tepung_terigu", "Kuliner", ["kue basah", "donat"])
    assert not member_uses("tepung_terigu", "Jasa", ["laundry"])
    s = stalled_suggestions(
        TEPUNG, Decimal(40), 35, umkm_users=["Kue Bu Sri"], last_supplier="CV Sumber Rejeki"
    )
    codes = [x.code for x in s]
    assert codes == ["sell_to_umkm_members", "promotion", "return_to_supplier"]
    assert "Kue Bu Sri" in s[0].text and "CV Sumber Rejeki" in s[2].text
    perishable = stalled_suggestions(TELUR, Decimal(10), 9)
    assert "mudah rusak" in perishable[1].text and "HAP Rp30.000" in perishable[1].text
    assert "barang segar" in perishable[2].text


def test_order_lifecycle_and_delivery_split() -> None:
    check_order_change("placed", "confirmed")
    check_order_change("confirmed", "partially_delivered")
    with pytest.raises(IllegalOrderChange):
        check_order_change("placed", "delivered")
    with pytest.raises(IllegalOrderChange):
        check_order_change("delivered", "cancelled")
    lines = [LineOwed("l1", "a", Decimal(30)), LineOwed("l2", "b", Decimal(10))]
    assert split_delivery(lines, Decimal(20), BERAS) == [("l1", Decimal(15)), ("l2", Decimal(5))]
    assert split_delivery(lines, Decimal(100), BERAS) == [("l1", Decimal(30)), ("l2", Decimal(10))]
    tabung = [
        LineOwed("l1", "a", Decimal(10)),
        LineOwed("l2", "b", Decimal(10)),
        LineOwed("l3", "c", Decimal(10)),
    ]
    shares = split_delivery(tabung, Decimal(10), LPG)
    assert [q for _, q in shares] == [Decimal(3), Decimal(3), Decimal(4)]


def test_indonesian_formats() -> None:
    assert format_rupiah(13500) == "Rp13.500"
    assert format_quantity(Decimal("1250.50"), "kg") == "1.250,5 kg"
    assert Commodity("x", "X", "tabung").round_down(Decimal("2.7")) == 2
