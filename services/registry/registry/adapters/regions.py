"""Queries of the regions (kecamatan, kelurahan): reference data loaded from the CSVs at start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import orm
from registry.adapters.rows import chunks
from registry.domain.rules import Region

# Rows per INSERT of the region upsert: both databases cap bound parameters per statement (a province's
# or the country's 83,000 kelurahan would not fit in one).
REGION_CHUNK = 1000


def _kelurahan_query() -> Any:
    return select(orm.kelurahan, orm.kecamatan.c.name.label("kecamatan_name")).join(
        orm.kecamatan, orm.kecamatan.c.code == orm.kelurahan.c.kecamatan_code
    )


async def kelurahan_by_code(session: AsyncSession, code: str) -> Any:
    """The kelurahan row (with `kecamatan_name`), or None."""
    return (await session.execute(_kelurahan_query().where(orm.kelurahan.c.code == code))).first()


async def kelurahan_by_codes(session: AsyncSession, codes: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in chunks(codes):
        for row in await session.execute(_kelurahan_query().where(orm.kelurahan.c.code.in_(chunk))):
            found[row.code] = row
    return found


async def known_kecamatan(session: AsyncSession, codes: Sequence[str]) -> set[str]:
    return set(
        (await session.execute(select(orm.kecamatan.c.code).where(orm.kecamatan.c.code.in_(codes)))).scalars()
    )


async def kecamatan_list(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(select(orm.kecamatan).order_by(orm.kecamatan.c.code))
    return [dict(r._mapping) for r in rows]


async def kelurahan_list(session: AsyncSession, kecamatan_code: str | None) -> list[dict[str, Any]]:
    query = select(orm.kelurahan).order_by(orm.kelurahan.c.code)
    if kecamatan_code:
        query = query.where(orm.kelurahan.c.kecamatan_code == kecamatan_code)
    return [dict(r._mapping) for r in await session.execute(query)]


async def counts(session: AsyncSession) -> dict[str, int]:
    kec = (await session.execute(select(func.count()).select_from(orm.kecamatan))).scalar_one()
    kel = (await session.execute(select(func.count()).select_from(orm.kelurahan))).scalar_one()
    return {"kecamatan": kec, "kelurahan": kel}


async def upsert(session: AsyncSession, kecamatan: Sequence[Region], kelurahan: Sequence[Region]) -> None:
    """Insert the regions, or update those already there: loading twice never duplicates."""
    insert = upsert_insert(session)
    for table, rows in (
        (
            orm.kecamatan,
            [
                {"code": r.code, "name": r.name, "city_code": r.parent_code, "lat": r.lat, "lon": r.lon}
                for r in kecamatan
            ],
        ),
        (
            orm.kelurahan,
            [
                {"code": r.code, "name": r.name, "kecamatan_code": r.parent_code, "lat": r.lat, "lon": r.lon}
                for r in kelurahan
            ],
        ),
    ):
        for start in range(0, len(rows), REGION_CHUNK):
            chunk = rows[start : start + REGION_CHUNK]
            stmt = insert(table).values(chunk)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.code], set_={c: stmt.excluded[c] for c in chunk[0] if c != "code"}
            )
            await session.execute(stmt)
