"""The figures the refresher derives and stores: each cooperative's health, each kecamatan's counts
and the city row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm

h = orm.cooperative_health
k = orm.kecamatan_figures


async def health_levels(session: AsyncSession, ids: Sequence[str]) -> dict[str, Any]:
    """The stored level (and since when) of these cooperatives."""
    return {
        row.cooperative_id: row
        for row in await session.execute(
            select(h.c.cooperative_id, h.c.level, h.c.level_since).where(h.c.cooperative_id.in_(list(ids)))
        )
    }


async def save_health(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Upsert health rows; the caller sorts them by id (one lock order for every writer)."""
    statement = upsert_insert(session)(h)
    statement = statement.on_conflict_do_update(
        index_elements=[h.c.cooperative_id],
        set_={c: statement.excluded[c] for c in rows[0] if c != "cooperative_id"},
    )
    await session.execute(statement, rows)


async def response_figures(session: AsyncSession, codes: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """The stored (needs responded, median response seconds) of these kecamatan."""
    return {
        row.kecamatan_code: (row.needs_responded, row.median_response_seconds)
        for row in await session.execute(
            select(k.c.kecamatan_code, k.c.needs_responded, k.c.median_response_seconds).where(
                k.c.kecamatan_code.in_(list(codes))
            )
        )
    }


async def save_kecamatan(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Upsert kecamatan (or city) rows."""
    statement = upsert_insert(session)(k)
    statement = statement.on_conflict_do_update(
        index_elements=[k.c.kecamatan_code],
        set_={c: statement.excluded[c] for c in rows[0] if c != "kecamatan_code"},
    )
    await session.execute(statement, rows)


async def kecamatan_rows(session: AsyncSession) -> list[Any]:
    """Every stored kecamatan row (not the city's)."""
    return list((await session.execute(select(k).where(k.c.kecamatan_code != orm.ALL))).all())


async def city_median(session: AsyncSession) -> tuple[float | None] | None:
    """The city row's median response seconds, as a one-tuple (None: no city row yet)."""
    row = (
        await session.execute(select(k.c.median_response_seconds).where(k.c.kecamatan_code == orm.ALL))
    ).first()
    return (row[0],) if row is not None else None
