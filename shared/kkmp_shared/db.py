"""Database access: one async engine per service, one session per request or message.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) when a URL is given. SQLite
transactions start with BEGIN IMMEDIATE: a read-then-write transaction would otherwise fail with
SQLITE_BUSY when another writer commits between its read and its write, and stock on hand depends on
exactly that pattern. Migrations are Alembic, one script directory per service, run at start (on
PostgreSQL under an advisory lock per history, so replicas starting together migrate once) or by
`kkmp migrate`.

`Database.read_session()` is for requests that only read. On PostgreSQL its connection is in autocommit:
no BEGIN before the first query and no ROLLBACK when the session closes, two round trips fewer per
request. Each statement still sees one consistent snapshot, which is all a READ COMMITTED transaction
(the default) gives a sequence of reads anyway. A read session must not write, as nothing would roll
back: a write through it raises `ReadSessionWrite`, on SQLite too (where it is otherwise an ordinary
session).

Upserts (INSERT ... ON CONFLICT) have no dialect-neutral construct in SQLAlchemy: `upsert_insert` picks
the SQLite or PostgreSQL `insert` for a session or a `Database`. `one_of` is `column IN (...)` written
for each: `= ANY(array)` on PostgreSQL, an expanding IN on SQLite. `insert_many` inserts a batch of
rows as one statement: arrays unnested on PostgreSQL, an executemany on SQLite.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ARRAY, MetaData, Table, any_, bindparam, event, func, select, text
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Each service owns its own MetaData: several services may be imported into one test process."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class KkmpSession(Session):
    """Session class whose commits can wake the outbox relay of the same process."""


ChangeListener = Callable[[set[str]], None]


def note_change(session: AsyncSession | Session, kind: str, keys: Iterable[str]) -> None:
    """Record that this transaction changed these keys of `kind` (say the ids of the cooperatives whose
    stock it wrote). Once it commits, the listeners given to `Database.on_change(kind, ...)` hear of
    them, once, after the commit (a reader starting then sees the change); a rollback forgets them."""
    session.info.setdefault("changes", {}).setdefault(kind, set()).update(keys)


@event.listens_for(KkmpSession, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("outbox_pending", False):
        wake: Callable[[], None] | None = session.info.get("outbox_wake")
        if wake is not None:
            wake()
    changes: dict[str, set[str]] | None = session.info.pop("changes", None)
    if changes:
        listeners: dict[str, list[ChangeListener]] = session.info.get("change_listeners") or {}
        for kind, keys in changes.items():
            for listener in listeners.get(kind, ()):
                listener(keys)


class ReadSessionWrite(RuntimeError):
    """A write attempted through `Database.read_session()` (a programming error, never user input)."""


@event.listens_for(KkmpSession, "do_orm_execute")
def _refuse_writes_in_read_sessions(state: ORMExecuteState) -> None:
    # On PostgreSQL a read session is in autocommit: a write would be committed at once, with nothing
    # to roll it back when the request fails.
    if state.session.info.get("read_only") and (state.is_insert or state.is_update or state.is_delete):
        raise ReadSessionWrite(f"a read session may not write: {state.statement}")


@event.listens_for(KkmpSession, "after_rollback")
def _forget_pending_after_rollback(session: Session) -> None:
    session.info.pop("outbox_pending", None)
    session.info.pop("changes", None)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


POOLERS = ("none", "pgbouncer")


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pooler: str = "none",
) -> AsyncEngine:
    """The engine of one service. PostgreSQL: `pool_size` connections kept, up to `max_overflow` more
    (default: `pool_size`). `pooler="pgbouncer"`: the server behind is reached through PgBouncer in
    transaction pooling, where consecutive transactions (and, with no cache, the Parse and Execute of
    one statement) may run on different server connections. asyncpg's statement cache and
    SQLAlchemy's are then off (`statement_cache_size`, `prepared_statement_cache_size`), and the
    statements SQLAlchemy still prepares (to learn result columns) get unique names, as the
    SQLAlchemy asyncpg docs recommend for PgBouncer (PgBouncer before 1.21, Debian 12's 1.18, has no
    prepared statement support at all)."""
    if pooler not in POOLERS:
        raise ValueError(f"unknown database pooler {pooler!r} (one of {', '.join(POOLERS)})")
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is deferred).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it costs a round trip on every checkout. Connections are recycled instead, and a
    # connection that died with the server fails one request with 503 (errors.py), not the service.
    # LIFO: a worker that runs one transaction after another (a consumer, the relay) gets back the
    # connection it just used, whose prepared statements asyncpg has cached; FIFO rotated through the
    # whole pool, preparing each statement again on every connection.
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=1800,
        pool_use_lifo=True,
        connect_args=pooler_connect_args(pooler),
    )


def pooler_connect_args(pooler: str) -> dict[str, Any]:
    """asyncpg's connect arguments for a database reached through `pooler` (see `make_engine`)."""
    if pooler != "pgbouncer":
        return {}
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4().hex}__",
    }


class Database:
    """The engine and session factory of one service."""

    def __init__(
        self, url: str, *, pool_size: int = 10, max_overflow: int | None = None, pooler: str = "none"
    ) -> None:
        self.url = url
        self.pooler = pooler
        self.engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow, pooler=pooler)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=KkmpSession
        )
        # The same pool; the autocommit option is set on a connection when it is checked out for a read
        # session and reset when it goes back (both are flags in the driver adapter, no round trip).
        # Not through PgBouncer: outside a transaction it may run the statement SQLAlchemy prepared on
        # one server connection and its execution on another ("prepared statement does not exist").
        self.read_sessionmaker = (
            self.sessionmaker
            if self.is_sqlite or pooler == "pgbouncer"
            else async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                sync_session_class=KkmpSession,
            )
        )
        self.outbox_wake: Callable[[], None] | None = None
        self.change_listeners: dict[str, list[ChangeListener]] = {}

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    def session(self) -> AsyncSession:
        session = self.sessionmaker()
        session.info["outbox_wake"] = self.outbox_wake
        session.info["change_listeners"] = self.change_listeners
        return session

    def on_change(self, kind: str, listener: ChangeListener) -> None:
        """Call `listener(keys)` after each commit of this process's sessions that noted changes of
        `kind` (`note_change`). Changes made by other processes are not heard of."""
        self.change_listeners.setdefault(kind, []).append(listener)

    def read_session(self) -> AsyncSession:
        """A session for reads only (see the module's docstring): an INSERT, UPDATE or DELETE through it
        raises `ReadSessionWrite` before it reaches the database."""
        session = self.read_sessionmaker()
        session.info["read_only"] = True
        return session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits at the end of the block, or rolls back on error."""
        async with self.session() as session:
            async with session.begin():
                yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def migrate(self, script_location: Path) -> None:
        """Upgrade to head with Alembic (in a thread: Alembic's env runs its own event loop)."""
        await asyncio.to_thread(run_migrations, script_location, self.url, pooler=self.pooler)

    async def require_head(self, script_location: Path, service: str) -> None:
        """Refuse to go on (`SchemaNotAtHead`) unless the schema is at the code's head: a replica
        started with migrations off, before the migration job has run."""
        current, heads = await schema_revisions(self.engine, script_location)
        if current != heads:
            found = ", ".join(sorted(current)) or "none (an empty database)"
            raise SchemaNotAtHead(
                f"the {service} database is at revision {found} but this code needs "
                f"{', '.join(sorted(heads))}; MIGRATE_ON_START is off, so run "
                f"`kkmp migrate --service {service}` first (or start with MIGRATE_ON_START=true)"
            )


def on_sqlite(source: AsyncSession | Database) -> bool:
    """Whether a session or a `Database` runs on SQLite. A session without a bind is taken for SQLite,
    the embedded default."""
    if isinstance(source, Database):
        return source.is_sqlite
    return source.bind is None or source.bind.dialect.name == "sqlite"


def upsert_insert(source: AsyncSession | Database) -> Callable[[Table], SqliteInsert | PgInsert]:
    """The `insert` of the source's dialect, the one with `on_conflict_do_nothing/do_update`.

    Both constructs take the same arguments for what we use, so callers write one statement for either
    database."""
    return sqlite_insert if on_sqlite(source) else pg_insert


def one_of(column: Any, values: Iterable[Any] | None = None, *, sqlite: bool, name: str | None = None) -> Any:
    """`column IN (...)`. On PostgreSQL it is `= ANY(array)`: one parameter, and one statement text
    whatever the list's length (an expanding IN is a new text to prepare and plan for every length).
    On SQLite, which has no arrays, an expanding IN. Give the `values` now, or a `name` to bind the
    list under at execution, for a statement built once."""
    given: dict[str, Any] = {} if values is None else {"value": sorted(set(values))}
    if sqlite:
        return column.in_(bindparam(name, expanding=True, **given))
    return column == any_(bindparam(name, type_=ARRAY(column.type), **given))


def array_rows(*, ordinal: str | None = None, prefix: str = "", **columns: Any) -> Any:
    """PostgreSQL: rows bound as one array per column and unnested, as a table whose columns are
    named as given (`INSERT ... SELECT` from it, or `UPDATE ... FROM` it). Bind one list per column
    under the column's name. The statement's text is the same whatever the number of rows: an
    executemany with RETURNING is rendered by SQLAlchemy as a multi-row VALUES, a new text for every
    batch size, which PostgreSQL parses and plans again after a round trip to prepare it (tens of ms
    on a loaded machine). With `ordinal`, the table also has a column of that name numbering the rows
    from 1 in the arrays' order (WITH ORDINALITY), to order by. The lists are bound under
    `prefix` + the column's name (two such tables in one statement need different prefixes)."""
    arrays = [bindparam(prefix + name, type_=ARRAY(kind)) for name, kind in columns.items()]
    return func.unnest(*arrays).table_valued(*columns, with_ordinality=ordinal).render_derived()


_ARRAY_INSERTS: dict[tuple[Any, ...], Any] = {}


def insert_from_arrays(
    table: Table,
    columns: Sequence[str],
    *,
    shared: Sequence[str] = (),
    ignore_conflicts: bool = False,
    returning: Any = None,
    prefix: str = "",
) -> Any:
    """PostgreSQL: `INSERT INTO table (columns, shared) SELECT ... FROM unnest(arrays) ORDER BY its
    ordinality`, built once per shape. Bind one list per column of `columns` under its name (rows in
    order: a sequence default follows it) and one value per column of `shared` (the same for every
    row), each name after `prefix`. One Bind and one Execute whatever the number of rows, where an
    executemany is one Execute per row (and with RETURNING, a multi-row VALUES whose text changes
    with every batch size)."""
    key = (table, tuple(columns), tuple(shared), ignore_conflicts, returning, prefix)
    statement = _ARRAY_INSERTS.get(key)
    if statement is None:
        rows = array_rows(ordinal="ordinal", prefix=prefix, **{name: table.c[name].type for name in columns})
        chosen = select(
            *(rows.c[name] for name in columns),
            *(bindparam(prefix + name, type_=table.c[name].type) for name in shared),
        ).order_by(rows.c.ordinal)
        statement = pg_insert(table).from_select([*columns, *shared], chosen)
        if ignore_conflicts:
            statement = statement.on_conflict_do_nothing()
        if returning is not None:
            statement = statement.returning(returning)
        _ARRAY_INSERTS[key] = statement
    return statement


async def insert_many(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    shared: Mapping[str, Any] | None = None,
    ignore_conflicts: bool = False,
    returning: Any = None,
) -> Any:
    """Insert rows that all have the same keys, plus `shared` values common to every row, in one
    statement: `insert_from_arrays` on PostgreSQL, an executemany on SQLite. `ignore_conflicts` is
    ON CONFLICT DO NOTHING; with `returning` (a column), the result lists it for the rows inserted.
    At least one row: the first row's keys are the columns."""
    if not rows:
        raise ValueError("insert_many needs at least one row")
    common = dict(shared or {})
    if on_sqlite(session):
        statement: Any = upsert_insert(session)(table)
        if ignore_conflicts:
            statement = statement.on_conflict_do_nothing()
        if returning is not None:
            statement = statement.returning(returning)
        return await session.execute(statement, [{**row, **common} for row in rows])
    statement = insert_from_arrays(
        table, list(rows[0]), shared=list(common), ignore_conflicts=ignore_conflicts, returning=returning
    )
    return await session.execute(statement, _array_params(rows, common))


def _array_params(
    rows: Sequence[Mapping[str, Any]], shared: Mapping[str, Any], prefix: str = ""
) -> dict[str, Any]:
    """The parameters of `insert_from_arrays`: one list per column of the rows, one value per shared."""
    params: dict[str, Any] = {prefix + name: [row[name] for row in rows] for name in rows[0]}
    params.update({prefix + name: value for name, value in shared.items()})
    return params


# Revisions of the tables every service has (outbox, inbox, directory), on the branch `kkmp_shared`:
# each service's history includes them (docs/decisions/0004-shared-migration-branch.md).
SHARED_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"


def alembic_config(script_location: Path, url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join([str(Path(script_location) / "versions"), str(SHARED_VERSIONS)])
    )
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def run_migrations(script_location: Path, url: str, *, pooler: str = "none") -> None:
    """Upgrade to head. On PostgreSQL the upgrade runs under the history's advisory lock (see
    `run_alembic_env`), so replicas starting together migrate once and the others find head."""
    from alembic import command

    config = alembic_config(script_location, url)
    config.attributes["kkmp_pooler"] = pooler
    command.upgrade(config, "heads")  # the service's branch and kkmp_shared's


def migration_lock_key(history: str) -> int:
    """The advisory lock key of one migration history (a service's `migrations/` directory): a fixed
    64-bit number from its name, so every replica and `kkmp migrate` take the same lock."""
    digest = hashlib.sha256(f"kkmp.migrations.{history}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SchemaNotAtHead(RuntimeError):
    """The database's schema is not the one this code needs, and this process may not migrate it."""


async def schema_revisions(engine: AsyncEngine, script_location: Path) -> tuple[set[str], set[str]]:
    """(the database's current revisions, the code's head revisions)."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(script_location, "sqlite://")).get_heads())
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda sync: set(MigrationContext.configure(sync).get_current_heads()))
    return current, heads


def run_alembic_env(target_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`: online migrations over the async engine."""
    from alembic import context

    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by the caller"

    def do_run(connection: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite(url),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    pooler = config.attributes.get("kkmp_pooler", "none")
    lock_key = migration_lock_key(Path(context.script.dir).resolve().parent.name)

    async def run_async() -> None:
        # The lock below is transaction-scoped, so it holds through PgBouncer's transaction pooling.
        engine = create_async_engine(url, connect_args=pooler_connect_args(pooler))
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting at once (and `kkmp migrate`) queue here; the lock ends with the
                # migration's transaction, and the next holder then reads the version it committed.
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())


@dataclass(frozen=True)
class Rows:
    """Rows for one table, as `insert_many` takes them (its arguments), for `insert_together`."""

    table: Table
    rows: Sequence[Mapping[str, Any]]
    shared: Mapping[str, Any] | None = None
    ignore_conflicts: bool = False
    # A column of `table`: the result lists it for the rows inserted (the last part only).
    returning: Any = None


_TOGETHER: dict[tuple[Any, ...], Any] = {}


async def insert_together(session: AsyncSession, parts: Sequence[Rows]) -> Any:
    """Insert rows into several tables, in the order of `parts`, as `insert_many` each would. On
    PostgreSQL it is one statement: every part but the last is a data-modifying WITH of it, all
    bound as arrays, so a transaction writing three tables makes one round trip where it made three
    (on a loaded machine each costs a wake-up of the server and then of the service). On SQLite, one
    `insert_many` per part. The result is the last part's; only it may have `returning`. Parts
    without rows are left out."""
    parts = [part for part in parts if part.rows]
    if not parts:
        raise ValueError("insert_together needs rows")
    if any(part.returning is not None for part in parts[:-1]):
        raise ValueError("only the last part may have `returning`")
    if on_sqlite(session) or len(parts) == 1:
        result: Any = None
        for part in parts:
            result = await insert_many(
                session,
                part.table,
                part.rows,
                shared=part.shared,
                ignore_conflicts=part.ignore_conflicts,
                returning=part.returning,
            )
        return result
    shapes = [
        (part.table, tuple(part.rows[0]), tuple(part.shared or ()), part.ignore_conflicts, part.returning)
        for part in parts
    ]
    key = tuple(shapes)
    statement = _TOGETHER.get(key)
    if statement is None:
        writes = [
            insert_from_arrays(
                table, columns, shared=shared, ignore_conflicts=ignore, returning=returning, prefix=f"p{n}_"
            )
            for n, (table, columns, shared, ignore, returning) in enumerate(shapes)
        ]
        statement = writes[-1].add_cte(*(write.cte(f"write_{n}") for n, write in enumerate(writes[:-1])))
        _TOGETHER[key] = statement
    params: dict[str, Any] = {}
    for n, part in enumerate(parts):
        params.update(_array_params(part.rows, part.shared or {}, f"p{n}_"))
    return await session.execute(statement, params)
