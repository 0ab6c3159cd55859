"""Sessions of `kkmp_shared.db.Database`: what a transaction noted (`note_change`) is heard once it has
committed and only then; a read session refuses to write; `one_of` selects the same rows on both
databases, with one statement text on PostgreSQL whatever the list's length; `insert_many` inserts in
order, skips conflicts and returns what it inserted, on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kkmp_shared.db import (
    Database,
    ReadSessionWrite,
    Rows,
    insert_many,
    insert_together,
    is_sqlite,
    note_change,
    on_sqlite,
    one_of,
)
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, event, insert, select, text, update


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


# One text column: the table of the read-session and `one_of` tests.
IDS = Table("t", MetaData(), Column("id", String(10), primary_key=True))


async def with_tables(url: str, table: Table) -> Database:
    """A `Database` on `url` with `table` (and its MetaData's other tables) created."""
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
    except BaseException:
        await db.dispose()
        raise
    return db


async def test_a_read_session_refuses_to_write(database_url: str) -> None:
    """On PostgreSQL a read session is in autocommit, so a write through it would stay written even
    if the request failed afterwards: it is refused before it reaches the database, on both backends."""
    table = IDS
    db = await with_tables(database_url, table)
    try:
        async with db.transaction() as session:
            await session.execute(insert(table).values(id="a"))
        for statement in (
            insert(table).values(id="b"),
            update(table).values(id="c"),
            delete(table),
        ):
            async with db.read_session() as session:
                with pytest.raises(ReadSessionWrite):
                    await session.execute(statement)
        async with db.read_session() as session:
            assert list((await session.execute(select(table.c.id))).scalars()) == ["a"]
        async with db.session() as session:  # an ordinary session still writes
            await session.execute(insert(table).values(id="b"))
            await session.commit()
        async with db.read_session() as session:
            assert sorted((await session.execute(select(table.c.id))).scalars()) == ["a", "b"]
    finally:
        await db.dispose()


async def test_one_of_selects_the_listed_rows_given_now_or_bound_later(database_url: str) -> None:
    backend = "sqlite" if is_sqlite(database_url) else "postgres"
    table = IDS
    db = await with_tables(database_url, table)
    try:
        async with db.transaction() as session:
            await session.execute(insert(table), [{"id": name} for name in ("a", "b", "c", "d")])
        async with db.read_session() as session:
            sqlite = on_sqlite(session)
            assert sqlite == (backend == "sqlite")
            given = select(table.c.id).where(one_of(table.c.id, ["c", "a", "x", "a"], sqlite=sqlite))
            assert sorted((await session.execute(given)).scalars()) == ["a", "c"]
            bound = select(table.c.id).where(one_of(table.c.id, name="ids", sqlite=sqlite))
            sent: list[str] = []

            def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                sent.append(statement)

            event.listen(db.engine.sync_engine, "before_cursor_execute", record)
            try:
                for ids, expected in ((["b"], ["b"]), (["d", "b", "a"], ["a", "b", "d"]), ([], [])):
                    assert sorted((await session.execute(bound, {"ids": ids})).scalars()) == expected
            finally:
                event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        # PostgreSQL gets one text to prepare whatever the length; SQLite's expanding IN a text per length.
        assert len(set(sent)) == (3 if backend == "sqlite" else 1), sent
    finally:
        await db.dispose()


async def test_insert_many_keeps_the_order_skips_conflicts_and_returns_what_it_inserted(
    database_url: str,
) -> None:
    """`insert_many`: rows in the order given (a sequence default follows it: the outbox's `seq` is
    the relay's order), the `shared` values in every row, conflicts skipped and left out of RETURNING;
    on PostgreSQL one statement text whatever the number of rows."""
    backend = "sqlite" if is_sqlite(database_url) else "postgres"
    table = Table(
        "t",
        MetaData(),
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("name", String(10), nullable=False, unique=True),
        Column("note", String(20)),
        Column("batch", String(10), nullable=False),
    )
    db = await with_tables(database_url, table)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            sent.append(statement)

    try:
        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        names = ["m", "c", "x", "a", "q", "b"]
        for part in (names[:4], names[4:]):
            async with db.transaction() as session:
                await insert_many(
                    session,
                    table,
                    [{"name": n, "note": None if n == "x" else f"n-{n}"} for n in part],
                    shared={"batch": "one"},
                )
        async with db.transaction() as session:
            result = await insert_many(
                session,
                table,
                [{"name": n, "note": "again"} for n in ("z", "c", "y", "y")],
                shared={"batch": "two"},
                ignore_conflicts=True,
                returning=table.c.name,
            )
            assert sorted(result.scalars()) == ["y", "z"]
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        async with db.read_session() as session:
            rows = (await session.execute(select(table).order_by(table.c.seq))).all()
        assert [r.name for r in rows] == [*names, "z", "y"]
        assert [r.batch for r in rows] == ["one"] * 6 + ["two"] * 2
        assert [r.note for r in rows][:3] == ["n-m", "n-c", None] and rows[-1].note == "again"
        # Two shapes (plain, and skipping conflicts with RETURNING): one text each, whatever the
        # number of rows (4 and 2 of the first).
        assert len(sent) == 3 and len(set(sent)) == 2, sent
        if backend == "postgres":
            assert all("unnest" in statement for statement in sent)
    finally:
        if event.contains(db.engine.sync_engine, "before_cursor_execute", record):
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        await db.dispose()


async def test_insert_together_writes_several_tables_in_one_statement(database_url: str) -> None:
    """`insert_together`: each part as `insert_many` would insert it (order, shared values, conflicts
    skipped), the last part's RETURNING for the rows it inserted; on PostgreSQL one statement for all
    the tables (data-modifying WITHs), the same text for every number of rows."""
    backend = "sqlite" if is_sqlite(database_url) else "postgres"
    metadata = MetaData()
    notes = Table(
        "notes",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("name", String(10), nullable=False, unique=True),
        Column("batch", String(10), nullable=False),
    )
    sends = Table(
        "sends",
        metadata,
        Column("id", String(10), primary_key=True),
        Column("name", String(10), nullable=False),
    )
    db = await with_tables(database_url, notes)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "INSERT" in statement.upper():
            sent.append(statement)

    try:
        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        inserted: list[list[str]] = []
        for batch, names in (("one", ["m", "c", "x"]), ("two", ["z", "c", "a", "b"])):
            async with db.transaction() as session:
                result = await insert_together(
                    session,
                    [
                        Rows(
                            notes,
                            [{"name": n} for n in names],
                            shared={"batch": batch},
                            ignore_conflicts=True,
                        ),
                        Rows(
                            sends,
                            [{"id": f"s-{n}", "name": n} for n in names],
                            ignore_conflicts=True,
                            returning=sends.c.id,
                        ),
                    ],
                )
                inserted.append(sorted(result.scalars()))
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        assert inserted == [["s-c", "s-m", "s-x"], ["s-a", "s-b", "s-z"]]  # s-c was there already
        async with db.read_session() as session:
            rows = (await session.execute(select(notes).order_by(notes.c.seq))).all()
            names_sent = (await session.execute(select(sends.c.name).order_by(sends.c.id))).scalars().all()
        assert [(r.name, r.batch) for r in rows] == [
            ("m", "one"),
            ("c", "one"),
            ("x", "one"),
            ("z", "two"),
            ("a", "two"),
            ("b", "two"),
        ]
        assert names_sent == ["a", "b", "c", "m", "x", "z"]
        if backend == "postgres":
            assert len(sent) == 2 and len(set(sent)) == 1, sent
            assert sent[0].upper().startswith("WITH") and sent[0].count("unnest") == 2
        else:
            assert len(sent) == 4
        async with db.transaction() as session:
            with pytest.raises(ValueError):
                await insert_together(
                    session,
                    [
                        Rows(sends, [{"id": "r", "name": "r"}], returning=sends.c.id),
                        Rows(notes, [{"name": "r", "batch": "r"}]),
                    ],
                )
    finally:
        if event.contains(db.engine.sync_engine, "before_cursor_execute", record):
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        await db.dispose()


async def test_the_postgresql_pool_hands_back_the_connection_used_last() -> None:
    """LIFO: after connections are returned in turn, the next checkout gets the one returned last
    (whose prepared statements are warm), where FIFO would give the one idle longest."""
    ensure_postgres()
    url = await acreate_database("kkmp_pool_lifo")
    db = Database(url)
    try:
        held = [await db.engine.connect() for _ in range(3)]
        pids = [int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()) for conn in held]
        assert len(set(pids)) == 3
        for conn in held:
            await conn.close()  # back to the pool: pids[0] first, pids[2] last
        for _ in range(3):  # one transaction after another, as a consumer runs them
            async with db.transaction() as session:
                assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() == pids[2]
    finally:
        await db.dispose()
        await adrop_database(url)
