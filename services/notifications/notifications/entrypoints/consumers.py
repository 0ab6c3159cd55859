"""The one explicit list of what the notifications service consumes, queue by queue.

- `notifications.directory`: cooperatives from the registry (names and kecamatan, for scope and text).
- `notifications.users`: `user.created.v1`, who the recipients are and what they may see.
- `notifications.alerts`: every routable event type; the routing table (data) decides who is told.
  A batch of alerts is routed together (`Notifier.announce_many`), with the effect of one by one.
- `notifications.escalation`: `need.submitted.v1` / `need.status_changed.v1`, to escalate needs
  nobody acknowledged.
"""

from __future__ import annotations

from kkmp_shared.bootstrap import Platform
from kkmp_shared.directory import CooperativeDirectory
from kkmp_shared.events.contracts import (
    EVENT_MODELS,
    EventData,
    NeedStatusChanged,
    NeedSubmitted,
    UserCreated,
)
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.events import ROUTABLE_EVENT_TYPES
from notifications.service_layer import escalation, recipients
from notifications.service_layer.fanout import Announcement, Notifier


def build_consumers(platform: Platform, notifier: Notifier) -> ConsumerGroup:
    group = ConsumerGroup("notifications")
    CooperativeDirectory(orm.known_cooperatives).subscribe(group, "directory")

    async def on_user_created(session: AsyncSession, _event: CloudEvent, data: UserCreated) -> None:
        async with platform.joined(session) as uow:
            await recipients.learn_user(uow, data)

    async def on_alert(session: AsyncSession, event: CloudEvent, data: EventData) -> None:
        async with platform.joined(session) as uow:
            await notifier.announce_many(uow, [_announcement(event, data)])

    async def on_alerts(session: AsyncSession, events: list[tuple[CloudEvent, EventData]]) -> None:
        # A burst (one detection scan's stalls) is routed in a fixed number of statements.
        async with platform.joined(session) as uow:
            await notifier.announce_many(uow, [_announcement(event, data) for event, data in events])

    async def on_need_submitted(session: AsyncSession, _event: CloudEvent, data: NeedSubmitted) -> None:
        async with platform.joined(session) as uow:
            await escalation.need_submitted(uow, data)

    async def on_need_status(session: AsyncSession, _event: CloudEvent, data: NeedStatusChanged) -> None:
        async with platform.joined(session) as uow:
            await escalation.need_status_changed(uow, data)

    group.add("users", UserCreated, on_user_created)
    for event_type in ROUTABLE_EVENT_TYPES:
        group.add("alerts", EVENT_MODELS[event_type], on_alert)
    group.in_batches("alerts", on_alerts)
    group.add("escalation", NeedSubmitted, on_need_submitted)
    group.add("escalation", NeedStatusChanged, on_need_status)
    return group


def _announcement(event: CloudEvent, data: EventData) -> Announcement:
    """An event off the bus to route: its envelope is what webhooks receive."""
    return Announcement(event.id, event.type, data.model_dump(), event.time, event)
