"""The repeat window (`alert_windows`): whether a condition was announced too recently to be
announced again, decided atomically so that two replicas cannot both announce it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kkmp_shared.db import array_rows, on_sqlite, upsert_insert
from sqlalchemy import DateTime, Interval, String, bindparam, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm


@dataclass(frozen=True)
class WindowClaim:
    key: str
    event_type: str
    data: Mapping[str, Any]
    event_id: str
    occurred: datetime  # event time


def _claim_windows_statement() -> Any:
    """PostgreSQL: the first claim of each condition in a batch, decided by one upsert whose rows come
    as arrays (`array_rows`: one statement text whatever the batch's size)."""
    w = orm.alert_windows
    rows = array_rows(
        condition_key=String,
        event_type=String,
        cooperative_id=String,
        last_event_id=String,
        last_notified_at=DateTime(timezone=True),
    )
    statement = pg_insert(w).from_select(
        ["condition_key", "event_type", "cooperative_id", "last_event_id", "last_notified_at", "suppressed"],
        select(*rows.c, literal_column("0")),
    )
    return statement.on_conflict_do_update(
        index_elements=[w.c.condition_key],
        set_={
            "last_event_id": statement.excluded.last_event_id,
            "last_notified_at": statement.excluded.last_notified_at,
        },
        where=w.c.last_notified_at
        <= statement.excluded.last_notified_at - bindparam("window", type_=Interval),
    ).returning(w.c.condition_key)


def _count_suppressed_statement() -> Any:
    """PostgreSQL: the conditions of a batch announced within their window count one more suppression,
    each at its own event's time (arrays again)."""
    w = orm.alert_windows
    lost = array_rows(condition_key=String, occurred=DateTime(timezone=True))
    return (
        update(w)
        .where(w.c.condition_key == lost.c.condition_key)
        .values(suppressed=w.c.suppressed + 1, last_suppressed_at=lost.c.occurred)
    )


_CLAIM_WINDOWS = _claim_windows_statement()
_COUNT_SUPPRESSED = _count_suppressed_statement()


async def claim_windows(session: AsyncSession, claims: Sequence[WindowClaim], window_s: int) -> list[bool]:
    """`claim_window` for each claim, in order: True where the event may be announced.

    On PostgreSQL the first claim of each condition is decided for the whole batch by one upsert (per
    row as atomic as one claim); a condition claimed again in the same batch is decided after it, one
    by one, which keeps the order's effect. SQLite (the embedded single-process mode) claims one by
    one: its upsert cannot compute each row's window bound from the inserted row."""
    allowed = [False] * len(claims)
    first: dict[str, int] = {}
    again: list[int] = []
    for index, claim in enumerate(claims):
        if claim.key in first:
            again.append(index)
        else:
            first[claim.key] = index
    if not on_sqlite(session) and len(first) > 1:
        ordered = sorted(first.values())
        won = set(
            (
                await session.execute(
                    _CLAIM_WINDOWS,
                    {
                        "condition_key": [claims[i].key for i in ordered],
                        "event_type": [claims[i].event_type for i in ordered],
                        "cooperative_id": [claims[i].data.get("cooperative_id") for i in ordered],
                        "last_event_id": [claims[i].event_id for i in ordered],
                        "last_notified_at": [claims[i].occurred for i in ordered],
                        "window": timedelta(seconds=window_s),
                    },
                )
            ).scalars()
        )
        lost = [i for i in ordered if claims[i].key not in won]
        for i in ordered:
            allowed[i] = claims[i].key in won
        if lost:
            await session.execute(
                _COUNT_SUPPRESSED,
                {
                    "condition_key": [claims[i].key for i in lost],
                    "occurred": [claims[i].occurred for i in lost],
                },
            )
    else:
        again = sorted([*first.values(), *again])
    for i in again:
        c = claims[i]
        allowed[i] = await claim_window(
            session, c.key, c.event_type, c.data, c.event_id, c.occurred, window_s
        )
    return allowed


async def claim_window(
    session: AsyncSession,
    key: str,
    event_type: str,
    data: Mapping[str, Any],
    event_id: str,
    occurred: datetime,
    window_s: int,
) -> bool:
    """True if this event may be announced: its condition was not announced within the window.
    One atomic upsert decides, so two replicas cannot both announce the same condition."""
    w = orm.alert_windows
    statement: Any = upsert_insert(session)(w).values(
        condition_key=key,
        event_type=event_type,
        cooperative_id=data.get("cooperative_id"),
        last_event_id=event_id,
        last_notified_at=occurred,
        suppressed=0,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[w.c.condition_key],
        set_={
            "last_event_id": statement.excluded.last_event_id,
            "last_notified_at": statement.excluded.last_notified_at,
        },
        where=w.c.last_notified_at <= occurred - timedelta(seconds=window_s),
    ).returning(w.c.condition_key)
    if (await session.execute(statement)).first() is not None:
        return True
    await session.execute(
        update(w)
        .where(w.c.condition_key == key)
        .values(suppressed=w.c.suppressed + 1, last_suppressed_at=occurred)
    )
    return False
