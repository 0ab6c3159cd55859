"""UTC instants and time zones, written once: `as_utc`, the `UtcDateTime` column type and `zone()`.

Every instant the services store or compare is aware and in UTC. SQLite keeps no offset and hands
timestamps back naive; those are UTC by construction, so a naive value is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

from kkmp_shared.clock import WIB, WIT, WITA

__all__ = ["UTC", "WIB", "WIT", "WITA", "UtcDateTime", "as_utc", "zone"]


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
@overload
def as_utc(moment: datetime | None) -> datetime | None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """The same instant, aware and in UTC; a naive value is taken as UTC (how SQLite returns it)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


_FIXED = {"Asia/Jakarta": WIB, "Asia/Makassar": WITA, "Asia/Jayapura": WIT}


@lru_cache(maxsize=8)
def zone(name: str) -> tzinfo:
    """The named time zone; Indonesia's three as fixed offsets where the system has no zone database."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name in _FIXED:
            return _FIXED[name]
        raise


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back aware, in UTC, on SQLite and PostgreSQL alike.

    SQLite keeps no offset and compares timestamps as text: values are written naive in UTC, so that
    text order is time order, and tagged UTC again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value)
