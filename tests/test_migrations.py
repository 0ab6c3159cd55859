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
from kkmp_shared.db import SHARED_VERSIONS
from kkmp_shared.db import alembic_config as shared_alembic_config
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


# Each service's head before the shared branch (kkmp_shared/migrations/versions) began.
HEAD_BEFORE_SHARED_BRANCH = {
    "registry": "0003",
    "inventory": "0004",
    "sourcing": "0002",
    "reporting": "0004",
    "notifications": "0002",
}


def alembic_config(service: str, url: str) -> Config:
    """As the services run it: their own revisions and the shared branch's."""
    config: Config = shared_alembic_config(ROOT / "services" / service / "migrations", url)
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
    command.upgrade(config, "heads")
    assert differences(database_url, metadata) == []

    # The newest revisions are undone, back to the last one that changed the schema, and done again (a
    # failed deployment is rolled back with them); the branch anchors change nothing.
    head = ScriptDirectory.from_config(config).get_revision("head")
    assert current_revision(database_url) == head.revision
    for _ in range(4):
        command.downgrade(config, "-1")
        if differences(database_url, metadata):
            break
    assert differences(database_url, metadata) != []
    command.upgrade(config, "heads")
    assert current_revision(database_url) == head.revision
    assert differences(database_url, metadata) == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_runs_the_shared_branch_after_its_own_revisions(service: str) -> None:
    """One revision in kkmp_shared/migrations/versions changes the messaging and directory tables of
    every service: each history holds the branch, on top of the same anchor."""
    script = ScriptDirectory.from_config(alembic_config(service, "sqlite://"))
    shared_head = script.get_revision("kkmp_shared@head")
    assert shared_head is not None and script.get_heads() == [shared_head.revision]
    anchor = script.get_revision("kkmp_shared_anchor")
    assert anchor is not None and anchor.down_revision == HEAD_BEFORE_SHARED_BRANCH[service]
    assert Path(shared_head.path).is_relative_to(SHARED_VERSIONS)


@pytest.mark.parametrize("service", SERVICES)
def test_a_database_made_by_the_old_revisions_upgrades_to_the_new_head(
    service: str, database_url: str
) -> None:
    """A deployed database, at the service's head of before the shared branch, upgrades in place (the
    new revisions re-create nothing) to the schema of the code."""
    metadata = importlib.import_module(f"{service}.adapters.orm").metadata
    config = alembic_config(service, database_url)
    command.upgrade(config, HEAD_BEFORE_SHARED_BRANCH[service])
    assert differences(database_url, metadata) == []
    command.upgrade(config, "heads")
    assert current_revision(database_url) == "kkmp_shared_0001"
    assert differences(database_url, metadata) == []


def test_the_outbox_reads_pending_rows_by_lane_from_its_index(database_url: str) -> None:
    """The relay's order (bulk lane last, then `seq`) has an index of unpublished rows to read."""
    command.upgrade(alembic_config("inventory", database_url), "heads")
    indexes = inspected(
        database_url,
        lambda conn: {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("outbox")},
    )
    assert indexes.get("ix_outbox_pending_lanes") == ["bulk", "seq"]
    assert "ix_outbox_pending" not in indexes
