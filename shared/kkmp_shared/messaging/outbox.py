"""Writing events to the outbox, in the same transaction as the change they announce."""

from __future__ import annotations

import orjson
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncSession

from kkmp_shared import clock
from kkmp_shared.db import Rows, insert_many
from kkmp_shared.events.contracts import EventData
from kkmp_shared.events.envelope import CloudEvent, new_event
from kkmp_shared.messaging.tables import MessagingTables


class Outbox:
    """`await outbox.add(session, data)` stages an event; it is published only if the session commits."""

    def __init__(self, tables: MessagingTables, source: str) -> None:
        self.table = tables.outbox
        self.source = source if source.startswith("/") else f"/{source}"

    async def add(self, session: AsyncSession, data: EventData, *, subject: str | None = None) -> CloudEvent:
        return (await self.add_many(session, [data], subject=subject))[0]

    async def add_many(
        self, session: AsyncSession, items: list[EventData], *, subject: str | None = None
    ) -> list[CloudEvent]:
        if not items:
            return []
        events, rows = self.rows(session, items, subject=subject)
        # One statement whatever the number of events (arrays on PostgreSQL); `seq` follows their order.
        await insert_many(session, rows.table, rows.rows, shared=rows.shared)
        return events

    def rows(
        self, session: AsyncSession, items: list[EventData], *, subject: str | None = None
    ) -> tuple[list[CloudEvent], Rows]:
        """The events and their outbox rows, for a caller that inserts them with other rows in one
        statement (`insert_together`); the relay is woken when the session commits."""
        # The trace context of the change travels with the event, so consumers continue the same trace.
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        now = clock.now()
        events = [
            new_event(item, source=self.source, subject=subject, traceparent=carrier.get("traceparent"))
            for item in items
        ]
        rows = [
            {
                "event_id": ev.id,
                "event_type": ev.type,
                "subject": ev.subject,
                "body": orjson.dumps(ev.model_dump(mode="json", exclude_none=True)).decode(),
                "bulk": type(item).bulk,
            }
            for ev, item in zip(events, items, strict=True)
        ]
        session.info["outbox_pending"] = True
        return events, Rows(self.table, rows, shared={"headers": carrier, "created_at": now})
