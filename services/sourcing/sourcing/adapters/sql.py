"""SQL helpers the query modules share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession


async def upsert(
    session: AsyncSession, table: Table, values: dict[str, Any], keys: Sequence[str], update: Sequence[str]
) -> None:
    """INSERT … ON CONFLICT DO UPDATE on either database."""
    statement = upsert_insert(session)(table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys], set_={k: statement.excluded[k] for k in update}
    )
    await session.execute(statement)
