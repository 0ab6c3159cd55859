"""Every service's Alembic migrations build exactly the schema its tables describe, on SQLite and on
PostgreSQL, and their newest revision can be undone and done again.

A table, column or index added to a service's `MetaData` (or to the shared outbox and inbox) without a
revision, or a revision that differs from the tables, fails here instead of in a deployment that
upgrades an existing database.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from kkmp_testkit.postgres import create_database, drop_database, ensure_postgres
from sqlalchemy import Connection, MetaData, inspect
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ["registry", "inventory", "sourcing", "reporting", "notifications"]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    ensure_postgres()
    url = create_database("kkmp_migrations")
    yield url
    drop_database(url)


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def inspected(url: str, look: Callable[[Connection], Any]) -> Any:
    """`look` at the database through a synchronous connection (the services' drivers are async)."""

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(look)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def differences(url: str, metadata: MetaData) -> list[Any]:
    """What autogenerate would write for a new revision: nothing when the database matches."""

    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    return inspected(url, compare)


def current_revision(url: str) -> str | None:
    return inspected(url, lambda conn: MigrationContext.configure(conn).get_current_revision())


@pytest.mark.parametrize("service", SERVICES)
def test_the_migrations_build_the_tables_of_the_code(service: str, database_url: str) -> None:
    metadata = importlib.import_module(f"{service}.adapters.orm").metadata
    config = alembic_config(service, database_url)
    command.upgrade(config, "head")
    assert differences(database_url, metadata) == []

    # The newest revision is undone and done again (a failed deployment is rolled back with it).
    head = ScriptDirectory.from_config(config).get_revision("head")
    assert current_revision(database_url) == head.revision
    command.downgrade(config, "-1")
    assert current_revision(database_url) == head.down_revision
    assert differences(database_url, metadata) != []
    command.upgrade(config, "head")
    assert current_revision(database_url) == head.revision
    assert differences(database_url, metadata) == []


def test_the_outbox_reads_pending_rows_by_lane_from_its_index(database_url: str) -> None:
    """The relay's order (bulk lane last, then `seq`) has an index of unpublished rows to read."""
    command.upgrade(alembic_config("inventory", database_url), "head")
    indexes = inspected(
        database_url,
        lambda conn: {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("outbox")},
    )
    assert indexes.get("ix_outbox_pending_lanes") == ["bulk", "seq"]
    assert "ix_outbox_pending" not in indexes
