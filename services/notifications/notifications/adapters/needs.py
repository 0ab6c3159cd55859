"""Needs watched for escalation (`need_watch`): one row per need, from `need.*` events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm

w = orm.need_watch


async def submitted(session: AsyncSession, values: dict[str, Any]) -> None:
    """A status change that overtook its submission already created the row: fill it in, keep its
    state."""
    statement = upsert_insert(session)(w).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[w.c.need_id],
            set_={k: statement.excluded[k] for k in values if k != "need_id"},
        )
    )


async def acknowledged(session: AsyncSession, values: dict[str, Any]) -> None:
    """The need left `open` at `values["acknowledged_at"]` (the first time counts)."""
    statement = upsert_insert(session)(w).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[w.c.need_id],
            set_={"acknowledged_at": values["acknowledged_at"], "updated_at": statement.excluded.updated_at},
            where=w.c.acknowledged_at.is_(None),
        )
    )


async def due(session: AsyncSession, submitted_before: datetime, limit: int) -> list[Any]:
    """Needs still open and not escalated, submitted before the moment, oldest first, locked for
    this transaction (another scheduler skips them)."""
    rows = await session.execute(
        select(w)
        .where(
            w.c.acknowledged_at.is_(None), w.c.escalated_at.is_(None), w.c.submitted_at <= submitted_before
        )
        .order_by(w.c.submitted_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows.all())


async def escalated(
    session: AsyncSession, need_ids: Sequence[str], moment: datetime, updated_at: datetime
) -> None:
    await session.execute(
        update(w).where(w.c.need_id.in_(list(need_ids))).values(escalated_at=moment, updated_at=updated_at)
    )
