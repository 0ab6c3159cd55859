"""The idempotency keys' rows: claimed in the transaction of the request they guard, answered later.

A concurrent retry blocks on the claimed row (PostgreSQL's unique index; SQLite's single writer) until
the first request commits, then finds its answer; if the first failed, its claim rolled back with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import orm


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    status: int
    body: Any


async def claim(
    session: AsyncSession, scope: str, key: str, fingerprint: str, now: datetime
) -> StoredAnswer | None:
    """None when this transaction holds the key now; else what the key's first request stored."""
    t = orm.idempotency_keys
    insert = upsert_insert(session)
    result = await session.execute(
        insert(t)
        .values(scope=scope, key=key, request_hash=fingerprint, status_code=0, response=None, created_at=now)
        .on_conflict_do_nothing()
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return None
    row = (await session.execute(select(t).where(t.c.scope == scope, t.c.key == key))).one()
    return StoredAnswer(row.request_hash, int(row.status_code), row.response)


async def remember(session: AsyncSession, scope: str, key: str, status: int, body: Any) -> None:
    t = orm.idempotency_keys
    await session.execute(
        update(t).where(t.c.scope == scope, t.c.key == key).values(status_code=status, response=body)
    )


async def forget_older_than(session: AsyncSession, cutoff: datetime) -> None:
    t = orm.idempotency_keys
    await session.execute(delete(t).where(t.c.created_at < cutoff))
