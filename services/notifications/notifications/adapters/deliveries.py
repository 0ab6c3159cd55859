"""The `deliveries` and `delivery_attempts` tables: inserting, claiming, recording and reading push
deliveries, and the after-commit hooks that hand new ones to this process's worker."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from kkmp_shared.db import KkmpSession, Rows, insert_together
from kkmp_shared.timeutil import as_utc as utc
from sqlalchemy import and_, event, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from notifications.adapters import orm

d, a, s = orm.deliveries, orm.delivery_attempts, orm.subscriptions


class HandOver(Protocol):
    """What the after-commit hook needs of a delivery worker."""

    def accept(self, reserved: Tally[str], rows: Sequence[Any]) -> None: ...

    def release(self, reserved: Tally[str]) -> None: ...


# --- wake and hand-off on commit ---------------------------------------------------------------------


def wake_after_commit(session: AsyncSession, wake: Callable[[], None] | None) -> None:
    """Have `wake` called once this session's transaction commits (never before: a worker must not
    look for rows the transaction has not made visible yet), and not at all if it rolls back."""
    if wake is None:
        return
    session.info["deliveries_pending"] = True
    session.info["deliveries_wake"] = wake


def hand_over_after_commit(
    session: AsyncSession, worker: HandOver, reserved: Tally[str], rows: list[Any]
) -> None:
    """`worker.accept(reserved, rows)` once the transaction commits; `worker.release(reserved)` if
    it rolls back. Register it before the insert, so that a failure from there frees the room."""
    session.info.setdefault("deliveries_handoff", []).append((worker, reserved, rows))


@event.listens_for(KkmpSession, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: nothing is visible to others yet
    for worker, reserved, rows in session.info.pop("deliveries_handoff", ()):
        worker.accept(reserved, rows)
    if session.info.pop("deliveries_pending", False):
        wake = session.info.pop("deliveries_wake", None)
        if wake is not None:
            wake()


@event.listens_for(KkmpSession, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    # Rolled back (or the commit failed): the rows were never visible, the worker's room is freed.
    for worker, reserved, _rows in session.info.pop("deliveries_handoff", ()):
        worker.release(reserved)
    session.info.pop("deliveries_pending", None)
    session.info.pop("deliveries_wake", None)


# --- writing -------------------------------------------------------------------------------------------


def new_rows(rows: list[dict[str, Any]]) -> Rows:
    """New deliveries as the last part of an `insert_together`: its result lists the ids inserted
    (a row that conflicts with one already queued is not)."""
    return Rows(d, rows, ignore_conflicts=True, returning=d.c.id)


async def insert(session: AsyncSession, parts: list[Rows]) -> set[str]:
    """Insert `parts` together (`insert_together`), the last being `new_rows`; the ids it inserted."""
    return set((await insert_together(session, parts)).scalars())


async def due_candidates(
    session: AsyncSession, moment: datetime, skip_targets: list[str], limit: int
) -> list[tuple[str, str]]:
    """(id, target) of rows due now (pending, or leased to a worker whose lease ran out), locked
    for this transaction; rows other replicas hold are skipped."""
    due = or_(
        and_(d.c.status == "pending", d.c.next_attempt_at <= moment),
        and_(d.c.status == "delivering", d.c.lease_until < moment),
    )
    query = select(d.c.id, d.c.target).where(due)
    if skip_targets:
        query = query.where(d.c.target.notin_(skip_targets))
    rows = await session.execute(
        query.order_by(d.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    )
    return [(row.id, row.target) for row in rows]


async def lease(session: AsyncSession, ids: list[str], moment: datetime, lease_until: datetime) -> list[Any]:
    """Take these rows for an attempt (counted now) until `lease_until`; their values, with the
    subscription's secret and whether it is still active."""
    await session.execute(
        update(d)
        .where(d.c.id.in_(ids))
        .values(status="delivering", attempts=d.c.attempts + 1, lease_until=lease_until, updated_at=moment)
    )
    return list(
        (
            await session.execute(
                select(d, s.c.secret.label("secret"), s.c.active.label("subscription_active"))
                .select_from(d.outerjoin(s, s.c.id == d.c.subscription_id))
                .where(d.c.id.in_(ids))
                .order_by(d.c.next_attempt_at, d.c.created_at)
            )
        ).all()
    )


async def record_attempts(
    session: AsyncSession, attempts: list[dict[str, Any]], changes: dict[tuple[Any, ...], list[str]]
) -> list[str]:
    """Write the attempts and the rows' new values (`changes`: sorted items of the values -> ids, one
    UPDATE per distinct values); the ids changed. A row no longer leased was taken over after its
    lease expired: the other attempt decides it, so it is not in the answer."""
    await session.execute(a.insert(), attempts)
    changed: list[str] = []
    for key, ids in changes.items():
        result = await session.execute(
            update(d).where(d.c.id.in_(ids), d.c.status == "delivering").values(**dict(key)).returning(d.c.id)
        )
        changed.extend(result.scalars())
    return changed


async def status_and_attempts(session: AsyncSession, delivery_id: str) -> Any:
    return (await session.execute(select(d.c.status, d.c.attempts).where(d.c.id == delivery_id))).first()


async def reopen_failed(session: AsyncSession, delivery_id: str, moment: datetime, max_attempts: int) -> None:
    await session.execute(
        update(d)
        .where(d.c.id == delivery_id, d.c.status == "failed")
        .values(
            status="pending",
            next_attempt_at=moment,
            max_attempts=max_attempts,
            failed_at=None,
            updated_at=moment,
        )
    )


async def pending_count(session: AsyncSession) -> int:
    count = (
        await session.execute(select(func.count()).select_from(d).where(d.c.status == "pending"))
    ).scalar_one()
    return int(count)


# --- reading --------------------------------------------------------------------------------------------


def _visible(owner_id: str | None) -> Any:
    """Every delivery, or (an officer) those of the subscriptions `owner_id` owns."""
    if owner_id is None:
        return literal(True)
    return exists(select(s.c.id).where(s.c.id == d.c.subscription_id, s.c.owner_id == owner_id))


def _out(row: Any, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "target": row.target,
        "recipient": row.recipient,
        "user_id": row.user_id,
        "subscription_id": row.subscription_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "cooperative_id": row.cooperative_id,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "next_attempt_at": utc(row.next_attempt_at) if row.status in ("pending", "delivering") else None,
        "last_error": row.last_error,
        "last_status_code": row.last_status_code,
        "created_at": utc(row.created_at),
        "delivered_at": utc(row.delivered_at),
        "failed_at": utc(row.failed_at),
        "attempt_log": attempts,
    }


async def _attempt_logs(session: AsyncSession, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    logs: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for r in await session.execute(
            select(a).where(a.c.delivery_id.in_(ids)).order_by(a.c.delivery_id, a.c.number, a.c.id)
        ):
            logs[r.delivery_id].append(
                {
                    "number": r.number,
                    "started_at": utc(r.started_at),
                    "duration_ms": r.duration_ms,
                    "outcome": r.outcome,
                    "status_code": r.status_code,
                    "error": r.error,
                }
            )
    return logs


async def page(
    session: AsyncSession,
    owner_id: str | None,
    *,
    status: str | None,
    channel: str | None,
    subscription_id: str | None,
    event_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    query = select(d).where(_visible(owner_id))
    if status:
        query = query.where(d.c.status == status)
    if channel:
        query = query.where(d.c.channel == channel)
    if subscription_id:
        query = query.where(d.c.subscription_id == subscription_id)
    if event_id:
        query = query.where(d.c.event_id == event_id)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        await session.execute(query.order_by(d.c.created_at.desc(), d.c.id).limit(limit).offset(offset))
    ).all()
    logs = await _attempt_logs(session, [r.id for r in rows])
    return [_out(r, logs[r.id]) for r in rows], int(total)


async def one(session: AsyncSession, owner_id: str | None, delivery_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(d).where(d.c.id == delivery_id, _visible(owner_id)))).first()
    if row is None:
        return None
    return _out(row, (await _attempt_logs(session, [row.id]))[row.id])
