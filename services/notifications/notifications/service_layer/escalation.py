"""Escalation: a need (kebutuhan) still unacknowledged after a set time goes to the supervisors.

The service watches `need.submitted.v1` and `need.status_changed.v1` on a queue of its own and keeps
one row per need. A scheduled job (and `POST /escalations/run`) finds needs still `open` past
`NEED_ESCALATION_AFTER_S` and announces a made-up `need.escalated` event through the routing table
(built-in rule: supervisors whose scope covers the cooperative; administrators when there is none).
Each need escalates once: its id fixes the notification's id, and the row remembers it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from kkmp_shared.db import Database
from kkmp_shared.events.contracts import NeedStatusChanged, NeedSubmitted
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.events import NeedEscalated
from notifications.domain.routing import Target
from notifications.service_layer.common import derived_id, insert_for, now, utc
from notifications.service_layer.fanout import Notifier

log = logging.getLogger("kkmp.notifications.escalation")

w = orm.need_watch


async def need_submitted(session: AsyncSession, data: NeedSubmitted) -> None:
    values: dict[str, Any] = {
        "need_id": data.need_id,
        "cooperative_id": data.cooperative_id,
        "kelurahan_code": data.kelurahan_code,
        "kecamatan_code": data.kecamatan_code,
        "kind": data.kind,
        "commodity": data.commodity,
        "description": data.description[:2000],
        "submitted_at": utc(data.submitted_at),
        "updated_at": now(),
    }
    statement = insert_for(session, w).values(**values)
    # A status change that overtook its submission already created the row: fill in, keep its state.
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[w.c.need_id],
            set_={k: statement.excluded[k] for k in values if k != "need_id"},
        )
    )


async def need_status_changed(session: AsyncSession, data: NeedStatusChanged) -> None:
    if data.new_status == "open":
        return
    changed_at = utc(data.changed_at)
    statement = insert_for(session, w).values(
        need_id=data.need_id,
        cooperative_id=data.cooperative_id,
        kelurahan_code=data.kelurahan_code,
        kecamatan_code=data.kecamatan_code,
        kind=data.kind,
        commodity=data.commodity,
        submitted_at=utc(data.submitted_at),
        acknowledged_at=changed_at,
        updated_at=now(),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[w.c.need_id],
            set_={"acknowledged_at": changed_at, "updated_at": statement.excluded.updated_at},
            where=w.c.acknowledged_at.is_(None),
        )
    )


async def escalate_due(
    db: Database, notifier: Notifier, as_of: datetime | None = None, *, batch: int = 200
) -> int:
    """Escalate every need waiting longer than the setting at `as_of` (default now); returns how many."""
    moment = utc(as_of) or now()
    after = timedelta(seconds=notifier.settings.need_escalation_after_s)
    total = 0
    while True:
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    select(w)
                    .where(
                        w.c.acknowledged_at.is_(None),
                        w.c.escalated_at.is_(None),
                        w.c.submitted_at <= moment - after,
                    )
                    .order_by(w.c.submitted_at)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                submitted = utc(row.submitted_at) or moment
                data = NeedEscalated(
                    cooperative_id=row.cooperative_id or "",
                    kelurahan_code=row.kelurahan_code or "",
                    kecamatan_code=row.kecamatan_code or "",
                    need_id=row.need_id,
                    kind=row.kind or "other",
                    commodity=row.commodity,
                    description=row.description,
                    submitted_at=submitted,
                    waited_hours=int((moment - submitted).total_seconds() // 3600),
                    escalated_at=moment,
                )
                outcome = await notifier.announce(
                    session,
                    event_id=derived_id(NeedEscalated.event_type, row.need_id),
                    event_type=NeedEscalated.event_type,
                    data=data.model_dump(),
                    occurred_at=moment,
                    fallback=(Target("admins", None),),
                )
                if not outcome.recipients:
                    log.warning(
                        "need %s escalated but nobody is there to hear it (no supervisor, no admin known)",
                        row.need_id,
                        extra={"cooperative_id": row.cooperative_id},
                    )
            if rows:
                await session.execute(
                    update(w)
                    .where(w.c.need_id.in_([r.need_id for r in rows]))
                    .values(escalated_at=moment, updated_at=now())
                )
        total += len(rows)
        if len(rows) < batch:
            return total
