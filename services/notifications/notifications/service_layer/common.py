"""Small helpers every use case shares: clock, ids, dialect-aware upserts, UTC normalisation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from kkmp_shared import clock
from kkmp_shared.db import upsert_insert
from kkmp_shared.timeutil import as_utc
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

# Ids made up for things that are not events on the bus (escalations, digests, announcements) are
# derived from what they are about, so doing the same thing twice yields the same id (and no copy).
NAMESPACE = uuid.UUID("6a1f6a52-7d1b-4f0e-9c39-3b7c4b0b5e10")


def now() -> datetime:
    return clock.now()


utc = as_utc  # this service's name for it


def new_id() -> str:
    return str(uuid.uuid4())


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def insert_for(session: AsyncSession, table: Table) -> Any:
    """INSERT with ON CONFLICT support in the session's dialect."""
    return upsert_insert(session)(table)
