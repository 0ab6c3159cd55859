"""`note_change` / `Database.on_change`: what a transaction noted is heard once it has committed, and
only then; a rollback forgets it."""

from __future__ import annotations

from pathlib import Path

from kkmp_shared.db import Database, note_change
from sqlalchemy import text


async def test_changes_are_heard_after_the_commit_and_never_after_a_rollback(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'changes.db'}")
    heard: list[tuple[str, set[str]]] = []

    async def rows() -> int:
        async with db.read_session() as session:
            return int((await session.execute(text("SELECT count(*) FROM t"))).scalar_one())

    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (id TEXT)"))
        db.on_change("stock", lambda keys: heard.append(("stock", set(keys))))
        db.on_change("cooperative", lambda keys: heard.append(("cooperative", set(keys))))

        async with db.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES ('a')"))
            note_change(session, "stock", ["c1", "c2"])
            note_change(session, "stock", ["c2"])
            assert heard == []  # not before the commit
        assert heard == [("stock", {"c1", "c2"})]
        assert await rows() == 1

        async with db.session() as session:
            async with session.begin():
                await session.execute(text("INSERT INTO t VALUES ('b')"))
                note_change(session, "cooperative", ["c3"])
                await session.rollback()
            async with session.begin():  # the same session again: the rolled-back change is gone
                await session.execute(text("INSERT INTO t VALUES ('c')"))
        assert heard == [("stock", {"c1", "c2"})]

        async with db.transaction() as session:
            note_change(session, "cooperative", ["c4"])
        assert heard[-1] == ("cooperative", {"c4"}) and len(heard) == 2
        assert await rows() == 2
    finally:
        await db.dispose()
