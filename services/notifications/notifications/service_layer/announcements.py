"""Announcements (pengumuman): Dinkopdag writes to people by role and place."""

from __future__ import annotations

from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import unprocessable
from kkmp_shared.timeutil import as_utc as utc
from kkmp_shared.unit_of_work import UnitOfWork

from notifications.adapters import inbox
from notifications.domain.events import ANNOUNCEMENT_TYPE
from notifications.service_layer.commands import Announce
from notifications.service_layer.common import new_id, now, within_own_scope


async def announce(
    uow: UnitOfWork, principal: Principal, command: Announce, portal_url: str
) -> dict[str, Any]:
    moment = now()
    created = utc(command.created_at) or moment
    if created > moment:
        raise unprocessable("created_at", "An announcement cannot be dated in the future.")
    codes = within_own_scope(
        principal,
        sorted(set(command.kecamatan_codes)) if command.kecamatan_codes else None,
        "An officer may only write to kecamatan within their own scope.",
    )
    announcement_id = new_id()
    written = await inbox.write_announcement(
        uow.session,
        roles=command.roles,
        cooperative_ids=command.cooperative_ids,
        kecamatan_codes=codes,
        announcement_id=announcement_id,
        event_type=ANNOUNCEMENT_TYPE,
        title=command.title,
        body=command.body,
        link=f"{portal_url.rstrip('/')}{command.link}" if command.link else None,
        created_at=created,
    )
    return {"id": announcement_id, "recipients": written, "created_at": created}
