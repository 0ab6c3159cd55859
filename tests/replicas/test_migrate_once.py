"""Replicas and migrations: on PostgreSQL, N processes upgrading one fresh database at once migrate it
once (the others wait on the history's advisory lock, then find head); `kkmp migrate` is the one-off
job; a service started with migrations off refuses an un-migrated database with a message that says
what to run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from inventory.bootstrap import create_app
from inventory.settings import InventorySettings
from kkmp_shared.db import SchemaNotAtHead, alembic_config, migration_lock_key
from kkmp_testkit.harness import running_app, wait_ready
from kkmp_testkit.postgres import create_database, drop_database, ensure_postgres
from kkmp_testkit.tokens import TokenFactory
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KKMP = ROOT / ".venv" / "bin" / "kkmp"
SERVICES = ["registry", "inventory", "sourcing", "reporting", "notifications"]


def head_of(service: str) -> str:
    script = ScriptDirectory.from_config(
        alembic_config(ROOT / "services" / service / "migrations", "sqlite://")
    )
    (head,) = script.get_heads()
    return head


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def versions(url: str) -> list[str]:
    conn = await asyncpg.connect(plain(url))
    try:
        return [row[0] for row in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()


@pytest.fixture
def fresh_database() -> Iterator[str]:
    ensure_postgres()
    url = create_database("kkmp_migrate_once")
    yield url
    drop_database(url)


def kkmp_migrate(service: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(KKMP), "migrate", "--service", service],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def test_replicas_migrating_one_fresh_database_at_once_migrate_it_once(fresh_database: str) -> None:
    """Four `kkmp migrate` processes are held at the gate (the test holds the advisory lock) until all
    four wait on it, so they really contend; released, all succeed and the schema is at head once."""
    replicas = 4
    gate = await asyncpg.connect(plain(fresh_database))
    key = migration_lock_key("inventory")
    await gate.execute("SELECT pg_advisory_lock($1)", key)
    env = {"INVENTORY_DATABASE_URL": fresh_database, "KKMP_DATA_DIR": "/nonexistent-unused"}
    processes = [kkmp_migrate("inventory", env) for _ in range(replicas)]
    try:
        deadline = time.monotonic() + 60
        waiting = 0
        while time.monotonic() < deadline:
            waiting = await gate.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if waiting == replicas or any(p.poll() is not None for p in processes):
                break
            await asyncio.sleep(0.1)
        assert waiting == replicas, [p.poll() for p in processes]
        await gate.execute("SELECT pg_advisory_unlock($1)", key)
        outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        await gate.close()
    for p, (out, _) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, out
        assert "inventory: at head" in out
    assert await versions(fresh_database) == [head_of("inventory")]


async def test_kkmp_migrate_all_brings_every_service_database_to_head() -> None:
    ensure_postgres()
    urls = {service: create_database(f"kkmp_migrate_{service}") for service in SERVICES}
    try:
        env = {f"{s.upper()}_DATABASE_URL": url for s, url in urls.items()}
        process = kkmp_migrate("all", env)
        out, _ = await asyncio.to_thread(process.communicate, timeout=180)
        assert process.returncode == 0, out
        for service, url in urls.items():
            assert f"{service}: at head" in out
            assert await versions(url) == [head_of(service)]
    finally:
        for url in urls.values():
            drop_database(url)


def test_kkmp_migrate_refuses_a_service_it_does_not_know() -> None:
    result = subprocess.run(
        [str(KKMP), "migrate", "--service", "portal"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Unknown service 'portal'" in result.stderr


def inventory_app(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object) -> object:
    monkeypatch.setenv("INVENTORY_DATABASE_URL", url)
    tokens = TokenFactory()
    return create_app(
        InventorySettings(
            demo=True,
            data_dir=tmp_path,
            broker_enabled=False,
            detection_interval_s=0,
            log_json=False,
            log_level="WARNING",
            **settings,
        ),
        key_source=lambda _s: tokens.key_source(),
    )


async def test_a_service_with_migrations_off_refuses_to_start_on_an_unmigrated_database(
    fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = inventory_app(fresh_database, tmp_path, monkeypatch, migrate_on_start=False)
    with pytest.raises(SchemaNotAtHead) as refused:
        async with running_app(app):  # type: ignore[arg-type]
            pass
    message = str(refused.value)
    assert "none (an empty database)" in message
    assert "kkmp migrate --service inventory" in message
    # Nothing was created: the refusal comes before any table.
    conn = await asyncpg.connect(plain(fresh_database))
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()

    process = kkmp_migrate("inventory", {"INVENTORY_DATABASE_URL": fresh_database})
    out, _ = await asyncio.to_thread(process.communicate, timeout=120)
    assert process.returncode == 0, out
    app = inventory_app(fresh_database, tmp_path, monkeypatch, migrate_on_start=False)
    async with running_app(app) as client:  # type: ignore[arg-type]
        await wait_ready(client, timeout=30)
