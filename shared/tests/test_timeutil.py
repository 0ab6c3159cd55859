"""`kkmp_shared.timeutil`: instants go in as anything aware or naive-UTC and come back aware in UTC, with
the same order, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kkmp_shared.clock import WIB
from kkmp_shared.db import Database
from kkmp_shared.timeutil import UtcDateTime, as_utc, zone
from sqlalchemy import Column, Integer, MetaData, Table, insert, select


def test_as_utc_reads_naive_as_utc_and_converts_aware() -> None:
    assert as_utc(None) is None
    assert as_utc(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    converted = as_utc(datetime(2026, 1, 1, 7, tzinfo=WIB))
    assert converted == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert converted.tzinfo is UTC and converted.isoformat() == "2026-01-01T00:00:00+00:00"


def test_zone_falls_back_to_the_fixed_indonesian_offsets_only_for_their_names() -> None:
    assert datetime(2026, 1, 1, tzinfo=zone("Asia/Jakarta")).utcoffset() == timedelta(hours=7)
    assert datetime(2026, 1, 1, tzinfo=zone("Asia/Jayapura")).utcoffset() == timedelta(hours=9)


async def test_utc_datetime_round_trips_aware_in_utc_and_sorts_by_instant(database_url: str) -> None:
    metadata = MetaData()
    table = Table("moments", metadata, Column("id", Integer, primary_key=True), Column("at", UtcDateTime))
    db = Database(database_url)
    # 23:30 UTC and 00:30 of the next day in WIB (= 17:30 UTC): text order of the local times differs.
    late_utc = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    early_wib = datetime(2026, 3, 2, 0, 30, tzinfo=WIB)
    naive = datetime(2026, 3, 1, 12, 0)
    try:
        async with db.transaction() as session:
            await (await session.connection()).run_sync(metadata.create_all)
            await session.execute(
                insert(table), [{"id": 1, "at": late_utc}, {"id": 2, "at": early_wib}, {"id": 3, "at": naive}]
            )
        async with db.read_session() as session:
            rows = (await session.execute(select(table).order_by(table.c.at))).all()
            since = (await session.execute(select(table.c.id).where(table.c.at > early_wib))).scalars().all()
    finally:
        await db.dispose()
    assert [row.id for row in rows] == [3, 2, 1]
    assert all(row.at.tzinfo is UTC for row in rows)
    assert [row.at for row in rows] == [naive.replace(tzinfo=UTC), early_wib, late_utc]
    assert list(since) == [1]
    assert rows[1].at.astimezone(timezone(timedelta(hours=7))).hour == 0
