"""Business time: the one clock that every service, consumer, scheduler and domain rule reads.

`now()` is an aware UTC datetime and `today(tz)` the calendar day in a zone; production code never asks
the system for business time itself (`tests/test_clock_discipline.py` keeps it so). Timeouts and
durations use `time.monotonic()`; token lifetimes, which other parties check against their own clocks,
use `system_seconds()`, and so do leases that replicas on other machines compare.

The clock can be set ahead or back, and then ticks on from there: a test pins it with `pinned()`, and a
process inherits a pin through `KKMP_CLOCK_AT=<ISO instant>[@<unix seconds>]`: business time was that
instant at that system time (at the process's start when no system time is given). Every process
started with the same value shares one calendar.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

ENV = "KKMP_CLOCK_AT"

# Indonesia's three zones keep no daylight saving, so fixed offsets are exact.
WIB = timezone(timedelta(hours=7), "WIB")  # Western: Java (Surabaya), Sumatra
WITA = timezone(timedelta(hours=8), "WITA")
WIT = timezone(timedelta(hours=9), "WIT")  # Eastern: the first Indonesian day to begin

_offset = timedelta(0)  # business time minus system time


def now() -> datetime:
    """The current business time, aware, in UTC."""
    moment = datetime.now(UTC)
    return moment + _offset if _offset else moment


def today(tz: tzinfo) -> date:
    """The calendar day it is now in `tz` (Surabaya's day starts 7 hours before UTC's)."""
    return now().astimezone(tz).date()


def system_seconds() -> float:
    """The system's own time, unshifted: token lifetimes and leases, which others check by their clocks."""
    return time.time()


def offset() -> timedelta:
    return _offset


def pin(instant: datetime, *, at: float | None = None) -> None:
    """Make business time `instant` at system time `at` (now when omitted); it ticks on from there."""
    global _offset
    if instant.tzinfo is None:
        raise ValueError("the clock is pinned to an aware datetime (with its zone)")
    reference = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    _offset = instant.astimezone(UTC) - reference


def reset() -> None:
    global _offset
    _offset = timedelta(0)


@contextmanager
def pinned(instant: datetime) -> Iterator[None]:
    """Business time starts at `instant` inside the block; the previous setting is restored after it."""
    global _offset
    previous = _offset
    pin(instant)
    try:
        yield
    finally:
        _offset = previous


def env_value() -> str:
    """The `KKMP_CLOCK_AT` value that gives a process started now this process's business time."""
    system = time.time()
    return f"{(datetime.fromtimestamp(system, UTC) + _offset).isoformat()}@{system:.6f}"


def parse(value: str) -> tuple[datetime, float | None]:
    """`<ISO instant>[@<unix seconds>]` as (instant, system time); the instant must carry its zone."""
    text, _, at = value.strip().partition("@")
    try:
        instant = datetime.fromisoformat(text)
        system = float(at) if at else None
    except ValueError as exc:
        raise ValueError(f"{ENV}={value!r}: expected an ISO 8601 instant, optionally @unix seconds") from exc
    if instant.tzinfo is None:
        raise ValueError(f"{ENV}={value!r}: the instant needs its zone (e.g. +07:00 or Z)")
    return instant, system


def _from_environment() -> None:
    value = os.environ.get(ENV)
    if value:
        instant, system = parse(value)
        pin(instant, at=system)


_from_environment()
