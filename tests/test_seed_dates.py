"""The demo seed's dates on the days that trip calendars: the month's first hour, the evening of the due
date and the minute after it, New Year's Eve and the leap day, each as Surabaya (WIB) and UTC wall time.
The seed's report periods must agree with reporting's due rule, and nothing may be dated in the future.
(`tests/e2e/test_demo_seed.py` seeds the real city on whatever day it is run or pinned to.)"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from kkmp_cli.seed import (
    Coop,
    business_morning,
    commodities,
    coop_movements,
    plan_reports,
    report_periods,
)
from kkmp_shared import clock
from reporting.domain.periods import DueRule, Period

pytestmark = pytest.mark.unit

WALL = [
    (2027, 3, 1, 0, 30),
    (2027, 1, 10, 23, 59),
    (2027, 1, 11, 0, 0),
    (2027, 12, 31, 23, 30),
    (2028, 2, 28, 23, 30),
    (2028, 2, 29, 0, 30),
    (2028, 2, 29, 23, 30),
    (2028, 3, 10, 16, 59),  # the last minute of the 10th in WIB, still the 10th in UTC
]
INSTANTS = [datetime(*wall, tzinfo=zone) for wall in WALL for zone in (clock.WIB, UTC)]
DUE = DueRule()  # reporting's default: due on the 10th of the next month


def city(size: int = 153) -> list[Coop]:
    profiles = ["thriving"] * 84 + ["slowing"] * 38 + ["dormant"] * 20 + ["new"] * 11
    return [
        Coop(f"c{i}", f"KKMP {i}", "35.78.02.1004", "35.78.02", profiles[i], ["sembako"]) for i in range(size)
    ]


def first_day_after(period: str) -> date:
    return Period.parse(period).next_first_day


@pytest.mark.parametrize("now", INSTANTS, ids=lambda n: n.isoformat())
def test_report_periods_follow_reportings_due_rule(now: datetime) -> None:
    today = now.astimezone(clock.WIB).date()
    passed, open_period = report_periods(today)
    assert [str(Period.of(p)) for p in passed] == [str(p) for p in reversed(DUE.passed_periods(today, 3))]
    latest_due = DUE.due_date(Period.of(passed[-1]))
    assert latest_due < today
    if open_period is None:
        assert today.day > 10
    else:
        assert Period.of(open_period) == Period.of(today).shift(-1)
        assert not DUE.has_passed(Period.of(open_period), today)


@pytest.mark.parametrize("now", INSTANTS, ids=lambda n: n.isoformat())
def test_reports_are_never_late_before_due_nor_in_the_future(now: datetime) -> None:
    today = now.astimezone(clock.WIB).date()
    reports = plan_reports(city(), random.Random(20251128), now)
    latest = str(DUE.latest_passed(today))
    kinds: Counter[str] = Counter()
    for r in reports:
        period = Period.parse(r["period"])
        submitted = datetime.fromisoformat(r["submitted_at"])
        day = submitted.astimezone(clock.WIB).date()
        assert submitted <= now, r
        assert day >= first_day_after(r["period"]), r  # written once the month is over
        on_time = DUE.is_on_time(period, day)
        if not DUE.has_passed(period, today):
            assert on_time, f"late for {r['period']}, not yet due on {today}: {r}"
        if r["period"] == latest:
            kinds["on_time" if on_time else "late"] += 1
    kinds["missing"] = 153 - kinds["on_time"] - kinds["late"]
    assert all(kinds[k] > 0 for k in ("on_time", "late", "missing")), (latest, kinds)


@pytest.mark.parametrize("now", INSTANTS, ids=lambda n: n.isoformat())
def test_movements_span_ninety_days_up_to_now(now: datetime) -> None:
    with clock.pinned(now):
        today = business_morning()
        assert today <= now < today + timedelta(days=1)
        assert today.astimezone(clock.WIB).hour == 10
        coop = Coop("c", "KKMP", "35.78.02.1004", "35.78.02", "thriving", ["sembako"])
        moves = coop_movements(coop, ["beras_medium", "telur"], commodities(), random.Random(7), today)
        moments = [datetime.fromisoformat(m["occurred_at"]) for m in moves]
        assert max(moments) <= clock.now()
        assert timedelta(days=89) < now - min(moments) <= timedelta(days=92)
