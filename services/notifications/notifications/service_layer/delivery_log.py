"""Push deliveries as administrators see them (officers: their subscriptions'), and an
administrator's retry of a failed one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import conflict, forbidden, not_found
from kkmp_shared.unit_of_work import UnitOfWork
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import deliveries
from notifications.service_layer.commands import DeliveryFilter
from notifications.service_layer.common import now

PENDING = Gauge("kkmp_notification_deliveries_pending", "Push deliveries waiting to be sent")


def _owner_filter(principal: Principal) -> str | None:
    if principal.role == "admin":
        return None
    if principal.role == "officer":
        # An officer sees the deliveries of the subscriptions they own.
        return principal.sub
    raise forbidden("Deliveries are visible to administrators (and officers for their own subscriptions).")


async def list_deliveries(
    session: AsyncSession, principal: Principal, wanted: DeliveryFilter, limit: int, offset: int
) -> dict[str, Any]:
    items, total = await deliveries.page(
        session,
        _owner_filter(principal),
        status=wanted.status,
        channel=wanted.channel,
        subscription_id=wanted.subscription_id,
        event_id=wanted.event_id,
        limit=limit,
        offset=offset,
    )
    return {"items": items, "total": total}


async def get_delivery(session: AsyncSession, principal: Principal, delivery_id: str) -> dict[str, Any]:
    found = await deliveries.one(session, _owner_filter(principal), delivery_id)
    if found is None:
        raise not_found("delivery")
    return found


async def retry(
    uow: UnitOfWork,
    principal: Principal,
    delivery_id: str,
    max_attempts: int,
    wake: Callable[[], None] | None,
) -> dict[str, Any]:
    """An administrator sends a failed delivery again: a fresh budget of attempts, starting now. The
    worker is woken once that commits."""
    row = await deliveries.status_and_attempts(uow.session, delivery_id)
    if row is None:
        raise not_found("delivery")
    if row.status != "failed":
        raise conflict("illegal_state", f"Only a failed delivery can be retried; this one is {row.status}.")
    await deliveries.reopen_failed(uow.session, delivery_id, now(), row.attempts + max_attempts)
    deliveries.wake_after_commit(uow.session, wake)
    return await get_delivery(uow.session, principal, delivery_id)


async def pending_count(session: AsyncSession) -> int:
    """How many deliveries wait to be sent (and the gauge that says so)."""
    count = await deliveries.pending_count(session)
    PENDING.set(count)
    return count
