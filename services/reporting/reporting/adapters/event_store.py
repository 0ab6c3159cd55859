"""The event store: reporting's copy of every event it consumed, in arrival order.

Written in the same transaction as the inbox row and the projection, so an event is either stored
and projected or neither. A rebuild reads it back in `seq` order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from kkmp_shared import clock
from kkmp_shared.db import on_sqlite, upsert_insert
from kkmp_shared.events.envelope import CloudEvent
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.domain.periods import as_utc


async def append(session: AsyncSession, event: CloudEvent) -> None:
    await append_many(session, [event])


async def append_many(session: AsyncSession, events: list[CloudEvent]) -> None:
    received_at = clock.now()
    rows = [
        {
            "event_id": event.id,
            "event_type": event.type,
            "source": event.source[:200],
            "subject": (event.subject or None) and event.subject[:64],
            "time": as_utc(event.time),
            "data": event.data,
            "traceparent": event.traceparent,
            "received_at": received_at,
        }
        for event in events
    ]
    await session.execute(upsert_insert(session)(orm.event_store).on_conflict_do_nothing(), rows)


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(orm.event_store))).scalar_one())


async def read_in_order(session: AsyncSession, batch_size: int = 2000) -> AsyncIterator[Sequence[Any]]:
    """Stored events in arrival order, a page at a time (keyset paging on `seq`)."""
    t = orm.event_store
    after = 0
    while True:
        rows = (
            await session.execute(select(t).where(t.c.seq > after).order_by(t.c.seq).limit(batch_size))
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].seq


def to_event(row: Any) -> CloudEvent:
    return CloudEvent(
        id=row.event_id,
        source=row.source,
        type=row.event_type,
        time=row.time,
        subject=row.subject,
        data=row.data,
        traceparent=row.traceparent,
    )


async def hold_writers(session: AsyncSession) -> None:
    """Make events consumed meanwhile wait for this transaction (PostgreSQL; SQLite serialises
    writers anyway): reads go on, writes wait."""
    if not on_sqlite(session):
        await session.execute(text("LOCK TABLE event_store IN EXCLUSIVE MODE"))
