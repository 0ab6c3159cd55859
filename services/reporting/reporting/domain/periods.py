"""Calendar rules of reporting: monthly periods, their due dates, local days and weeks.

Surabaya works in WIB (Asia/Jakarta, UTC+7): a sale at 23:30 UTC belongs to the next local day, and a
report sent at 00:30 local time on the 11th is late even though it is still the 10th in UTC. Every
day/week/period boundary here is therefore a local one; timestamps are stored in UTC.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from kkmp_shared.timeutil import as_utc, zone

# Years 1900-2099: a cooperative's month is never outside them, and year 0 or 9999 would put the
# period's bounds (and its due date a month later) outside what a date can hold.
PERIOD_PATTERN = r"^(19|20)\d{2}-(0[1-9]|1[0-2])$"
_PERIOD_RE = re.compile(PERIOD_PATTERN)

__all__ = ["as_utc", "zone"]  # re-exported: the services' UTC and zone helpers are kkmp_shared's


def local_date(moment: datetime, tz: tzinfo) -> date:
    return as_utc(moment).astimezone(tz).date()


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The UTC instant at which a local day starts."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def week_start(day: date) -> date:
    """Weeks start on Monday (ISO), as the department's weekly figures do."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True, order=True)
class Period:
    """A reporting month, written "YYYY-MM"."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        if not _PERIOD_RE.match(text):
            raise ValueError(f"{text!r} is not a period of the form YYYY-MM")
        return cls(int(text[:4]), int(text[5:7]))

    @classmethod
    def of(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_first_day(self) -> date:
        """The first day after the period (its exclusive end)."""
        return self.shift(1).first_day

    def shift(self, months: int) -> Period:
        index = self.year * 12 + (self.month - 1) + months
        return Period(index // 12, index % 12 + 1)

    def ends_at(self, tz: tzinfo) -> datetime:
        """The UTC instant the period ends (local midnight after its last day)."""
        return local_midnight(self.next_first_day, tz)


@dataclass(frozen=True)
class DueRule:
    """A period's report is due on `day` of the month `months_after` the period (e.g. the 10th of the
    following month); the day is clamped to the month's length. Who is expected to report: a
    cooperative that existed during the period (or reported anyway), and from `expected_from` on,
    every cooperative."""

    day: int = 10
    months_after: int = 1
    # From this period on every cooperative is expected to report, whenever it was registered (the
    # registry may learn of a cooperative after it began operating); None: from its registration.
    expected_from: Period | None = None

    def expects_everyone(self, period: Period) -> bool:
        return self.expected_from is not None and period >= self.expected_from

    def due_date(self, period: Period) -> date:
        target = period.shift(self.months_after)
        last = calendar.monthrange(target.year, target.month)[1]
        return date(target.year, target.month, min(self.day, last))

    def is_on_time(self, period: Period, submitted_on: date) -> bool:
        """On time means submitted on or before the due date (a local calendar day)."""
        return submitted_on <= self.due_date(period)

    def has_passed(self, period: Period, today: date) -> bool:
        """A due date has passed once the day after it has begun."""
        return today > self.due_date(period)

    def latest_passed(self, today: date) -> Period:
        """The most recent period whose due date has passed: the one timeliness is judged on."""
        period = Period.of(today)
        while not self.has_passed(period, today):
            period = period.shift(-1)
        return period

    def passed_periods(self, today: date, count: int) -> list[Period]:
        """The `count` most recent periods whose due date has passed, newest first."""
        latest = self.latest_passed(today)
        return [latest.shift(-i) for i in range(count)]
