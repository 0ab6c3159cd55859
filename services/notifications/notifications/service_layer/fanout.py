"""The fan-out: one event in, one notification per recipient out, plus the push deliveries it needs.

Runs inside the consumer's transaction (with the inbox row), so an event is applied exactly once in
effect. It only *writes rows*: inbox notifications, digest items, and `deliveries` rows that the
background workers send later. Nothing here talks to an SMTP server or a webhook, so a slow receiver
can never hold up the inbox, other recipients, or the acknowledgement of the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from kkmp_shared.events.contracts import NotificationDelivered
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.outbox import Outbox
from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.events import URGENT_TYPES
from notifications.domain.routing import RoutingRule, Target, condition_key, event_kecamatans, targets
from notifications.domain.templates import CooperativeName, Message, Names, render
from notifications.service_layer import recipients as people
from notifications.service_layer.common import insert_for, insert_rows, new_id, now, utc
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


@dataclass
class Notifier:
    settings: NotificationsSettings
    outbox: Outbox
    commodity_names: Mapping[str, str] = field(default_factory=dict)
    kelurahan_names: Mapping[str, str] = field(default_factory=dict)
    # Wakes the delivery workers once the transaction that queued deliveries has committed.
    wake_deliveries: Callable[[], None] | None = None

    @property
    def email_on(self) -> bool:
        return bool(self.settings.smtp_host)

    async def announce(
        self,
        session: AsyncSession,
        *,
        event_id: str,
        event_type: str,
        data: Mapping[str, Any],
        occurred_at: datetime,
        cloudevent: CloudEvent | None = None,
        fallback: Sequence[Target] = (),
    ) -> Outcome:
        """Route one event. `cloudevent` (the envelope) is what webhooks receive; events made up by
        this service (escalations) have none and reach people only. `fallback` audiences are
        used when the rules find nobody (an escalation must reach someone)."""
        moment = now()
        # The window is measured in event time (a replayed backlog is judged by when things happened);
        # the notification itself is never dated in the future.
        event_time = utc(occurred_at) or moment
        occurred = min(event_time, moment)
        rules = await load_rules(session, event_type)
        wanted = targets(rules, data)
        subs = await matching_subscriptions(session, event_type, data) if cloudevent is not None else []
        if not wanted and not subs and not fallback:
            return Outcome()
        key = condition_key(event_type, data)
        if key is not None and self.settings.repeat_window_s > 0:
            if not await claim_window(
                session, key, event_type, data, event_id, event_time, self.settings.repeat_window_s
            ):
                log.info(
                    "suppressed %s %s: same condition announced within the window",
                    event_type,
                    event_id,
                    extra={"event_id": event_id, "cooperative_id": data.get("cooperative_id")},
                )
                return Outcome(suppressed=True)
        message = render(event_type, data, await self.names(session, data))
        link = message.link(self.settings.portal_url)
        found = await people.resolve(session, wanted, event_type)
        if not found and fallback:
            found = await people.resolve(session, fallback, event_type)
        common: dict[str, Any] = {
            "event_id": event_id,
            "event_type": event_type,
            "title": message.title[:300],
            "body": message.body,
            "link": link,
            "cooperative_id": data.get("cooperative_id"),
            "commodity": data.get("commodity"),
            "created_at": occurred,
        }
        urgent = event_type in URGENT_TYPES
        held = {p.user_id for p in found if p.digest and not urgent}
        rows = [{"id": new_id(), "user_id": p.user_id, **common} for p in found]
        inbox_rows = [row for row in rows if row["user_id"] not in held]
        held_rows = [row for row in rows if row["user_id"] in held]
        if inbox_rows:
            await insert_rows(session, orm.notifications, inbox_rows)
            await self.outbox.add_many(
                session,
                [
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
                    for row in inbox_rows
                ],
            )
        if held_rows:
            await insert_rows(session, orm.digest_items, held_rows)
        deliveries: list[dict[str, Any]] = []
        if self.email_on:
            by_user = {row["user_id"]: row["id"] for row in inbox_rows}
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
        webhook_payload = webhook_body(cloudevent, message, link).decode() if cloudevent is not None else ""
        for sub in subs:
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
        await self.queue(session, deliveries)
        return Outcome(
            inbox=len(inbox_rows),
            digest=len(held_rows),
            deliveries=len(deliveries),
            recipients=tuple(p.user_id for p in found),
        )

    async def names(self, session: AsyncSession, data: Mapping[str, Any]) -> Names:
        ids = {
            str(data[k])
            for k in ("cooperative_id", "to_cooperative_id", "from_cooperative_id")
            if data.get(k)
        }
        known: dict[str, CooperativeName] = {}
        if ids:
            t = orm.known_cooperatives
            rows = await session.execute(select(t.c.id, t.c.name, t.c.kelurahan_name).where(t.c.id.in_(ids)))
            known = {row.id: CooperativeName(row.name, row.kelurahan_name) for row in rows}
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

    async def queue(self, session: AsyncSession, deliveries: list[dict[str, Any]]) -> None:
        if not deliveries:
            return
        await insert_rows(session, orm.deliveries, deliveries)
        # The workers are woken after commit (see bootstrap's after_commit hook), not before:
        # a worker must never look for rows the transaction has not made visible yet.
        session.info["deliveries_pending"] = True
        session.info["deliveries_wake"] = self.wake_deliveries


def email_text(message: Message, link: str | None) -> str:
    parts = [message.body]
    if link:
        parts.append(f"Lihat di portal: {link}")
    parts.append(
        "--\nPesan otomatis dari sistem pemantauan KKMP, Dinas Koperasi dan UMKM Kota Surabaya.\n"
        "Atur pemberitahuan Anda di portal (menu Notifikasi)."
    )
    return "\n\n".join(parts)


# --- routing rules -----------------------------------------------------------------------------------


def rule_from_row(row: Any) -> RoutingRule:
    return RoutingRule(
        event_type=row.event_type,
        audience=row.audience,
        match_field=row.match_field or None,
        when={k: tuple(v) for k, v in (row.conditions or {}).items()},
        enabled=bool(row.enabled),
        id=row.id,
    )


async def load_rules(session: AsyncSession, event_type: str) -> list[RoutingRule]:
    t = orm.routing_rules
    rows = await session.execute(
        select(t).where(t.c.event_type == event_type, t.c.enabled).order_by(t.c.created_at, t.c.id)
    )
    return [rule_from_row(row) for row in rows]


# --- repeat window -----------------------------------------------------------------------------------


async def claim_window(
    session: AsyncSession,
    key: str,
    event_type: str,
    data: Mapping[str, Any],
    event_id: str,
    occurred: datetime,
    window_s: int,
) -> bool:
    """True if this event may be announced: its condition was not announced within the window.
    One atomic upsert decides, so two replicas cannot both announce the same condition."""
    w = orm.alert_windows
    statement = insert_for(session, w).values(
        condition_key=key,
        event_type=event_type,
        cooperative_id=data.get("cooperative_id"),
        last_event_id=event_id,
        last_notified_at=occurred,
        suppressed=0,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[w.c.condition_key],
        set_={
            "last_event_id": statement.excluded.last_event_id,
            "last_notified_at": statement.excluded.last_notified_at,
        },
        where=w.c.last_notified_at <= occurred - timedelta(seconds=window_s),
    ).returning(w.c.condition_key)
    if (await session.execute(statement)).first() is not None:
        return True
    await session.execute(
        update(w)
        .where(w.c.condition_key == key)
        .values(suppressed=w.c.suppressed + 1, last_suppressed_at=occurred)
    )
    return False


# --- subscriptions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchedSubscription:
    id: str
    channel: str
    target: str


async def matching_subscriptions(
    session: AsyncSession, event_type: str, data: Mapping[str, Any]
) -> list[MatchedSubscription]:
    s, st, sc = orm.subscriptions, orm.subscription_types, orm.subscription_scopes
    kecamatans = event_kecamatans(data)
    scope: Any = s.c.whole_city
    if kecamatans:
        scope = or_(
            s.c.whole_city,
            exists(
                select(sc.c.subscription_id).where(
                    sc.c.subscription_id == s.c.id, sc.c.kecamatan_code.in_(kecamatans)
                )
            ),
        )
    query = (
        select(s.c.id, s.c.channel, s.c.target)
        .join(st, st.c.subscription_id == s.c.id)
        .where(st.c.event_type == event_type, s.c.active, scope)
        .order_by(s.c.created_at, s.c.id)
    )
    return [MatchedSubscription(row.id, row.channel, row.target) for row in await session.execute(query)]


def webhook_body(event: CloudEvent, message: Message, link: str | None) -> bytes:
    """The event's CloudEvent as received, plus the rendered Indonesian text as CloudEvents extension
    attributes (`kkmptitle`, `kkmpmessage`, `kkmplink`): a WhatsApp or SMS gateway can forward the
    text as it is, while any other receiver reads the standard attributes and `data`."""
    envelope = event.model_dump(mode="json", exclude_none=True)
    envelope.update(kkmptitle=message.title, kkmpmessage=message.body)
    if link:
        envelope["kkmplink"] = link
    return orjson.dumps(envelope)
