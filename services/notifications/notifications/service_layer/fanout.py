"""The fan-out: one event in, one notification per recipient out, plus the push deliveries it needs.

Runs inside the consumer's transaction (with the inbox row), so an event is applied exactly once in
effect. It only *writes rows*: inbox notifications, digest items, and `deliveries` rows that the
background workers send later. Nothing here talks to an SMTP server or a webhook, so a slow receiver
can never hold up the inbox, other recipients, or the acknowledgement of the event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from kkmp_shared.events.contracts import EventData, NotificationDelivered
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.timeutil import as_utc as utc
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import cooperatives, inbox, rules
from notifications.adapters import subscriptions as subscription_store
from notifications.adapters.windows import WindowClaim, claim_windows
from notifications.domain.events import URGENT_TYPES
from notifications.domain.routing import Target, condition_key, targets
from notifications.domain.subscriptions import MatchedSubscription
from notifications.domain.templates import Message, Names, render
from notifications.service_layer import recipients as people
from notifications.service_layer.common import new_id, now
from notifications.service_layer.deliveries import DeliveryWorker, queue_deliveries, stage_deliveries
from notifications.settings import NotificationsSettings

log = logging.getLogger("kkmp.notifications.fanout")


@dataclass(frozen=True)
class Outcome:
    """What one event led to (for logs, tests and the escalation job)."""

    inbox: int = 0
    digest: int = 0
    deliveries: int = 0
    suppressed: bool = False
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Announcement:
    """One event to route. `cloudevent` (the envelope) is what webhooks receive; events made up by this
    service (escalations) have none and reach people only. `fallback` audiences are used when the
    rules find nobody (an escalation must reach someone)."""

    event_id: str
    event_type: str
    data: Mapping[str, Any]
    occurred_at: datetime
    cloudevent: CloudEvent | None = None
    fallback: tuple[Target, ...] = ()


@dataclass(frozen=True)
class _Plan:
    """An event that reaches someone, before its repeat window and recipients are known."""

    item: Announcement
    event_time: datetime
    occurred: datetime
    wanted: list[Target]
    subscriptions: list[MatchedSubscription]


@dataclass
class Notifier:
    settings: NotificationsSettings
    commodity_names: Mapping[str, str] = field(default_factory=dict)
    kelurahan_names: Mapping[str, str] = field(default_factory=dict)
    # The delivery worker of this process: it takes new deliveries over when their transaction commits.
    worker: DeliveryWorker | None = None

    @property
    def email_on(self) -> bool:
        return bool(self.settings.smtp_host)

    async def announce(
        self,
        uow: UnitOfWork,
        *,
        event_id: str,
        event_type: str,
        data: Mapping[str, Any],
        occurred_at: datetime,
        cloudevent: CloudEvent | None = None,
        fallback: Sequence[Target] = (),
    ) -> Outcome:
        """Route one event (see `Announcement` for the arguments)."""
        item = Announcement(event_id, event_type, data, occurred_at, cloudevent, tuple(fallback))
        return (await self.announce_many(uow, [item]))[0]

    async def announce_many(self, uow: UnitOfWork, items: Sequence[Announcement]) -> list[Outcome]:
        """Route events in order, with the same effect as announcing them one by one, but in a fixed
        number of statements whatever their number (a burst of stalls from one detection scan is one
        consumer batch, and each statement is a round trip that a loaded machine makes slow)."""
        if not items:
            return []
        session = uow.session
        moment = now()
        routing = await rules.enabled_for(session, {i.event_type for i in items})
        subscriptions = await subscription_store.active_for(
            session, {i.event_type for i in items if i.cloudevent is not None}
        )
        plans: list[_Plan | None] = []
        for item in items:
            wanted = targets(routing.get(item.event_type, []), item.data)
            subs = (
                [sub for sub in subscriptions.get(item.event_type, []) if sub.covers(item.data)]
                if item.cloudevent is not None
                else []
            )
            if not wanted and not subs and not item.fallback:
                plans.append(None)
                continue
            # The window is measured in event time (a replayed backlog is judged by when things
            # happened); the notification itself is never dated in the future.
            event_time = utc(item.occurred_at) or moment
            plans.append(_Plan(item, event_time, min(event_time, moment), wanted, subs))
        outcomes = [Outcome() for _ in items]
        windowed: list[tuple[int, WindowClaim]] = []
        if self.settings.repeat_window_s > 0:
            for index, plan in enumerate(plans):
                key = condition_key(plan.item.event_type, plan.item.data) if plan is not None else None
                if plan is not None and key is not None:
                    item = plan.item
                    claim = WindowClaim(key, item.event_type, item.data, item.event_id, plan.event_time)
                    windowed.append((index, claim))
        allowed = await claim_windows(session, [c for _, c in windowed], self.settings.repeat_window_s)
        for (index, _claim), ok in zip(windowed, allowed, strict=True):
            if not ok:
                item = items[index]
                log.info(
                    "suppressed %s %s: same condition announced within the window",
                    item.event_type,
                    item.event_id,
                    extra={"event_id": item.event_id, "cooperative_id": item.data.get("cooperative_id")},
                )
                outcomes[index] = Outcome(suppressed=True)
                plans[index] = None
        live = [(index, plan) for index, plan in enumerate(plans) if plan is not None]
        if not live:
            return outcomes
        names = await self.names(session, *(plan.item.data for _, plan in live))
        found = await people.resolve_many(session, [(plan.wanted, plan.item.event_type) for _, plan in live])
        need_fallback = [n for n, (_, plan) in enumerate(live) if not found[n] and plan.item.fallback]
        if need_fallback:
            fallen = await people.resolve_many(
                session, [(live[n][1].item.fallback, live[n][1].item.event_type) for n in need_fallback]
            )
            for n, recipients in zip(need_fallback, fallen, strict=True):
                found[n] = recipients
        inbox_rows: list[dict[str, Any]] = []
        held_rows: list[dict[str, Any]] = []
        inbox_events: list[EventData] = []
        deliveries: list[dict[str, Any]] = []
        for (index, plan), recipients in zip(live, found, strict=True):
            outcomes[index] = self._fan_out(
                plan, recipients, names, moment, inbox_rows, held_rows, inbox_events, deliveries
            )
        # Every row of the batch in one statement: inbox, its events (staged in the unit of work's
        # outbox), digest items, and the push deliveries last (their RETURNING says which the worker
        # takes over).
        events = uow.outbox.rows(session, inbox_events)[1] if inbox_rows else None
        staged = None
        if deliveries:
            secrets = {sub.id: sub.secret for _, plan in live for sub in plan.subscriptions}
            staged = stage_deliveries(uow, deliveries, self.worker, secrets)
        inserted = await inbox.write_fan_out(
            session, inbox_rows, events, held_rows, staged.rows if staged is not None else None
        )
        if staged is not None:
            staged.inserted(inserted)
        return outcomes

    def _fan_out(
        self,
        plan: _Plan,
        found: list[people.Recipient],
        names: Names,
        moment: datetime,
        inbox_rows: list[dict[str, Any]],
        held_rows: list[dict[str, Any]],
        inbox_events: list[EventData],
        deliveries: list[dict[str, Any]],
    ) -> Outcome:
        """One event's rows (inbox, digest, deliveries), appended to the batch's lists (no I/O)."""
        item = plan.item
        event_id, event_type, data = item.event_id, item.event_type, item.data
        message = render(event_type, data, names)
        link = message.link(self.settings.portal_url)
        common: dict[str, Any] = {
            "event_id": event_id,
            "event_type": event_type,
            "title": message.title[:300],
            "body": message.body,
            "link": link,
            "cooperative_id": data.get("cooperative_id"),
            "commodity": data.get("commodity"),
            "created_at": plan.occurred,
        }
        urgent = event_type in URGENT_TYPES
        held = {p.user_id for p in found if p.digest and not urgent}
        rows = [{"id": new_id(), "user_id": p.user_id, **common} for p in found]
        to_inbox = [row for row in rows if row["user_id"] not in held]
        to_digest = [row for row in rows if row["user_id"] in held]
        inbox_rows.extend(to_inbox)
        held_rows.extend(to_digest)
        inbox_events.extend(
            NotificationDelivered(
                delivery_id=row["id"],
                channel="inbox",
                recipient=row["user_id"],
                source_event_id=event_id,
                source_event_type=event_type,
                cooperative_id=common["cooperative_id"],
                attempts=1,
                delivered_at=moment,
            )
            for row in to_inbox
        )
        queued = len(deliveries)
        if self.email_on:
            by_user = {row["user_id"]: row["id"] for row in to_inbox}
            for p in found:
                if p.user_id in by_user and p.email and p.email_enabled:
                    deliveries.append(
                        self.email_delivery(
                            event_id,
                            event_type,
                            data,
                            message,
                            link,
                            p.email,
                            f"user:{p.user_id}",
                            user_id=p.user_id,
                            notification_id=by_user[p.user_id],
                        )
                    )
        # Webhooks get the same signed bytes on every attempt: the body is fixed here, once.
        webhook_payload = (
            webhook_body(item.cloudevent, message, link).decode() if item.cloudevent is not None else ""
        )
        for sub in plan.subscriptions:
            if sub.channel == "webhook":
                deliveries.append(
                    self._delivery(
                        channel="webhook",
                        target=sub.target,
                        recipient=f"subscription:{sub.id}",
                        subscription_id=sub.id,
                        event_id=event_id,
                        event_type=event_type,
                        cooperative_id=data.get("cooperative_id"),
                        subject=None,
                        payload=webhook_payload,
                    )
                )
            else:
                deliveries.append(
                    self.email_delivery(
                        event_id,
                        event_type,
                        data,
                        message,
                        link,
                        sub.target,
                        f"subscription:{sub.id}",
                        subscription_id=sub.id,
                    )
                )
        return Outcome(
            inbox=len(to_inbox),
            digest=len(to_digest),
            deliveries=len(deliveries) - queued,
            recipients=tuple(p.user_id for p in found),
        )

    async def names(self, session: AsyncSession, *datas: Mapping[str, Any]) -> Names:
        """The names the templates of these events need, in one query."""
        ids = {
            str(data[k])
            for data in datas
            for k in ("cooperative_id", "to_cooperative_id", "from_cooperative_id")
            if data.get(k)
        }
        known = await cooperatives.names(session, ids)
        return Names(cooperatives=known, commodities=self.commodity_names, kelurahan=self.kelurahan_names)

    def email_delivery(
        self,
        event_id: str,
        event_type: str,
        data: Mapping[str, Any],
        message: Message,
        link: str | None,
        address: str,
        recipient: str,
        *,
        user_id: str | None = None,
        notification_id: str | None = None,
        subscription_id: str | None = None,
    ) -> dict[str, Any]:
        return self._delivery(
            channel="email",
            target=address,
            recipient=recipient,
            user_id=user_id,
            notification_id=notification_id,
            subscription_id=subscription_id,
            event_id=event_id,
            event_type=event_type,
            cooperative_id=data.get("cooperative_id"),
            subject=f"[KKMP] {message.title}"[:300],
            payload=email_text(message, link),
        )

    def _delivery(self, **values: Any) -> dict[str, Any]:
        moment = now()
        row = {
            "id": new_id(),
            "user_id": None,
            "notification_id": None,
            "subscription_id": None,
            "status": "pending",
            "attempts": 0,
            "max_attempts": self.settings.delivery_max_attempts,
            "next_attempt_at": moment,
            "created_at": moment,
            "updated_at": moment,
        }
        row.update(values)
        return row

    async def queue(
        self,
        uow: UnitOfWork,
        deliveries: list[dict[str, Any]],
        secrets: Mapping[str, str | None] | None = None,
    ) -> None:
        await queue_deliveries(uow, deliveries, self.worker, secrets)


def email_text(message: Message, link: str | None) -> str:
    parts = [message.body]
    if link:
        parts.append(f"Lihat di portal: {link}")
    parts.append(
        "--\nPesan otomatis dari sistem pemantauan KKMP, Dinas Koperasi dan UMKM Kota Surabaya.\n"
        "Atur pemberitahuan Anda di portal (menu Notifikasi)."
    )
    return "\n\n".join(parts)


def webhook_body(event: CloudEvent, message: Message, link: str | None) -> bytes:
    """The event's CloudEvent as received, plus the rendered Indonesian text as CloudEvents extension
    attributes (`kkmptitle`, `kkmpmessage`, `kkmplink`): a WhatsApp or SMS gateway can forward the
    text as it is, while any other receiver reads the standard attributes and `data`."""
    envelope = event.model_dump(mode="json", exclude_none=True)
    envelope.update(kkmptitle=message.title, kkmpmessage=message.body)
    if link:
        envelope["kkmplink"] = link
    return orjson.dumps(envelope)
