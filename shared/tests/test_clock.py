"""The business clock: pinned, it ticks on from the instant; a process started with the pin shares it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from kkmp_shared import clock

pytestmark = [pytest.mark.unit, pytest.mark.clock]


@pytest.fixture
def restored() -> Iterator[None]:
    with clock.pinned(clock.now()):  # whatever the tests pin, the setting before them comes back
        yield


def test_a_pinned_clock_starts_at_the_instant_and_ticks_on(restored: None) -> None:
    instant = datetime(2028, 2, 29, 23, 30, tzinfo=clock.WIB)
    clock.pin(instant)
    first = clock.now()
    assert timedelta(0) <= first - instant < timedelta(seconds=1)
    assert first.tzinfo == UTC
    time.sleep(0.05)
    assert clock.now() - first >= timedelta(seconds=0.05)


def test_today_is_the_day_in_the_zone_asked_for(restored: None) -> None:
    # 00:30 on the 1st in Surabaya is still the last day of the month in UTC.
    clock.pin(datetime(2027, 3, 1, 0, 30, tzinfo=clock.WIB))
    assert clock.today(clock.WIB) == date(2027, 3, 1)
    assert clock.today(UTC) == date(2027, 2, 28)
    assert clock.today(clock.WIT) == date(2027, 3, 1)


def test_pinned_restores_the_clock_after_the_block() -> None:
    before = clock.offset()
    with clock.pinned(datetime(2030, 1, 1, tzinfo=UTC)):
        assert clock.now().year == 2030
    assert clock.offset() == before


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        clock.pin(datetime(2027, 1, 1))


@pytest.mark.parametrize("value", ["2027-01-10T23:59:00", "tomorrow", "2027-01-10T23:59:00+07:00@soon"])
def test_a_bad_environment_value_is_named(value: str) -> None:
    with pytest.raises(ValueError, match="KKMP_CLOCK_AT"):
        clock.parse(value)


def test_a_process_started_with_the_pin_shares_the_calendar(restored: None) -> None:
    clock.pin(datetime(2026, 12, 31, 23, 30, tzinfo=clock.WIB))
    env = {**os.environ, clock.ENV: clock.env_value()}
    time.sleep(0.2)  # the child must count from the pin, not from its own start
    child = subprocess.run(
        [sys.executable, "-c", "from kkmp_shared import clock; print(clock.now().isoformat())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    theirs, ours = datetime.fromisoformat(child.stdout.strip()), clock.now()
    assert abs(theirs - ours) < timedelta(seconds=0.5)
    assert theirs - datetime(2026, 12, 31, 23, 30, tzinfo=clock.WIB) >= timedelta(seconds=0.2)
