"""Idempotency keys of movement posts: a retried request gets the first answer and has no second effect.

The key is claimed by inserting its row in the same transaction as the movements it guards. A
concurrent retry blocks on that row (PostgreSQL's unique index; SQLite's single writer) until the first
commits, then finds the stored answer; if the first failed, its claim rolled back with it and the retry
runs afresh. The same key with a different body is refused (409) rather than answered wrongly.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from kkmp_shared.db import upsert_insert
from kkmp_shared.errors import conflict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import orm


def request_hash(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def claim(
    session: AsyncSession, scope: str, key: str, fingerprint: str, now: datetime
) -> tuple[int, Any] | None:
    """None when this request holds the key now; else the (status, body) first answered."""
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
    if row.request_hash != fingerprint:
        raise conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request.",
            [{"field": "Idempotency-Key", "message": "reused with a different body"}],
        )
    return int(row.status_code), row.response


async def remember(session: AsyncSession, scope: str, key: str, status: int, body: Any) -> None:
    t = orm.idempotency_keys
    await session.execute(
        update(t).where(t.c.scope == scope, t.c.key == key).values(status_code=status, response=body)
    )
