"""The cooperative directory as reporting holds it (the common library's `known_cooperatives` table,
kept by the directory events)."""

from __future__ import annotations

from kkmp_shared.directory import CooperativeDirectory, KnownCooperative
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm

d = orm.known_cooperatives
# The common library's reads and writes of the table (one cooperative by id, the event handlers).
directory = CooperativeDirectory(d)


async def known_cooperatives(session: AsyncSession, ids: set[str]) -> dict[str, KnownCooperative]:
    """Directory entries for a set of ids, as the common directory returns them."""
    return await directory.many(session, ids)
