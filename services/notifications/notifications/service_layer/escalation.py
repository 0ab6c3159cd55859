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

from kkmp_shared.events.contracts import NeedStatusChanged, NeedSubmitted
from kkmp_shared.timeutil import as_utc as utc
from kkmp_shared.unit_of_work import UnitOfWork

from notifications.adapters import needs
from notifications.domain.events import NeedEscalated
from notifications.domain.routing import Target
from notifications.service_layer.common import UnitOfWorkFactory, derived_id, now
from notifications.service_layer.fanout import Notifier

log = logging.getLogger("kkmp.notifications.escalation")


def _need(data: NeedSubmitted | NeedStatusChanged) -> dict[str, Any]:
    """What both need events say of the need."""
    return {
        "need_id": data.need_id,
        "cooperative_id": data.cooperative_id,
        "kelurahan_code": data.kelurahan_code,
        "kecamatan_code": data.kecamatan_code,
        "kind": data.kind,
        "commodity": data.commodity,
        "submitted_at": utc(data.submitted_at),
        "updated_at": now(),
    }


async def need_submitted(uow: UnitOfWork, data: NeedSubmitted) -> None:
    await needs.submitted(uow.session, {**_need(data), "description": data.description[:2000]})


async def need_status_changed(uow: UnitOfWork, data: NeedStatusChanged) -> None:
    if data.new_status == "open":
        return
    await needs.acknowledged(uow.session, {**_need(data), "acknowledged_at": utc(data.changed_at)})


async def escalate_due(
    unit_of_work: UnitOfWorkFactory, notifier: Notifier, as_of: datetime | None = None, *, batch: int = 200
) -> int:
    """Escalate every need waiting longer than the setting at `as_of` (default now); returns how many.
    One transaction per batch of needs."""
    moment = utc(as_of) or now()
    after = timedelta(seconds=notifier.settings.need_escalation_after_s)
    total = 0
    while True:
        async with unit_of_work() as uow:
            rows = await needs.due(uow.session, moment - after, batch)
            for row in rows:
                await _escalate(uow, notifier, row, moment)
            if rows:
                await needs.escalated(uow.session, [r.need_id for r in rows], moment, now())
        total += len(rows)
        if len(rows) < batch:
            return total


async def _escalate(uow: UnitOfWork, notifier: Notifier, row: Any, moment: datetime) -> None:
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
        uow,
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
