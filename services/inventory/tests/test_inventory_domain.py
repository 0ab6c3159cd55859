"""Unit tests of the inventory's pure rules: the ledger, detection, the catalogue, and request validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from inventory.domain.catalogue import (
    CATALOGUE_EPOCH,
    CeilingPeriod,
    ceiling_at,
    ceiling_excess,
    initial_ceilings,
    read_catalogue,
    read_ceiling_history,
)
from inventory.domain.detection import (
    Thresholds,
    classify_stock,
    days_of_cover,
    episode_change,
    is_stalled,
    sales_window,
)
from inventory.domain.ledger import (
    InsufficientStock,
    MovementDraft,
    StockState,
    apply_movement,
    from_milli,
    to_milli,
)
from inventory.entrypoints.schemas import MovementBatchIn, MovementIn
from inventory.service_layer.catalogue import CEILING_HISTORY
from inventory_testkit import known_cooperative
from kkmp_shared import clock, refdata
from pydantic import ValidationError

pytestmark = [pytest.mark.unit, pytest.mark.clock]

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
D = Decimal
REPO_DATA = refdata.directory()


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def move(kind: str, quantity: str, at: datetime = NOW, **kw: object) -> MovementDraft:
    return MovementDraft(commodity="beras_medium", kind=kind, quantity=D(quantity), occurred_at=at, **kw)  # type: ignore[arg-type]


def fresh() -> StockState:
    return StockState(cooperative_id="c1", commodity="beras_medium")


# --- ledger -----------------------------------------------------------------------------------------


def test_receipts_and_sales_keep_average_cost_and_on_hand() -> None:
    state = fresh()
    apply_movement(state, move("receipt", "100", days_ago(10), unit_price=12000), None)
    apply_movement(state, move("receipt", "100", days_ago(5), unit_price=13000), None)
    assert state.on_hand == D("200") and state.stock_value == 2_500_000 and state.unit_cost == 12500
    sale = apply_movement(state, move("sale", "50", days_ago(1), unit_price=14000), None)
    assert sale.delta == D("-50") and sale.on_hand_after == D("150")
    assert sale.value == 700_000  # a sale's value is its takings
    assert sale.unit_cost == 12500 and state.stock_value == 1_875_000
    assert state.last_sale_at == days_ago(1)


def test_outflow_beyond_on_hand_is_refused_and_changes_nothing() -> None:
    state = fresh()
    apply_movement(state, move("receipt", "2.5"), None)
    with pytest.raises(InsufficientStock) as refused:
        apply_movement(state, move("sale", "2.501"), None)
    assert refused.value.on_hand == D("2.5") and refused.value.requested == D("2.501")
    assert state.on_hand == D("2.5")


def test_adjustment_is_signed() -> None:
    state = fresh()
    apply_movement(state, move("receipt", "10", unit_price=1000), None)
    down = apply_movement(state, move("adjustment", "3", decrease=True, reason="counted"), None)
    up = apply_movement(state, move("adjustment", "1", reason="found"), None)
    assert down.delta == D("-3") and up.delta == D("1") and state.on_hand == D("8")
    assert state.stock_value == 8000  # the found unit is valued at the average cost


def test_stock_reaching_zero_clears_value_and_stall_clock() -> None:
    state = fresh()
    apply_movement(state, move("receipt", "3", days_ago(3), unit_price=1001), None)
    apply_movement(state, move("spoilage", "1", days_ago(2)), None)
    apply_movement(state, move("sale", "2", days_ago(1)), None)
    assert state.on_hand == 0 and state.stock_value == 0 and state.stall_clock_at is None
    assert state.lots == [] and state.last_unit_cost == 1001


def test_stall_clock_counts_from_oldest_lot_still_on_hand_when_never_sold() -> None:
    state = fresh()
    apply_movement(state, move("receipt", "5", days_ago(30)), 1000)
    apply_movement(state, move("receipt", "5", days_ago(3)), 1000)
    assert state.stall_clock_at == days_ago(30)
    apply_movement(state, move("spoilage", "5", days_ago(1)), None)  # the old lot goes first (FIFO)
    assert state.stall_clock_at == days_ago(3)


def test_stall_clock_is_the_later_of_last_sale_transfer_out_and_oldest_lot() -> None:
    state = fresh()
    apply_movement(state, move("receipt", "10", days_ago(30)), 1000)
    apply_movement(state, move("sale", "3", days_ago(15)), None)
    assert state.stall_clock_at == days_ago(15)
    apply_movement(state, move("transfer_out", "2", days_ago(5)), None)
    assert state.stall_clock_at == days_ago(5)
    restocked = fresh()
    apply_movement(restocked, move("receipt", "1", days_ago(100)), 1000)
    apply_movement(restocked, move("sale", "1", days_ago(90)), None)
    apply_movement(restocked, move("receipt", "5", days_ago(2)), 1000)
    assert restocked.stall_clock_at == days_ago(2)  # stock that arrived after the last sale


def test_transfer_in_takes_the_senders_value() -> None:
    state = fresh()
    applied = apply_movement(state, move("transfer_in", "4", value_override=50_000), 9_999)
    assert applied.value == 50_000 and state.stock_value == 50_000 and state.unit_cost == 12500


def test_receipt_without_price_falls_back_to_average_then_typical_price() -> None:
    state = fresh()
    apply_movement(state, move("receipt", "2"), 13_100)
    assert state.stock_value == 26_200
    apply_movement(state, move("receipt", "2", unit_price=12_000), None)
    apply_movement(state, move("receipt", "1"), 13_100)
    assert state.stock_value == 26_200 + 24_000 + 12_550


def test_milli_round_trip() -> None:
    assert to_milli(D("1.234")) == 1234 and from_milli(1234) == D("1.234")
    assert to_milli(D("0.001")) == 1 and from_milli(0) == D("0.000")


# --- detection --------------------------------------------------------------------------------------

STANDARD = Thresholds(stall_days=14, low_cover_days=7)


@pytest.mark.parametrize(
    ("clock_days_ago", "stalled"),
    [(13, False), (14, False), (14.01, True), (15, True)],
)
def test_stall_rule_boundary(clock_days_ago: float, stalled: bool) -> None:
    assert is_stalled(D("5"), days_ago(clock_days_ago), NOW, 14) is stalled
    condition = classify_stock(D("5"), days_ago(clock_days_ago), D("0"), NOW, STANDARD)
    assert (condition == "stalled") is stalled


def test_never_sold_partly_sold_and_sold_today() -> None:
    never = fresh()
    apply_movement(never, move("receipt", "10", days_ago(15)), 1000)
    partly = fresh()
    apply_movement(partly, move("receipt", "10", days_ago(30)), 1000)
    apply_movement(partly, move("sale", "3", days_ago(15)), None)
    partly_recent = fresh()
    apply_movement(partly_recent, move("receipt", "10", days_ago(30)), 1000)
    apply_movement(partly_recent, move("sale", "3", days_ago(13)), None)
    today = fresh()
    apply_movement(today, move("receipt", "10", days_ago(30)), 1000)
    apply_movement(today, move("sale", "1", NOW), None)
    verdicts = {
        name: classify_stock(s.on_hand, s.stall_clock_at, D("3") if s.last_sale_at else D("0"), NOW, STANDARD)
        for name, s in {"never": never, "partly": partly, "recent": partly_recent, "today": today}.items()
    }
    assert verdicts == {"never": "stalled", "partly": "stalled", "recent": None, "today": None}


def test_low_and_stockout_by_days_of_cover() -> None:
    # 56 sold in 28 days = 2 a day: 13 on hand is 6.5 days of cover (low), 14 is 7 days (not low).
    assert classify_stock(D("13"), NOW, D("56"), NOW, STANDARD) == "low"
    assert classify_stock(D("14"), NOW, D("56"), NOW, STANDARD) is None
    assert days_of_cover(D("13"), D("56")) == D("6.5")
    assert classify_stock(D("0"), None, D("56"), NOW, STANDARD) == "stockout"
    assert classify_stock(D("0"), None, D("0"), NOW, STANDARD) is None  # nothing sold lately: dormant
    assert classify_stock(D("5"), NOW, D("0"), NOW, STANDARD) is None  # no pace, no cover figure
    assert days_of_cover(D("5"), D("0")) is None


def test_stalled_is_not_also_low() -> None:
    # Sold 20 days ago (inside the 28-day window), little left: stalled wins, the episodes never overlap.
    assert classify_stock(D("1"), days_ago(20), D("100"), NOW, STANDARD) == "stalled"


def test_episode_changes_are_announced_once() -> None:
    assert not episode_change("stalled", "stalled").changed
    assert not episode_change(None, None).changed
    start = episode_change(None, "low")
    assert (start.ended, start.started) == (None, "low")
    swap = episode_change("low", "stockout")
    assert (swap.ended, swap.started) == ("low", "stockout")
    end = episode_change("stalled", None)
    assert (end.ended, end.started) == ("stalled", None)


def test_sales_window_is_28_days_including_today() -> None:
    first, last = sales_window(NOW)
    assert last == NOW.date() and (last - first).days == 27


# --- catalogue --------------------------------------------------------------------------------------


def test_catalogue_seed_has_the_staples_with_their_ceilings() -> None:
    entries = {e.code: e for e in read_catalogue(REPO_DATA / "commodities.csv")}
    assert len(entries) == 19
    for code in ("beras_medium", "beras_premium", "beras_sphp", "lpg_3kg", "minyakita", "gula", "telur"):
        assert entries[code].price_ceiling is not None and entries[code].ceiling_kind in ("HET", "HAP")
    assert (entries["beras_medium"].price_ceiling, entries["beras_medium"].ceiling_kind) == (13500, "HET")
    assert (entries["gula"].price_ceiling, entries["gula"].ceiling_kind) == (17500, "HAP")
    assert entries["tepung_terigu"].price_ceiling is None and entries["tepung_terigu"].ceiling_kind is None
    assert entries["daging_ayam"].unit == "kg" and entries["lpg_3kg"].unit == "tabung"
    assert entries["telur"].stall_days == 7 and entries["beras_medium"].low_cover_days == 7


def test_ceiling_history_agrees_with_the_catalogue() -> None:
    entries = {e.code: e for e in read_catalogue(REPO_DATA / "commodities.csv")}
    history = read_ceiling_history(CEILING_HISTORY)
    for code, periods in history.items():
        seeded = initial_ceilings(entries[code], periods)
        assert seeded[-1].price_ceiling == entries[code].price_ceiling, code
    medium = initial_ceilings(entries["beras_medium"], history["beras_medium"])
    assert ceiling_at(medium, datetime(2025, 8, 21, tzinfo=UTC)).price_ceiling == 12500  # type: ignore[union-attr]
    assert ceiling_at(medium, datetime(2025, 8, 22, tzinfo=UTC)).price_ceiling == 13500  # type: ignore[union-attr]
    assert ceiling_at(medium, datetime(2020, 1, 1, tzinfo=UTC)) is None
    telur = initial_ceilings(entries["telur"], [])
    assert telur == [CeilingPeriod(30000, "HAP", entries["telur"].legal_basis, CATALOGUE_EPOCH)]


def test_ceiling_excess() -> None:
    assert ceiling_excess(14_000, 13_500) == 500
    assert ceiling_excess(13_500, 13_500) is None
    assert ceiling_excess(20_000, None) is None and ceiling_excess(None, 13_500) is None


# --- request validation -----------------------------------------------------------------------------


def _fields(error: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in error.errors()}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"commodity": "gula", "kind": "sale", "quantity": 0}, "quantity"),
        ({"commodity": "gula", "kind": "sale", "quantity": -1}, "quantity"),
        ({"commodity": "gula", "kind": "receipt", "quantity": "1.0001"}, "quantity"),
        ({"commodity": "gula", "kind": "receipt", "quantity": "NaN"}, "quantity"),
        ({"commodity": "gula", "kind": "gift", "quantity": 1}, "kind"),
        ({"commodity": "Gula!", "kind": "sale", "quantity": 1}, "commodity"),
        ({"commodity": "gula", "kind": "sale", "quantity": 1, "unit_price": 1.5}, "unit_price"),
        ({"commodity": "gula", "kind": "sale", "quantity": 1, "unit_price": -1}, "unit_price"),
        ({"commodity": "gula", "kind": "sale", "quantity": 1, "quantiy": 1}, "quantiy"),
        ({"commodity": "gula", "kind": "adjustment", "quantity": -1}, "reason"),
        ({"commodity": "gula", "kind": "sale", "quantity": 1, "direction": "decrease"}, "direction"),
        (
            {"commodity": "gula", "kind": "sale", "quantity": 1, "occurred_at": "2999-01-01T00:00:00Z"},
            "occurred_at",
        ),
    ],
)
def test_bad_movements_name_their_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as invalid:
        MovementIn.model_validate(body)
    assert field in _fields(invalid.value)


def test_valid_movements() -> None:
    skewed = (clock.now() + timedelta(minutes=2)).isoformat()
    sale = MovementIn.model_validate(
        {"commodity": "gula", "kind": "sale", "quantity": "2.5", "occurred_at": skewed}
    )
    assert sale.quantity == D("2.5") and not sale.decrease
    down = MovementIn.model_validate(
        {"commodity": "gula", "kind": "adjustment", "quantity": -2, "reason": "stock take"}
    )
    also_down = MovementIn.model_validate(
        {"commodity": "gula", "kind": "adjustment", "quantity": 2, "direction": "decrease", "reason": "x"}
    )
    assert down.decrease and also_down.decrease


def test_batch_is_limited_to_1000() -> None:
    one = {"commodity": "gula", "kind": "receipt", "quantity": 1}
    assert len(MovementBatchIn.model_validate({"movements": [one] * 1000}).movements) == 1000
    with pytest.raises(ValidationError) as too_many:
        MovementBatchIn.model_validate({"movements": [one] * 1001})
    assert "movements" in _fields(too_many.value)


# --- incremental detection (the service layer's pure part) -----------------------------------------


def _coop() -> object:
    return known_cooperative("c1", "35.78.06", "KKMP Mojo")


def _info() -> object:
    from inventory.adapters.repository import CommodityInfo

    return CommodityInfo(
        code="beras_medium",
        name="Beras medium",
        unit="kg",
        stall_days=14,
        low_cover_days=7,
        typical_price=13100,
        active=True,
        created_at=NOW,
        updated_at=NOW,
    )


def test_incremental_detection_announces_a_new_episode_once() -> None:
    from inventory.service_layer.movements import evaluate_items

    state = fresh()
    apply_movement(state, move("receipt", "100", days_ago(10), unit_price=12000), None)
    apply_movement(state, move("sale", "90", NOW), None)
    state.sold_in_window = D("90")
    states = {("c1", "beras_medium"): state}
    catalogue = {"beras_medium": _info()}
    [low] = evaluate_items(states, catalogue, {"c1": _coop()}, NOW)  # type: ignore[arg-type]
    assert low.event_type == "stock.low.v1" and state.condition == "low" and state.condition_since == NOW
    assert low.kecamatan_code == "35.78.06" and low.days_of_cover == D("3.11")  # type: ignore[attr-defined]
    assert evaluate_items(states, catalogue, {"c1": _coop()}, NOW) == []  # type: ignore[arg-type]
    apply_movement(state, move("sale", "10", NOW), None)
    state.sold_in_window = D("100")
    ended, started = evaluate_items(states, catalogue, {"c1": _coop()}, NOW)  # type: ignore[arg-type]
    assert (ended.event_type, ended.condition) == ("stock.recovered.v1", "low")  # type: ignore[attr-defined]
    assert started.event_type == "stock.stockout.v1" and state.condition == "stockout"


def test_stalled_announcement_carries_the_contract_fields() -> None:
    from inventory.domain.detection import EpisodeChange
    from inventory.service_layer.announcements import ItemSnapshot, episode_events

    item = ItemSnapshot(
        cooperative_id="c1",
        kelurahan_code="35.78.06.1001",
        kecamatan_code="35.78.06",
        commodity="gula",
        unit="kg",
        on_hand=D("40"),
        stock_value=600_000,
        last_unit_cost=15_000,
        last_sale_at=days_ago(20),
        stall_clock_at=days_ago(20),
        sold_in_window=D("5"),
        stall_days=14,
        low_cover_days=7,
    )
    [event] = episode_events(item, EpisodeChange(ended=None, started="stalled"), NOW)
    data = event.model_dump(mode="json")
    assert {
        "cooperative_id",
        "kelurahan_code",
        "kecamatan_code",
        "commodity",
        "on_hand",
        "unit",
        "last_sale_at",
        "days_since_sale",
        "value",
        "detected_at",
    } <= set(data)
    assert data["days_since_sale"] == 20 and data["value"] == 600_000 and data["unit_cost"] == 15_000
