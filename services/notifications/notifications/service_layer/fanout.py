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
from datetime import datetime, timedelta
from typing import Any

import orjson
from kkmp_shared.db import Rows, array_rows, insert_together, on_sqlite
from kkmp_shared.events.contracts import EventData, NotificationDelivered
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.outbox import Outbox
from sqlalchemy import DateTime, Interval, String, bindparam, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.events import URGENT_TYPES
from notifications.domain.routing import RoutingRule, Target, condition_key, event_kecamatans, targets
from notifications.domain.templates import CooperativeName, Message, Names, render
from notifications.service_layer import recipients as people
from notifications.service_layer.common import insert_for, new_id, now, utc
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
    outbox: Outbox
    commodity_names: Mapping[str, str] = field(default_factory=dict)
    kelurahan_names: Mapping[str, str] = field(default_factory=dict)
    # The delivery worker of this process: it takes new deliveries over when their transaction commits.
    worker: DeliveryWorker | None = None

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
        """Route one event (see `Announcement` for the arguments)."""
        item = Announcement(event_id, event_type, data, occurred_at, cloudevent, tuple(fallback))
        return (await self.announce_many(session, [item]))[0]

    async def announce_many(self, session: AsyncSession, items: Sequence[Announcement]) -> list[Outcome]:
        """Route events in order, with the same effect as announcing them one by one, but in a fixed
        number of statements whatever their number (a burst of stalls from one detection scan is one
        consumer batch, and each statement is a round trip that a loaded machine makes slow)."""
        if not items:
            return []
        moment = now()
        rules = await load_rules_for(session, {i.event_type for i in items})
        subscriptions = await subscriptions_for(
            session, {i.event_type for i in items if i.cloudevent is not None}
        )
        plans: list[_Plan | None] = []
        for item in items:
            wanted = targets(rules.get(item.event_type, []), item.data)
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
        # Every row of the batch in one statement (`insert_together`): inbox, its events, digest
        # items, and the push deliveries last (their RETURNING says which the worker takes over).
        parts: list[Rows] = []
        if inbox_rows:
            parts.append(Rows(orm.notifications, inbox_rows, ignore_conflicts=True))
            parts.append(self.outbox.rows(session, inbox_events)[1])
        if held_rows:
            parts.append(Rows(orm.digest_items, held_rows, ignore_conflicts=True))
        staged = None
        if deliveries:
            secrets = {sub.id: sub.secret for _, plan in live for sub in plan.subscriptions}
            staged = stage_deliveries(session, deliveries, self.worker, secrets)
            parts.append(staged.rows)
        if parts:
            result = await insert_together(session, parts)
            if staged is not None:
                staged.inserted(set(result.scalars()))
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
        known: dict[str, CooperativeName] = {}
        if ids:
            t = orm.known_cooperatives
            rows = await session.execute(
                select(t.c.id, t.c.name, t.c.kelurahan_name).where(t.c.id.in_(sorted(ids)))
            )
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

    async def queue(
        self,
        session: AsyncSession,
        deliveries: list[dict[str, Any]],
        secrets: Mapping[str, str | None] | None = None,
    ) -> None:
        await queue_deliveries(session, deliveries, self.worker, secrets)


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


async def load_rules_for(session: AsyncSession, event_types: set[str]) -> dict[str, list[RoutingRule]]:
    """The enabled rules of these event types, by type, each list in the table's order."""
    t = orm.routing_rules
    found: dict[str, list[RoutingRule]] = {}
    if not event_types:
        return found
    rows = await session.execute(
        select(t).where(t.c.event_type.in_(sorted(event_types)), t.c.enabled).order_by(t.c.created_at, t.c.id)
    )
    for row in rows:
        found.setdefault(row.event_type, []).append(rule_from_row(row))
    return found


# --- repeat window -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowClaim:
    key: str
    event_type: str
    data: Mapping[str, Any]
    event_id: str
    occurred: datetime  # event time


def _claim_windows_statement() -> Any:
    """PostgreSQL: the first claim of each condition in a batch, decided by one upsert whose rows come
    as arrays (`array_rows`: one statement text whatever the batch's size)."""
    w = orm.alert_windows
    rows = array_rows(
        condition_key=String,
        event_type=String,
        cooperative_id=String,
        last_event_id=String,
        last_notified_at=DateTime(timezone=True),
    )
    statement = pg_insert(w).from_select(
        ["condition_key", "event_type", "cooperative_id", "last_event_id", "last_notified_at", "suppressed"],
        select(*rows.c, literal_column("0")),
    )
    return statement.on_conflict_do_update(
        index_elements=[w.c.condition_key],
        set_={
            "last_event_id": statement.excluded.last_event_id,
            "last_notified_at": statement.excluded.last_notified_at,
        },
        where=w.c.last_notified_at
        <= statement.excluded.last_notified_at - bindparam("window", type_=Interval),
    ).returning(w.c.condition_key)


def _count_suppressed_statement() -> Any:
    """PostgreSQL: the conditions of a batch announced within their window count one more suppression,
    each at its own event's time (arrays again)."""
    w = orm.alert_windows
    lost = array_rows(condition_key=String, occurred=DateTime(timezone=True))
    return (
        update(w)
        .where(w.c.condition_key == lost.c.condition_key)
        .values(suppressed=w.c.suppressed + 1, last_suppressed_at=lost.c.occurred)
    )


_CLAIM_WINDOWS = _claim_windows_statement()
_COUNT_SUPPRESSED = _count_suppressed_statement()


async def claim_windows(session: AsyncSession, claims: Sequence[WindowClaim], window_s: int) -> list[bool]:
    """`claim_window` for each claim, in order: True where the event may be announced.

    On PostgreSQL the first claim of each condition is decided for the whole batch by one upsert (per
    row as atomic as one claim); a condition claimed again in the same batch is decided after it, one
    by one, which keeps the order's effect. SQLite (the embedded single-process mode) claims one by
    one: its upsert cannot compute each row's window bound from the inserted row."""
    allowed = [False] * len(claims)
    first: dict[str, int] = {}
    again: list[int] = []
    for index, claim in enumerate(claims):
        if claim.key in first:
            again.append(index)
        else:
            first[claim.key] = index
    if not on_sqlite(session) and len(first) > 1:
        ordered = sorted(first.values())
        won = set(
            (
                await session.execute(
                    _CLAIM_WINDOWS,
                    {
                        "condition_key": [claims[i].key for i in ordered],
                        "event_type": [claims[i].event_type for i in ordered],
                        "cooperative_id": [claims[i].data.get("cooperative_id") for i in ordered],
                        "last_event_id": [claims[i].event_id for i in ordered],
                        "last_notified_at": [claims[i].occurred for i in ordered],
                        "window": timedelta(seconds=window_s),
                    },
                )
            ).scalars()
        )
        lost = [i for i in ordered if claims[i].key not in won]
        for i in ordered:
            allowed[i] = claims[i].key in won
        if lost:
            await session.execute(
                _COUNT_SUPPRESSED,
                {
                    "condition_key": [claims[i].key for i in lost],
                    "occurred": [claims[i].occurred for i in lost],
                },
            )
    else:
        again = sorted([*first.values(), *again])
    for i in again:
        c = claims[i]
        allowed[i] = await claim_window(
            session, c.key, c.event_type, c.data, c.event_id, c.occurred, window_s
        )
    return allowed


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
    secret: str | None = None
    whole_city: bool = True
    kecamatan_codes: frozenset[str] = frozenset()

    def covers(self, data: Mapping[str, Any]) -> bool:
        """The whole city, or one of the kecamatan the event concerns."""
        return self.whole_city or not self.kecamatan_codes.isdisjoint(event_kecamatans(data))


async def subscriptions_for(
    session: AsyncSession, event_types: set[str]
) -> dict[str, list[MatchedSubscription]]:
    """The active subscriptions to these event types with their scopes, by type, oldest first (one
    query; the subscriptions table is small and each event is matched against it in memory)."""
    found: dict[str, list[MatchedSubscription]] = {}
    if not event_types:
        return found
    s, st, sc = orm.subscriptions, orm.subscription_types, orm.subscription_scopes
    rows = await session.execute(
        select(
            s.c.id, s.c.channel, s.c.target, s.c.secret, s.c.whole_city, st.c.event_type, sc.c.kecamatan_code
        )
        .join(st, st.c.subscription_id == s.c.id)
        .outerjoin(sc, sc.c.subscription_id == s.c.id)
        .where(st.c.event_type.in_(sorted(event_types)), s.c.active)
        .order_by(s.c.created_at, s.c.id)
    )
    scopes: dict[tuple[str, str], set[str]] = {}
    heads: dict[tuple[str, str], Any] = {}
    for row in rows:
        key = (row.event_type, row.id)
        heads.setdefault(key, row)
        if row.kecamatan_code:
            scopes.setdefault(key, set()).add(row.kecamatan_code)
    for (event_type, sub_id), row in heads.items():
        found.setdefault(event_type, []).append(
            MatchedSubscription(
                sub_id,
                row.channel,
                row.target,
                row.secret,
                bool(row.whole_city),
                frozenset(scopes.get((event_type, sub_id), ())),
            )
        )
    return found


def webhook_body(event: CloudEvent, message: Message, link: str | None) -> bytes:
    """The event's CloudEvent as received, plus the rendered Indonesian text as CloudEvents extension
    attributes (`kkmptitle`, `kkmpmessage`, `kkmplink`): a WhatsApp or SMS gateway can forward the
    text as it is, while any other receiver reads the standard attributes and `data`."""
    envelope = event.model_dump(mode="json", exclude_none=True)
    envelope.update(kkmptitle=message.title, kkmpmessage=message.body)
    if link:
        envelope["kkmplink"] = link
    return orjson.dumps(envelope)
