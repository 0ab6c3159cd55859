"""The delivery worker: sends the `deliveries` rows (an outbox of push messages) in the background.

New rows are handed to it when their transaction commits (`queue_deliveries`), the rest it claims
with a lease; it sends at most `delivery_per_target` at once to one target, records each burst's
attempts together once its sends are out, and stages `notification.delivered` / `.failed` in that
same unit of work. Why it works this way: docs/decisions/0005-notifications-push-deliveries.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from kkmp_shared.db import Rows
from kkmp_shared.events.contracts import EventData, NotificationDelivered, NotificationFailed
from kkmp_shared.unit_of_work import UnitOfWork
from prometheus_client import Counter

from notifications.adapters import deliveries as store
from notifications.adapters.channels import AttemptResult, EmailSender, WebhookSender
from notifications.adapters.deliveries import hand_over_after_commit, wake_after_commit
from notifications.domain.delivery import backoff_delay, next_outcome
from notifications.service_layer.common import UnitOfWorkFactory, now
from notifications.settings import NotificationsSettings

log = logging.getLogger("kkmp.notifications.deliveries")

ATTEMPTS = Counter(
    "kkmp_notification_delivery_attempts_total", "Push delivery attempts", ["channel", "outcome"]
)

# Rows claimed ahead per sending slot of a target (see the module docstring for the lease bound).
CLAIMED_PER_SLOT = 4


@dataclass(frozen=True)
class Claimed:
    """A delivery the worker holds (claimed, or handed over at commit): what an attempt needs."""

    id: str
    channel: Literal["email", "webhook"]
    target: str
    recipient: str
    user_id: str | None
    subscription_id: str | None
    event_id: str
    event_type: str
    cooperative_id: str | None
    subject: str | None
    payload: str
    attempts: int  # counting the attempt about to be made
    max_attempts: int
    secret: str | None = None
    subscription_active: bool = True

    @classmethod
    def of(cls, values: Mapping[Any, Any], *, secret: str | None, subscription_active: bool) -> Claimed:
        return cls(
            id=values["id"],
            channel="webhook" if values["channel"] == "webhook" else "email",
            target=values["target"],
            recipient=values["recipient"],
            user_id=values.get("user_id"),
            subscription_id=values.get("subscription_id"),
            event_id=values["event_id"],
            event_type=values["event_type"],
            cooperative_id=values.get("cooperative_id"),
            subject=values.get("subject"),
            payload=values["payload"],
            attempts=values["attempts"],
            max_attempts=values["max_attempts"],
            secret=secret,
            subscription_active=subscription_active,
        )


async def queue_deliveries(
    uow: UnitOfWork,
    rows: list[dict[str, Any]],
    worker: DeliveryWorker | None,
    secrets: Mapping[str, str | None] | None = None,
) -> None:
    """Insert new `deliveries` rows (pending, due now) in the unit of work. Those the worker has
    room for are inserted claimed by it instead and handed over when the transaction commits, so
    they are sent without a claim's round trips; `secrets` are their subscriptions' secrets."""
    if not rows:
        return
    staged = stage_deliveries(uow, rows, worker, secrets)
    staged.inserted(await store.insert(uow.session, [staged.rows]))


@dataclass
class StagedDeliveries:
    """New deliveries ready to insert (`rows`, with RETURNING of their ids: the last part of an
    `insert_together`); `inserted` takes the ids the insert returned."""

    rows: Rows
    inserted: Callable[[set[str]], None]


def stage_deliveries(
    uow: UnitOfWork,
    rows: list[dict[str, Any]],
    worker: DeliveryWorker | None,
    secrets: Mapping[str, str | None] | None = None,
) -> StagedDeliveries:
    """`queue_deliveries` without the insert: the worker's room is reserved for those it takes over
    (released if the transaction fails), and the rows are filled in accordingly."""
    taken = worker.reserve([row["target"] for row in rows]) if worker is not None else [False] * len(rows)
    reserved: Tally[str] = Tally(row["target"] for row, ok in zip(rows, taken, strict=True) if ok)
    handed: list[Claimed] = []
    if worker is not None and reserved:
        # Registered before the insert: if anything fails from here, the rollback frees the room.
        hand_over_after_commit(uow.session, worker, reserved, handed)
    lease_until = now() + timedelta(seconds=worker.settings.delivery_lease_s) if worker is not None else None
    for row, ok in zip(rows, taken, strict=True):
        if ok:
            row.update(status="delivering", attempts=1, lease_until=lease_until)
        else:
            row.setdefault("lease_until", None)  # the same columns in every row: one statement

    def inserted(ids: set[str]) -> None:
        # RETURNING gives the ids that were inserted, not those that conflicted with a row already
        # queued: a conflict was not inserted, so it is not ours to send.
        if worker is None:
            return
        handed.extend(
            Claimed.of(
                row, secret=(secrets or {}).get(row.get("subscription_id") or ""), subscription_active=True
            )
            for row, ok in zip(rows, taken, strict=True)
            if ok and row["id"] in ids
        )
        if not all(taken):
            wake_after_commit(uow.session, worker.wake)

    return StagedDeliveries(store.new_rows(rows), inserted)


# --- the worker -----------------------------------------------------------------------------------------


class DeliveryWorker:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        settings: NotificationsSettings,
        *,
        webhook: WebhookSender | None = None,
        email: EmailSender | None = None,
    ) -> None:
        # Claims and recordings are transactions of their own, after (not inside) a consumer's.
        self.unit_of_work = unit_of_work
        self.settings = settings
        self.webhook = webhook or WebhookSender(settings)
        self.email = email or EmailSender(settings)
        self._wake = asyncio.Event()
        # Claimed rows waiting for a slot, by target; attempts in flight, by delivery id and by target.
        self._queued: dict[str, deque[Claimed]] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._sending: Tally[str] = Tally()
        # Attempts that ended and are not recorded yet; True while a task is recording them.
        self._ended: list[tuple[Claimed, datetime, AttemptResult]] = []
        self._recording = False
        # Set when the last attempt in flight ends (recording waits for it, see `sends_first`).
        self._idle = asyncio.Event()
        # Room promised to transactions that have not committed yet (see `reserve`), by target.
        self._reserved: Tally[str] = Tally()
        self._random = random.Random()
        self._more_due = False
        # Whether due rows may be waiting in the table that this worker left there (room, caps) or
        # was told about (`wake`); the poll looks anyway.
        self._backlog = True
        self._stopping = False
        # How many times the worker has looked for due rows (woken or polled): tests read it.
        self.dispatches = 0

    def wake(self) -> None:
        self._backlog = True
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queued.values())

    @property
    def promised(self) -> int:
        """Rows promised to transactions that have not ended yet (see `reserve`)."""
        return sum(self._reserved.values())

    @property
    def _room(self) -> int:
        """How many more rows this worker may hold (queued, in flight or promised)."""
        held = self.queued + self.inflight + self.promised
        return self.settings.delivery_concurrency * CLAIMED_PER_SLOT - held

    @property
    def _target_cap(self) -> int:
        return self.settings.delivery_per_target * CLAIMED_PER_SLOT

    def reserve(self, targets: Sequence[str]) -> list[bool]:
        """Which of these new deliveries (by target) the worker takes over when their transaction
        commits: as many as its room and each target's cap allow; `accept` or `release` follows."""
        if self._stopping:
            return [False] * len(targets)
        held = self._held()
        room = self._room
        taken: list[bool] = []
        for target in targets:
            ok = room > 0 and held[target] < self._target_cap
            if ok:
                room -= 1
                held[target] += 1
                self._reserved[target] += 1
            taken.append(ok)
        return taken

    def release(self, reserved: Tally[str]) -> None:
        self._reserved.subtract(reserved)
        self._reserved = +self._reserved  # drop the zeros

    def accept(self, reserved: Tally[str], rows: Sequence[Claimed]) -> None:
        """The transaction that inserted these rows (claimed by this worker) committed: send them."""
        self.release(reserved)
        if self._stopping:
            return  # their leases expire and they are claimed again
        for row in rows:
            self._queued.setdefault(row.target, deque()).append(row)
        self._start_ready()

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
                if claimed and self._more_due and self._room > 0:
                    continue  # the claim saw a full page: there may be more due right now
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.settings.delivery_poll_interval_s)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            # Claimed rows not yet sent are left to their leases (taken up again after a restart).
            self._stopping = True
            self._queued.clear()
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.webhook.close()

    async def dispatch_once(self) -> int:
        """Claim what is due (as much as there is room for) and start what the slots allow."""
        self.dispatches += 1
        rows = await self.claim(self._room) if self._room > 0 else []
        if self._stopping:
            return 0
        for row in rows:
            self._queued.setdefault(row.target, deque()).append(row)
        self._start_ready()
        return len(rows)

    def _held(self) -> Tally[str]:
        held: Tally[str] = Tally({t: len(q) for t, q in self._queued.items()})
        held.update(self._sending)
        held.update(self._reserved)
        return held

    async def claim(self, limit: int) -> list[Claimed]:
        moment = now()
        cap = self._target_cap
        held = self._held()
        full = [t for t, n in held.items() if n >= cap]
        async with self.unit_of_work() as uow:
            candidates = await store.due_candidates(uow.session, moment, full, limit * 2)
            self._more_due = len(candidates) == limit * 2
            chosen: list[str] = []
            left = bool(full) or self._more_due
            for cid, target in candidates:
                if len(chosen) >= limit or held[target] >= cap:
                    left = True
                    continue
                held[target] += 1
                chosen.append(cid)
            self._backlog = left
            if not chosen:
                return []
            lease_until = moment + timedelta(seconds=self.settings.delivery_lease_s)
            rows = await store.lease(uow.session, chosen, moment, lease_until)
        return [
            Claimed.of(
                row._mapping, secret=row.secret, subscription_active=row.subscription_active is not False
            )
            for row in rows
        ]

    def _start_ready(self) -> None:
        """Start queued rows while their target and the worker have free slots (no I/O)."""
        if self._stopping:
            return
        for target in list(self._queued):
            queue = self._queued[target]
            while (
                queue
                and self._sending[target] < self.settings.delivery_per_target
                and self.inflight < self.settings.delivery_concurrency
            ):
                row = queue.popleft()
                self._sending[target] += 1
                self._inflight[row.id] = asyncio.create_task(self._attempt(row), name=f"delivery:{row.id}")
            if not queue:
                del self._queued[target]

    async def _attempt(self, row: Claimed) -> None:
        started = now()
        try:
            result = await self.send(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a sender must not kill the worker or lose the row
            log.exception("delivery %s raised", row.id)
            result = AttemptResult(False, True, "error", error=f"internal: {exc!r}"[:500])
        finally:
            # The slot is free as soon as the receiver answered: the next row for this target goes
            # out now, while this attempt is being recorded.
            self._inflight.pop(row.id, None)
            self._sending[row.target] -= 1
            if self._sending[row.target] <= 0:
                del self._sending[row.target]
            self._start_ready()
            if self._needs_refill(row.target):
                self._wake.set()
            if not self._inflight:
                self._idle.set()
        await self._record_ended(row, started, result)

    def _needs_refill(self, target: str) -> bool:
        """Claim again, if rows were left in the table, once the target's queue is half gone (not
        after every attempt: a claim per attempt would cost a transaction per delivery), or when
        slots of the worker are idle."""
        if not self._backlog:
            return False
        queued = len(self._queued.get(target, ()))
        half = self.settings.delivery_per_target * CLAIMED_PER_SLOT // 2
        return queued < half or self.inflight < self.settings.delivery_concurrency // 2

    async def _record_ended(self, row: Claimed, started: datetime, result: AttemptResult) -> None:
        """Group commit: the first attempt to end records every attempt that ends meanwhile, once
        the sends in flight are done (or `delivery_record_delay_ms` has passed)."""
        self._ended.append((row, started, result))
        if self._recording:
            return
        self._recording = True
        try:
            while self._ended:
                await self.sends_first()
                batch, self._ended = self._ended, []
                try:
                    await self.record_many(batch)
                except Exception:
                    # The leases expire and the rows are attempted again: at-least-once, never lost.
                    log.exception("could not record %d delivery attempts", len(batch))
        finally:
            self._recording = False

    async def sends_first(self) -> None:
        """Let a burst's sends go out before its attempts are recorded and before the outbox relay
        publishes this process's events (`OutboxRelay.before_drain`): both take the same process's
        CPU as the sends. Waits until no attempt is in flight, at most `delivery_record_delay_ms`: a
        steady stream is still recorded and published that often."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.delivery_record_delay_ms / 1000
        while self._inflight and not self._stopping:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                return

    async def send(self, row: Claimed) -> AttemptResult:
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

    async def record(self, row: Claimed, started: datetime, result: AttemptResult) -> None:
        await self.record_many([(row, started, result)])

    async def record_many(self, ended: list[tuple[Claimed, datetime, AttemptResult]]) -> None:
        """Write the attempts and the rows' new states, and stage their events, in one transaction."""
        moment = now()
        attempts_rows: list[dict[str, Any]] = []
        # Rows whose new values are equal share one UPDATE (a burst of successes is one statement).
        groups: dict[tuple[Any, ...], list[Any]] = {}
        outcomes: dict[str, str] = {}
        for row, started, result in ended:
            attempts = row.attempts  # already counts this attempt: the claim incremented it
            outcome = next_outcome(
                succeeded=result.ok,
                retryable=result.retryable,
                attempts=attempts,
                max_attempts=row.max_attempts,
            )
            outcomes[row.id] = outcome
            ATTEMPTS.labels(row.channel, result.outcome).inc()
            attempts_rows.append(
                {
                    "delivery_id": row.id,
                    "number": attempts,
                    "started_at": started,
                    "duration_ms": result.duration_ms,
                    "outcome": result.outcome,
                    "status_code": result.status_code,
                    "error": result.error,
                }
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
            groups.setdefault(tuple(sorted(values.items())), []).append(row.id)
        rows = {row.id: (row, result) for row, _, result in ended}
        async with self.unit_of_work() as uow:
            changed = await store.record_attempts(uow.session, attempts_rows, groups)
            events: list[EventData] = []
            for delivery_id in sorted(changed):
                row, result = rows[delivery_id]
                event_data = self._outcome_event(row, outcomes[delivery_id], result, moment)
                if event_data is not None:
                    events.append(event_data)
            await uow.publish_many(events)
        for row, _, result in ended:
            log.info(
                "delivery %s (%s) attempt %d: %s -> %s",
                row.id,
                row.channel,
                row.attempts,
                result.outcome,
                outcomes[row.id],
                extra={"event_id": row.event_id, "cooperative_id": row.cooperative_id},
            )

    @staticmethod
    def _outcome_event(
        row: Claimed, outcome: str, result: AttemptResult, moment: datetime
    ) -> EventData | None:
        common: dict[str, Any] = {
            "delivery_id": row.id,
            "channel": row.channel,
            "recipient": row.user_id
            or (f"subscription:{row.subscription_id}" if row.subscription_id else row.recipient),
            "source_event_id": row.event_id,
            "source_event_type": row.event_type,
            "cooperative_id": row.cooperative_id,
            "attempts": row.attempts,
        }
        if outcome == "delivered":
            return NotificationDelivered(**common, delivered_at=moment)
        if outcome == "failed":
            error = (result.error or result.outcome)[:1000]
            return NotificationFailed(**common, error=error, failed_at=moment)
        return None
