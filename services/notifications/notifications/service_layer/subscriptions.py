"""Subscriptions of webhooks and email addresses to event types, by administrators and officers
(officers within their own kecamatan)."""

from __future__ import annotations

import secrets
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import ApiError, forbidden, not_found
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import subscriptions
from notifications.adapters.channels import check_webhook_target
from notifications.domain.delivery import TargetRejected, check_email
from notifications.service_layer.commands import Subscribe
from notifications.service_layer.common import new_id, now, within_own_scope


def may_manage_subscriptions(principal: Principal) -> None:
    if principal.role not in ("admin", "officer"):
        raise forbidden("Subscriptions are managed by Dinkopdag administrators and officers.")


def _owner_filter(principal: Principal) -> str | None:
    """An administrator sees every subscription; an officer their own."""
    return None if principal.role == "admin" else principal.sub


async def create_subscription(
    uow: UnitOfWork, principal: Principal, command: Subscribe, *, allow_internal_webhooks: bool
) -> dict[str, Any]:
    may_manage_subscriptions(principal)
    try:
        if command.channel == "webhook":
            target = await check_webhook_target(command.target, allow_internal=allow_internal_webhooks)
        else:
            target = check_email(command.target)
    except TargetRejected as exc:
        raise ApiError(
            422,
            "invalid_target",
            f"The target is refused: {exc}.",
            [{"field": "target", "message": str(exc)}],
        ) from exc
    codes = within_own_scope(
        principal,
        sorted(set(command.kecamatan_codes)) if command.kecamatan_codes else None,
        "An officer may only subscribe to kecamatan within their own scope.",
    )
    secret = secrets.token_urlsafe(32) if command.channel == "webhook" else None
    subscription_id = new_id()
    await subscriptions.add(
        uow.session,
        subscription_id=subscription_id,
        channel=command.channel,
        target=target,
        secret=secret,
        description=command.description,
        owner_id=principal.sub,
        owner_role=principal.role,
        event_types=sorted(set(command.event_types)),
        kecamatan_codes=codes,
        created_at=now(),
    )
    out = await get_subscription(uow.session, principal, subscription_id)
    return {**out, "secret": secret}


async def list_subscriptions(
    session: AsyncSession, principal: Principal, active: bool | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    may_manage_subscriptions(principal)
    return await subscriptions.page(session, _owner_filter(principal), active, limit, offset)


async def get_subscription(
    session: AsyncSession, principal: Principal, subscription_id: str
) -> dict[str, Any]:
    may_manage_subscriptions(principal)
    found = await subscriptions.one(session, _owner_filter(principal), subscription_id)
    if found is None:
        raise not_found("subscription")
    return found


async def deactivate_subscription(uow: UnitOfWork, principal: Principal, subscription_id: str) -> None:
    """Subscriptions are switched off, not erased: their deliveries stay readable."""
    await get_subscription(uow.session, principal, subscription_id)
    # Nothing more goes out to it: what was waiting is given up (and recorded as failed by the worker).
    await subscriptions.deactivate(uow.session, subscription_id)
