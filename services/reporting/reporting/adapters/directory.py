"""The cooperative directory as reporting holds it (the common library's `known_cooperatives` table,
kept by the directory events)."""

from __future__ import annotations

from kkmp_shared.directory import CooperativeDirectory, KnownCooperative
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.sql import chunked

d = orm.known_cooperatives
# The common library's reads and writes of the table (one cooperative by id, the event handlers).
directory = CooperativeDirectory(d)


async def known_cooperatives(session: AsyncSession, ids: set[str]) -> dict[str, KnownCooperative]:
    """Directory entries for a set of ids (one query), as the common directory returns them."""
    found: dict[str, KnownCooperative] = {}
    for chunk in chunked(sorted(ids), 1000):
        for row in (await session.execute(select(d).where(d.c.id.in_(chunk)))).all():
            found[row.id] = KnownCooperative(
                id=row.id,
                name=row.name,
                kelurahan_code=row.kelurahan_code,
                kecamatan_code=row.kecamatan_code,
                kelurahan_name=row.kelurahan_name,
                lat=row.lat,
                lon=row.lon,
                status=row.status,
                business_units=list(row.business_units or []),
                member_count=row.member_count or 0,
            )
    return found
