"""pytest plugin: run the suite as if it were another day.

`pytest --clock-at 2028-02-29T23:30:00+07:00` (or `KKMP_TEST_CLOCK_AT`) pins business time
(`kkmp_shared.clock`) to that instant at the start of every test, and hands the same calendar to the
service processes a test starts (`KKMP_CLOCK_AT`). The clock ticks on from the instant, as a real one
would: a test that waits on a retry or a lease still sees time pass. `make test-clock` runs the tests
marked `clock` (those that depend on today's date) at the month, year and leap-day edges.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

import pytest
from kkmp_shared import clock

_INSTANT = pytest.StashKey[datetime | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-at",
        default=os.environ.get("KKMP_TEST_CLOCK_AT") or None,
        metavar="ISO",
        help="pin business time to this instant (with its zone) at the start of every test",
    )


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--clock-at")
    instant = clock.parse(value)[0] if value else None
    config.stash[_INSTANT] = instant
    if instant is not None:
        _pin(instant)  # for session fixtures, which start before any test's own pin


def pytest_report_header(config: pytest.Config) -> str | None:
    instant = config.stash.get(_INSTANT, None)
    if instant is None:
        return None
    return (
        f"business clock pinned at each test's start to {instant.isoformat()} (TZ={os.environ.get('TZ', '')})"
    )


@pytest.fixture(autouse=True)
def _pinned_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    instant = request.config.stash.get(_INSTANT, None)
    if instant is not None:
        _pin(instant)
    yield


def _pin(instant: datetime) -> None:
    clock.pin(instant)
    os.environ[clock.ENV] = clock.env_value()
