"""The directory's read API (`get`, `many`, `all`, `in_kecamatan`) on both databases."""

from __future__ import annotations

from kkmp_shared import clock
from kkmp_shared.db import Database
from kkmp_shared.directory import CooperativeDirectory, add_directory_table
from sqlalchemy import MetaData


def _entry(n: int, kecamatan: str) -> dict[str, object]:
    return {
        "id": f"coop-{n}",
        "name": f"KKMP {n}",
        "kelurahan_code": f"{kecamatan}.100{n}",
        "kecamatan_code": kecamatan,
        "kelurahan_name": None,
        "lat": None,
        "lon": None,
        "status": "operating",
        "business_units": ["sembako"],
        "member_count": n,
        "updated_at": clock.now(),
    }


async def test_reads_by_id_by_ids_and_by_kecamatan(database_url: str) -> None:
    metadata = MetaData()
    directory = CooperativeDirectory(add_directory_table(metadata))
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await (await session.connection()).run_sync(metadata.create_all)
            for n, kecamatan in ((1, "35.78.01"), (2, "35.78.01"), (3, "35.78.02")):
                await directory.upsert(session, _entry(n, kecamatan))
        async with db.read_session() as session:
            one = await directory.get(session, "coop-2")
            missing = await directory.get(session, "nope")
            # More ids than one IN list takes: the reads are split, the answer is one dict.
            many = await directory.many(session, [f"coop-{n}" for n in range(2500)])
            everyone = await directory.all(session)
            first = await directory.in_kecamatan(session, ["35.78.01", "35.78.01"])
    finally:
        await db.dispose()
    assert one is not None and one.name == "KKMP 2" and one.business_units == ["sembako"]
    assert one.member_count == 2
    assert missing is None
    assert sorted(many) == ["coop-1", "coop-2", "coop-3"] and many["coop-3"].kecamatan_code == "35.78.02"
    assert len(everyone) == 3
    assert sorted(c.id for c in first) == ["coop-1", "coop-2"]
