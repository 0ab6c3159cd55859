"""Delivery workers: drain the `deliveries` table (an outbox of push messages) in the background.

Rows are claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never take the same
row; SQLite serialises writers anyway). Each claimed row is sent in its own task, at most
`delivery_concurrency` at once and at most `delivery_per_target` per target, so a hanging receiver
ties up two slots for one timeout and nothing else. Every attempt is written to `delivery_attempts`;
the row then becomes delivered, pending again (exponential backoff with jitter) or failed, and the
matching `notification.delivered.v1` / `notification.failed.v1` is staged in the outbox in that same
transaction. A worker that dies mid-send leaves a lease that expires, and the row is taken up again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter as Tally
from datetime import timedelta
from typing import Any

from kkmp_shared.db import Database
from kkmp_shared.errors import conflict, not_found
from kkmp_shared.events.contracts import NotificationDelivered, NotificationFailed
from kkmp_shared.messaging.outbox import Outbox
from prometheus_client import Counter, Gauge
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.adapters.channels import AttemptResult, EmailSender, WebhookSender
from notifications.domain.delivery import backoff_delay, next_outcome
from notifications.service_layer.common import now
from notifications.settings import NotificationsSettings

log = logging.getLogger("kkmp.notifications.deliveries")

ATTEMPTS = Counter(
    "kkmp_notification_delivery_attempts_total", "Push delivery attempts", ["channel", "outcome"]
)
PENDING = Gauge("kkmp_notification_deliveries_pending", "Push deliveries waiting to be sent")

d = orm.deliveries


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        settings: NotificationsSettings,
        *,
        webhook: WebhookSender | None = None,
        email: EmailSender | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.webhook = webhook or WebhookSender(settings)
        self.email = email or EmailSender(settings)
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._per_target: Tally[str] = Tally()
        self._random = random.Random()

    def wake(self) -> None:
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def run(self) -> None:
        try:
            while True:
                try:
                    claimed = await self.dispatch_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("delivery dispatch failed; trying again shortly")
                    claimed = 0
                if claimed and self.inflight < self.settings.delivery_concurrency:
                    continue  # there may be more due right now
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.settings.delivery_poll_interval_s)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            for task in list(self._inflight.values()):
                task.cancel()
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
            await self.webhook.close()

    async def dispatch_once(self) -> int:
        free = self.settings.delivery_concurrency - self.inflight
        if free <= 0:
            return 0
        rows = await self.claim(free)
        for row in rows:
            self._per_target[row.target] += 1
            task = asyncio.create_task(self._attempt(row), name=f"delivery:{row.id}")
            self._inflight[row.id] = task
        return len(rows)

    async def claim(self, limit: int) -> list[Any]:
        moment = now()
        saturated = [t for t, n in self._per_target.items() if n >= self.settings.delivery_per_target]
        due = or_(
            and_(d.c.status == "pending", d.c.next_attempt_at <= moment),
            and_(d.c.status == "delivering", d.c.lease_until < moment),
        )
        async with self.db.transaction() as session:
            query = select(d.c.id, d.c.target).where(due)
            if saturated:
                query = query.where(d.c.target.notin_(saturated))
            candidates = (
                await session.execute(
                    query.order_by(d.c.next_attempt_at).limit(limit * 4).with_for_update(skip_locked=True)
                )
            ).all()
            chosen: list[str] = []
            taken: Tally[str] = Tally()
            for cid, target in candidates:
                if len(chosen) >= limit:
                    break
                if self._per_target[target] + taken[target] >= self.settings.delivery_per_target:
                    continue
                taken[target] += 1
                chosen.append(cid)
            if not chosen:
                return []
            await session.execute(
                update(d)
                .where(d.c.id.in_(chosen))
                .values(
                    status="delivering",
                    attempts=d.c.attempts + 1,
                    lease_until=moment + timedelta(seconds=self.settings.delivery_lease_s),
                    updated_at=moment,
                )
            )
            s = orm.subscriptions
            rows = (
                await session.execute(
                    select(d, s.c.secret.label("secret"), s.c.active.label("subscription_active"))
                    .select_from(d.outerjoin(s, s.c.id == d.c.subscription_id))
                    .where(d.c.id.in_(chosen))
                )
            ).all()
        return list(rows)

    async def _attempt(self, row: Any) -> None:
        started = now()
        try:
            result = await self.send(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a sender must not kill the worker or lose the row
            log.exception("delivery %s raised", row.id)
            result = AttemptResult(False, True, "error", error=f"internal: {exc!r}"[:500])
        try:
            await self.record(row, started, result)
        except Exception:
            # The lease expires and the row is attempted again: at-least-once, never lost.
            log.exception("could not record the attempt of delivery %s", row.id)
        finally:
            self._inflight.pop(row.id, None)
            self._per_target[row.target] -= 1
            if self._per_target[row.target] <= 0:
                del self._per_target[row.target]
            self._wake.set()

    async def send(self, row: Any) -> AttemptResult:
        if row.subscription_id is not None and not row.subscription_active:
            return AttemptResult(False, False, "refused", error="the subscription was deactivated")
        if row.channel == "webhook":
            return await self.webhook.send(
                url=row.target,
                body=row.payload.encode(),
                secret=row.secret,
                delivery_id=row.id,
                event_id=row.event_id,
                event_type=row.event_type,
            )
        return await self.email.send(
            to=row.target, subject=row.subject or "KKMP", text=row.payload, delivery_id=row.id
        )

    async def record(self, row: Any, started: Any, result: AttemptResult) -> None:
        moment = now()
        attempts = row.attempts  # already counts this attempt: the claim incremented it
        outcome = next_outcome(
            succeeded=result.ok, retryable=result.retryable, attempts=attempts, max_attempts=row.max_attempts
        )
        ATTEMPTS.labels(row.channel, result.outcome).inc()
        recipient = row.user_id or (
            f"subscription:{row.subscription_id}" if row.subscription_id else row.recipient
        )
        async with self.db.transaction() as session:
            await session.execute(
                orm.delivery_attempts.insert().values(
                    delivery_id=row.id,
                    number=attempts,
                    started_at=started,
                    duration_ms=result.duration_ms,
                    outcome=result.outcome,
                    status_code=result.status_code,
                    error=result.error,
                )
            )
            values: dict[str, Any] = {
                "lease_until": None,
                "updated_at": moment,
                "last_status_code": result.status_code,
                "last_error": result.error,
            }
            if outcome == "delivered":
                values.update(status="delivered", delivered_at=moment)
            elif outcome == "retry":
                delay = backoff_delay(
                    attempts,
                    base_s=self.settings.delivery_backoff_base_s,
                    cap_s=self.settings.delivery_backoff_max_s,
                    rand=self._random.random(),
                )
                values.update(status="pending", next_attempt_at=moment + timedelta(seconds=delay))
            else:
                values.update(status="failed", failed_at=moment)
            changed = await session.execute(
                update(d).where(d.c.id == row.id, d.c.status == "delivering").values(**values)
            )
            if changed.rowcount == 0:
                return  # taken over after a lease expiry; the other attempt decides
            if outcome == "delivered":
                await self.outbox.add(
                    session,
                    NotificationDelivered(
                        delivery_id=row.id,
                        channel=row.channel,
                        recipient=recipient,
                        source_event_id=row.event_id,
                        source_event_type=row.event_type,
                        cooperative_id=row.cooperative_id,
                        attempts=attempts,
                        delivered_at=moment,
                    ),
                )
            elif outcome == "failed":
                await self.outbox.add(
                    session,
                    NotificationFailed(
                        delivery_id=row.id,
                        channel=row.channel,
                        recipient=recipient,
                        source_event_id=row.event_id,
                        source_event_type=row.event_type,
                        cooperative_id=row.cooperative_id,
                        attempts=attempts,
                        error=(result.error or result.outcome)[:1000],
                        failed_at=moment,
                    ),
                )
        log.info(
            "delivery %s (%s) attempt %d: %s -> %s",
            row.id,
            row.channel,
            attempts,
            result.outcome,
            outcome,
            extra={"event_id": row.event_id, "cooperative_id": row.cooperative_id},
        )


async def retry(session: AsyncSession, delivery_id: str, max_attempts: int) -> None:
    """An administrator sends a failed delivery again: a fresh budget of attempts, starting now."""
    row = (await session.execute(select(d.c.status, d.c.attempts).where(d.c.id == delivery_id))).first()
    if row is None:
        raise not_found("delivery")
    if row.status != "failed":
        raise conflict("illegal_state", f"Only a failed delivery can be retried; this one is {row.status}.")
    moment = now()
    await session.execute(
        update(d)
        .where(d.c.id == delivery_id, d.c.status == "failed")
        .values(
            status="pending",
            next_attempt_at=moment,
            max_attempts=row.attempts + max_attempts,
            failed_at=None,
            updated_at=moment,
        )
    )


async def pending_count(session: AsyncSession) -> int:
    count = (
        await session.execute(select(func.count()).select_from(d).where(d.c.status == "pending"))
    ).scalar_one()
    PENDING.set(count)
    return int(count)
