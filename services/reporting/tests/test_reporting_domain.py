"""Unit tests of reporting's pure rules: health score, calendar, stock episodes, needs, wiring."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from kkmp_shared.bootstrap import Platform
from kkmp_shared.db import Database
from kkmp_shared.events.contracts import EVENT_MODELS
from kkmp_shared.messaging.outbox import Outbox
from pydantic import ValidationError
from reporting.adapters import orm
from reporting.domain import health, needs, stock
from reporting.domain.periods import DueRule, Period, local_date, week_start, zone
from reporting.entrypoints.consumers import build_consumers
from reporting.service_layer.projections import Projector
from reporting.settings import ReportingSettings

pytestmark = [pytest.mark.unit, pytest.mark.clock]

WIB = zone("Asia/Jakarta")
POLICY = health.HealthPolicy()
# Every factor at its best: 12 sale days, no stalled stock, no unanswered need, 3 of 3 reports on time,
# 5 new members, 1 training.
BEST = health.HealthInputs(
    sale_days=12,
    sales_value=1_000_000,
    items_on_hand=4,
    reports_expected=3,
    reports_on_time=3,
    members_joined=5,
    member_count=40,
    trainings=1,
)


def with_(**changes: object) -> health.HealthInputs:
    return health.HealthInputs(**{**BEST.__dict__, **changes})  # type: ignore[arg-type]


# --- health score -------------------------------------------------------------------------------


def test_best_inputs_score_100_and_every_factor_is_explained() -> None:
    assessment = health.assess_health(BEST, POLICY)
    assert assessment.score == 100.0 and assessment.level == "aktif"
    assert [f.name for f in assessment.factors] == list(health.FACTORS)
    assert all(f.value == 1.0 and f.note for f in assessment.factors)
    assert sum(f.weight for f in assessment.factors) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("inputs", "score", "level"),
    [
        # no trading at all: 100 - 30 = 70.0, exactly the aktif threshold
        (with_(sale_days=0), 70.0, "aktif"),
        # no trading and one of three reports late: 70 - 6.67 = 63.3
        (with_(sale_days=0, reports_on_time=2, reports_late=1), 63.3, "kurang_aktif"),
        # 11 of 12 sale days and no new member: 100 - 2.5 - 10 = 87.5
        (with_(sale_days=11, members_joined=0), 87.5, "aktif"),
        # trading 0, members 0, training 0: 100 - 30 - 10 - 10 = 50
        (with_(sale_days=0, members_joined=0, trainings=0), 50.0, "kurang_aktif"),
        # ... and reports 1 of 3: 50 - 13.33 = 36.7
        (with_(sale_days=0, members_joined=0, trainings=0, reports_on_time=1), 36.7, "tidak_aktif"),
        # trading 0, reports 0 of 3, no member, training 1: 100 - 30 - 20 - 10 = 40.0, exactly kurang_aktif
        (with_(sale_days=0, reports_on_time=0, members_joined=0), 40.0, "kurang_aktif"),
        # the same with one of the three needs unanswered too: 40 - 3.33 = 36.7
        (with_(sale_days=0, reports_on_time=0, members_joined=0, unanswered_needs=1), 36.7, "tidak_aktif"),
    ],
)
def test_levels_at_and_around_their_boundaries(inputs: health.HealthInputs, score: float, level: str) -> None:
    assessment = health.assess_health(inputs, POLICY)
    assert assessment.score == score
    assert assessment.level == level


def test_level_thresholds_are_inclusive_lower_bounds() -> None:
    assert health.level_for_score(70.0, POLICY) == "aktif"
    assert health.level_for_score(69.9, POLICY) == "kurang_aktif"
    assert health.level_for_score(40.0, POLICY) == "kurang_aktif"
    assert health.level_for_score(39.9, POLICY) == "tidak_aktif"


def test_factor_values_and_notes_say_why() -> None:
    inputs = with_(
        sale_days=6,
        items_on_hand=4,
        items_stalled=1,
        stalled_value=170_000,
        unanswered_needs=2,
        reports_on_time=1,
        reports_late=1,
        members_joined=1,
        trainings=0,
    )
    factors = {f.name: f for f in health.assess_health(inputs, POLICY).factors}
    assert factors["trading_activity"].value == 0.5
    assert "6 dari 30 hari" in factors["trading_activity"].note
    assert factors["stalled_stock"].value == 0.75
    assert (
        "1 dari 4 komoditas" in factors["stalled_stock"].note and "Rp170.000" in factors["stalled_stock"].note
    )
    assert factors["unanswered_needs"].value == pytest.approx(0.3333)
    assert "2 kebutuhan" in factors["unanswered_needs"].note
    assert factors["reports_on_time"].value == pytest.approx(0.3333)
    assert "1 terlambat, 1 belum masuk" in factors["reports_on_time"].note
    assert factors["member_growth"].value == 0.2
    assert factors["training"].value == 0.0


def test_weights_and_thresholds_are_configuration() -> None:
    only_trading = health.HealthPolicy(weights={"trading_activity": 1.0}, aktif_min=50, kurang_aktif_min=25)
    assert health.assess_health(with_(sale_days=6), only_trading).score == 50.0
    assert health.assess_health(with_(sale_days=6), only_trading).level == "aktif"
    assert health.assess_health(with_(sale_days=3), only_trading).level == "kurang_aktif"
    assert health.assess_health(with_(sale_days=2), only_trading).level == "tidak_aktif"


def test_a_dissolved_cooperative_is_not_alive_whatever_its_figures() -> None:
    assessment = health.assess_health(with_(status="dissolved"), POLICY)
    assert assessment.score == 100.0 and assessment.level == "tidak_aktif"
    assert assessment.factors[-1].name == "status" and "dibubarkan" in assessment.factors[-1].note


@pytest.mark.parametrize(
    "policy",
    [
        {"weights": {"charm": 1.0}},
        {"weights": {"trading_activity": -1.0}},
        {"weights": {"trading_activity": 0.0}},
        {"aktif_min": 30, "kurang_aktif_min": 40},
        {"sale_days_target": 0},
    ],
)
def test_a_bad_policy_is_refused(policy: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        health.HealthPolicy(**policy)  # type: ignore[arg-type]


def test_settings_take_weights_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_WEIGHTS", '{"trading_activity": 0.5, "reports_on_time": 0.5}')
    monkeypatch.setenv("HEALTH_INTERVAL_S", "120")
    settings = ReportingSettings(demo=True)
    assert settings.health_policy().weight("trading_activity") == 0.5
    assert settings.health_policy().weight("training") == 0.0
    assert settings.health_interval_s == 120 and settings.port == 8004
    monkeypatch.setenv("HEALTH_WEIGHTS", '{"luck": 1}')
    with pytest.raises(ValidationError):
        ReportingSettings(demo=True)


# --- calendar -----------------------------------------------------------------------------------


def test_due_dates_follow_the_rule_and_clamp_to_the_month() -> None:
    rule = DueRule(day=10, months_after=1)
    assert rule.due_date(Period.parse("2025-10")) == date(2025, 11, 10)
    assert rule.due_date(Period.parse("2025-12")) == date(2026, 1, 10)
    assert DueRule(day=31).due_date(Period.parse("2026-01")) == date(2026, 2, 28)


def test_the_latest_passed_period_moves_the_day_after_the_due_date() -> None:
    rule = DueRule()
    assert rule.latest_passed(date(2025, 11, 10)) == Period(2025, 9)
    assert rule.latest_passed(date(2025, 11, 11)) == Period(2025, 10)
    assert rule.passed_periods(date(2026, 1, 11), 3) == [Period(2025, 12), Period(2025, 11), Period(2025, 10)]


def test_from_expected_from_on_every_cooperative_owes_its_report() -> None:
    rule = DueRule(expected_from=Period.parse("2025-08"))
    assert rule.expects_everyone(Period.parse("2025-08")) and rule.expects_everyone(Period.parse("2026-01"))
    assert not rule.expects_everyone(Period.parse("2025-07")) and not DueRule().expects_everyone(
        Period(2030, 1)
    )
    settings = ReportingSettings(demo=True, reports_expected_from="2025-08")
    assert settings.due_rule().expected_from == Period(2025, 8)
    with pytest.raises(ValidationError):
        ReportingSettings(demo=True, reports_expected_from="August")


def test_timeliness_is_judged_on_the_local_wib_day() -> None:
    rule = DueRule()
    period = Period.parse("2025-10")
    just_in_time = datetime(2025, 11, 10, 16, 59, tzinfo=UTC)  # 23:59 WIB on the 10th
    just_late = datetime(2025, 11, 10, 17, 30, tzinfo=UTC)  # 00:30 WIB on the 11th
    assert rule.is_on_time(period, local_date(just_in_time, WIB))
    assert not rule.is_on_time(period, local_date(just_late, WIB))


def test_periods_parse_strictly_and_weeks_start_on_monday() -> None:
    for bad in ("2025-13", "2025-1", "25-10", "2025-00"):
        with pytest.raises(ValueError):
            Period.parse(bad)
    assert str(Period.parse("2025-01").shift(-1)) == "2024-12"
    assert week_start(date(2025, 11, 30)) == date(2025, 11, 24)  # a Sunday belongs to Monday's week


# --- stock episodes -----------------------------------------------------------------------------

T0 = datetime(2025, 11, 1, tzinfo=UTC)
DETAILS = stock.StalledDetails(
    on_hand_milli=10_000, value=170_000, days_since_sale=20, last_sale_at=None, unit_cost=17_000
)


def test_a_stalled_episode_starts_refreshes_and_ends() -> None:
    item = stock.start_stalled(stock.StockItem(), T0, DETAILS, "kg")
    assert item.stalled and item.stalled_since == T0
    again = stock.start_stalled(item, T0 + timedelta(days=1), DETAILS, "kg")
    assert again.stalled_since == T0, "a repeat during the episode keeps its start"
    ended = stock.end_condition(again, "stalled", T0 + timedelta(days=2))
    assert not ended.stalled and ended.stalled_details is None


def test_a_stale_announcement_does_not_undo_a_newer_one() -> None:
    recovered = stock.end_condition(stock.StockItem(), "stalled", T0 + timedelta(days=2))
    late_start = stock.start_stalled(recovered, T0, DETAILS, "kg")
    assert late_start is recovered, "a stalled detected before the recovery is history"
    low = stock.start_condition(stock.StockItem(), "low", T0 + timedelta(days=3))
    assert stock.end_condition(low, "low", T0) is low


def test_the_newest_recording_sets_on_hand_and_sales_move_last_sale() -> None:
    item = stock.apply_movement(
        stock.StockItem(), unit="kg", on_hand_after_milli=5_000, recorded_at=T0, sold_at=T0
    )
    older = stock.apply_movement(
        item,
        unit="kg",
        on_hand_after_milli=9_000,
        recorded_at=T0 - timedelta(hours=1),
        sold_at=T0 - timedelta(days=3),
    )
    assert older.on_hand_milli == 5_000 and older.last_sale_at == T0


def test_quantities_are_exact_thousandths() -> None:
    assert stock.to_milli(Decimal("2.5")) == 2500
    assert stock.to_milli("0.0005") == 0 and stock.to_milli("0.0015") == 2  # half-even
    assert stock.from_milli(100_000) == Decimal("100.000")
    assert stock.days_since_sale_now(20, T0, T0 + timedelta(days=3, hours=5)) == 23


# --- needs --------------------------------------------------------------------------------------


def test_response_time_is_the_first_change_away_from_open_whatever_the_order() -> None:
    submitted = T0
    state = needs.status_changed(
        None, new_status="in_progress", changed_at=T0 + timedelta(hours=5), submitted_at=submitted
    )
    state = needs.status_changed(
        state, new_status="acknowledged", changed_at=T0 + timedelta(hours=2), submitted_at=submitted
    )
    state = needs.submitted(state, submitted)
    assert state.status == "in_progress", "the newest change sets the status"
    assert state.response_seconds == 2 * 3600
    closed = needs.status_changed(
        state, new_status="resolved", changed_at=T0 + timedelta(days=1), submitted_at=submitted
    )
    assert closed.closed_at == T0 + timedelta(days=1) and closed.response_seconds == 2 * 3600


def test_median_is_the_mean_of_the_middle_pair_for_even_counts() -> None:
    assert needs.median([]) is None
    assert needs.median([3]) == 3.0
    assert needs.median([10, 1, 6, 2]) == 4.0
    assert needs.seconds_to_hours(19_800) == 5.5


# --- wiring -------------------------------------------------------------------------------------


def test_every_contract_event_type_is_consumed_exactly_once_on_a_reporting_queue() -> None:
    outbox = Outbox(orm.messaging, source="/reporting")
    platform = Platform(ReportingSettings(demo=True), orm.messaging, Database("sqlite+aiosqlite://"), outbox)
    group = build_consumers(platform, Projector(WIB))
    bound = [t for types in group.queues().values() for t in types]
    assert sorted(bound) == sorted(EVENT_MODELS)
    assert all(queue.startswith("reporting.") for queue in group.queues())
    # Ordered pairs share one queue (one worker, in order).
    queue_of = {t: q for q, types in group.queues().items() for t in types}
    assert queue_of["stock.stalled.v1"] == queue_of["stock.recovered.v1"] == queue_of["stock.moved.v1"]
    assert queue_of["need.submitted.v1"] == queue_of["need.status_changed.v1"]
    assert queue_of["cooperative.registered.v1"] == queue_of["member.joined.v1"]
