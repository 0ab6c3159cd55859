"""Idempotency keys of movement posts: a retried request gets the first answer and has no second effect;
the same key with a different body is refused (409) rather than answered wrongly."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from kkmp_shared.errors import conflict
from kkmp_shared.unit_of_work import UnitOfWork

from inventory.adapters import idempotency
from inventory.service_layer.commands import IdempotencyKey


def request_hash(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def claim(uow: UnitOfWork, scope: str, key: IdempotencyKey, now: datetime) -> tuple[int, Any] | None:
    """None when this request holds the key now; else the (status, body) first answered."""
    stored = await idempotency.claim(uow.session, scope, key.key, key.request_hash, now)
    if stored is None:
        return None
    if stored.request_hash != key.request_hash:
        raise conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request.",
            [{"field": "Idempotency-Key", "message": "reused with a different body"}],
        )
    return stored.status, stored.body


async def remember(uow: UnitOfWork, scope: str, key: IdempotencyKey, status: int, body: Any) -> None:
    await idempotency.remember(uow.session, scope, key.key, status, body)
