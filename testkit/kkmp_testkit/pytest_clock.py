"""pytest plugin: run the suite as if it were another day.

`pytest --clock-at 2028-02-29T23:30:00+07:00` (or `KKMP_TEST_CLOCK_AT`) pins business time
(`kkmp_shared.clock`) to that instant when the session starts, and hands the same calendar to the
service processes the tests start (`KKMP_CLOCK_AT`). The clock ticks on from the instant, as a real one
would, and never goes back: services that live through the session (in-process or as processes) keep
state in time order, as they do in production. A run's tests so see the instant and the minutes after
it; `make test-clock` pins both sides of each edge (the 10th 23:59 and the 11th 00:00) for that reason.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from kkmp_shared import clock

_INSTANT = pytest.StashKey[datetime | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-at",
        default=os.environ.get("KKMP_TEST_CLOCK_AT") or None,
        metavar="ISO",
        help="pin business time to this instant (with its zone) when the session starts",
    )


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--clock-at")
    instant = clock.parse(value)[0] if value else None
    config.stash[_INSTANT] = instant
    if instant is not None:
        _pin(instant)


def pytest_report_header(config: pytest.Config) -> str | None:
    instant = config.stash.get(_INSTANT, None)
    if instant is None:
        return None
    zone = os.environ.get("TZ", "")
    return f"business clock pinned at the session's start to {instant.isoformat()} (TZ={zone})"


def _pin(instant: datetime) -> None:
    clock.pin(instant)
    os.environ[clock.ENV] = clock.env_value()
