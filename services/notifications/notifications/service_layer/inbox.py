"""The caller's inbox and preferences: reading, marking read, muting, email and the daily digest."""

from __future__ import annotations

from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import not_found, unprocessable
from kkmp_shared.timeutil import as_utc as utc
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import inbox, preferences
from notifications.service_layer.commands import ChangePreferences
from notifications.service_layer.common import now
from notifications.service_layer.recipients import learn_from_token


async def inbox_page(
    uow: UnitOfWork,
    principal: Principal,
    unread: bool | None,
    event_type: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int, int]:
    """The caller's notifications, how many match the filter and how many are unread. A caller this
    service never heard of becomes a recipient from their token first."""
    await learn_from_token(uow, principal)
    rows, total = await inbox.page(uow.session, principal.sub, unread, event_type, limit, offset)
    counts = await inbox.counts(uow.session, principal.sub)
    return rows, total, counts["unread"]


async def inbox_summary(session: AsyncSession, user_id: str) -> dict[str, int]:
    return await inbox.counts(session, user_id)


async def mark_read(uow: UnitOfWork, user_id: str, notification_id: str) -> dict[str, Any]:
    # Another user's notification answers 404 like an unknown one: its existence is not revealed.
    row = await inbox.mark_read(uow.session, user_id, notification_id, now())
    if row is None:
        raise not_found("notification")
    return row


async def mark_all_read(uow: UnitOfWork, user_id: str) -> int:
    return await inbox.mark_all_read(uow.session, user_id, now())


async def get_preferences(session: AsyncSession, user_id: str, digest_hour_wib: int) -> dict[str, Any]:
    row = await preferences.current(session, user_id)
    return {
        "user_id": user_id,
        "muted_event_types": await preferences.muted(session, user_id),
        "digest": row.digest if row else "off",
        "email": bool(row.email_enabled) if row else True,
        "email_address": await preferences.email_address(session, user_id),
        "digest_hour_wib": digest_hour_wib,
        "held_for_digest": await inbox.held_count(session, user_id),
        "updated_at": utc(row.updated_at) if row else None,
    }


async def put_preferences(
    uow: UnitOfWork, principal: Principal, change: ChangePreferences, digest_hour_wib: int
) -> dict[str, Any]:
    user_id = principal.sub
    if change.digest == "daily" and principal.role not in ("officer", "admin"):
        raise unprocessable("digest", "The daily digest is offered to Dinkopdag officers and administrators.")
    moment = now()
    current = await preferences.current(uow.session, user_id)
    digest = change.digest or (current.digest if current else "off")
    values: dict[str, Any] = {
        "user_id": user_id,
        "digest": digest,
        "email_enabled": change.email
        if change.email is not None
        else (bool(current.email_enabled) if current else True),
        "updated_at": moment,
        "digest_since": current.digest_since if current else None,
        "last_digest_at": current.last_digest_at if current else None,
    }
    if digest == "daily" and (current is None or current.digest != "daily"):
        # The first digest comes at the next digest hour after choosing it, not at once.
        values.update(digest_since=moment, last_digest_at=None)
    await preferences.save(uow.session, values)
    if digest == "off" and current is not None and current.digest == "daily":
        # Stopping the digest releases what was held straight into the inbox (nothing is lost).
        await inbox.release_held(uow.session, user_id)
    if change.muted_event_types is not None:
        await preferences.replace_muted(uow.session, user_id, sorted(set(change.muted_event_types)))
    return await get_preferences(uow.session, user_id, digest_hour_wib)
