"""PostgreSQL for tests: find a server, and give each test (module) a fresh database of its own.

- :func:`ensure_postgres` returns an admin DSN (``postgresql://...``) of a server that answers:
  ``$TEST_POSTGRES_URL`` / ``$DATABASE_URL``, the machine's local server, a testcontainers
  container, or the local cluster started with ``pg_ctlcluster``, in that order.
- :func:`create_database` makes a uniquely named database and returns its SQLAlchemy async URL
  (``postgresql+asyncpg://...``); :func:`drop_database` drops it, disconnecting its sessions
  first. Async twins (:func:`acreate_database`, :func:`adrop_database`) exist for async fixtures.

Unique names let parallel runs (xdist workers, two CI jobs) share one server without seeing each
other's tables, and make a crashed run's leftovers recognisable by their prefix.
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from kkmp_testkit._aio import run_sync

__all__ = [
    "LOCAL_POSTGRES_URL",
    "acreate_database",
    "adrop_database",
    "create_database",
    "drop_database",
    "ensure_postgres",
]

LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_lock = threading.Lock()
_admin_dsn: str | None = None
_container: Any = None


def _plain_dsn(url: str | URL) -> str:
    """A libpq/asyncpg DSN (``postgresql://``) from any SQLAlchemy-style PostgreSQL URL."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _is_postgres(url: str) -> bool:
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except Exception:
        return False


async def _aprobe(dsn: str, timeout: float) -> None:
    import asyncpg  # lazy: importing this module must not require the driver

    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def _reachable(dsn: str, timeout: float = 3.0) -> bool:
    try:
        run_sync(_aprobe(dsn, timeout))
    except Exception:
        return False
    return True


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _start_container() -> str:
    global _container
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.14 kept it at the top level
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:15-alpine", username="postgres", password="postgres", driver=None)
    container.start()
    atexit.register(container.stop)
    _container = container
    # The container's own database is `test`; the admin DSN points at the maintenance database.
    return _plain_dsn(make_url(container.get_connection_url()).set(database="postgres"))


def _start_local_cluster(timeout: float) -> str | None:
    """Start the machine's Debian cluster(s) (`pg_ctlcluster VERSION main start`)."""
    versions = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").is_dir() else []
    if not versions:
        return None
    for cluster in versions:
        try:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", cluster.parent.name, "main", "start"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _reachable(LOCAL_POSTGRES_URL):
            return LOCAL_POSTGRES_URL
        time.sleep(0.5)
    return None


def ensure_postgres(*, start_timeout: float = 30.0) -> str:
    """Return an admin DSN (``postgresql://user@host:port/db``) of a reachable PostgreSQL server.

    Order: ``$TEST_POSTGRES_URL``, ``$DATABASE_URL`` (each only if it is a PostgreSQL URL; a
    ``+driver`` suffix is dropped), the local ``postgres@127.0.0.1:5432``, a ``postgres:15-alpine``
    testcontainer when a Docker engine answers, the local cluster started with ``pg_ctlcluster``.
    Each candidate counts only if a connection and ``SELECT 1`` succeed. The answer is cached per
    process. Raises ``RuntimeError`` with one line saying what to do when nothing works.
    """
    global _admin_dsn
    with _lock:
        if _admin_dsn is not None:
            return _admin_dsn
        tried: list[str] = []
        for variable in ("TEST_POSTGRES_URL", "DATABASE_URL"):
            value = os.environ.get(variable)
            if not value:
                continue
            if not _is_postgres(value):
                tried.append(f"${variable} is not PostgreSQL")
                continue
            dsn = _plain_dsn(value)
            if _reachable(dsn):
                _admin_dsn = dsn
                return dsn
            tried.append(f"${variable} unreachable")
        if _reachable(LOCAL_POSTGRES_URL):
            _admin_dsn = LOCAL_POSTGRES_URL
            return LOCAL_POSTGRES_URL
        local = make_url(LOCAL_POSTGRES_URL)
        tried.append(f"{local.host}:{local.port} unreachable")
        if _docker_answers():
            try:
                _admin_dsn = _start_container()
                return _admin_dsn
            except Exception as exc:
                tried.append(f"testcontainers failed ({type(exc).__name__}: {exc})".replace("\n", " "))
        else:
            tried.append("no Docker engine")
        started = _start_local_cluster(start_timeout)
        if started:
            _admin_dsn = started
            return started
        tried.append("pg_ctlcluster did not bring up 5432")
        raise RuntimeError(
            "No PostgreSQL server for the tests: set TEST_POSTGRES_URL=postgresql://user:pass@host:port/db "
            "to a running server, or start the local one (`pg_ctlcluster --skip-systemctl-redirect 15 main "
            f"start`), or start a Docker engine for testcontainers [{'; '.join(tried)}]"
        )


_NAME_RE = re.compile(r"[^a-z0-9_]+")


def _database_name(prefix: str) -> str:
    # Lower-case letters, digits and _ only: no quoting surprises in psql or in URLs; 63 is
    # PostgreSQL's identifier limit.
    clean = _NAME_RE.sub("_", prefix.lower()).strip("_") or "test"
    return f"{clean[:40]}_{uuid.uuid4().hex[:12]}"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def acreate_database(prefix: str = "kkmptest", *, admin_dsn: str | None = None) -> str:
    """Create a fresh database named ``<prefix>_<random>``; return its ``postgresql+asyncpg://`` URL."""
    import asyncpg

    admin = admin_dsn or ensure_postgres()
    name = _database_name(prefix)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
    finally:
        await conn.close()
    return (
        make_url(admin)
        .set(drivername="postgresql+asyncpg", database=name)
        .render_as_string(hide_password=False)
    )


async def adrop_database(url: str, *, admin_dsn: str | None = None) -> None:
    """Drop the database of ``url`` (any PostgreSQL URL), disconnecting its sessions first.

    A database that does not exist is fine, so tear-down may run twice.
    """
    import asyncpg

    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError(f"no database name in {url!r}")
    # Connect to the maintenance database of the *same* server as ``url``.
    admin = make_url(admin_dsn) if admin_dsn else target.set(database="postgres")
    if admin.database == name:
        raise ValueError(f"refusing to drop the admin database {name!r}")
    conn = await asyncpg.connect(_plain_dsn(admin), timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        # Refuse new sessions first, then end the existing ones: a pool that reconnects between
        # the two steps would otherwise make DROP fail with "being accessed by other users".
        await conn.execute(f"ALTER DATABASE {_quote_ident(name)} ALLOW_CONNECTIONS false")
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        # WITH (FORCE) (PostgreSQL 13+) also ends sessions that slipped in (prepared ones, say).
        force = " WITH (FORCE)" if conn.get_server_version().major >= 13 else ""
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}{force}")
    finally:
        await conn.close()


def create_database(prefix: str = "kkmptest", *, admin_dsn: str | None = None) -> str:
    """Sync :func:`acreate_database`; usable from sync fixtures and from inside a running loop."""
    return run_sync(acreate_database(prefix, admin_dsn=admin_dsn))


def drop_database(url: str, *, admin_dsn: str | None = None) -> None:
    """Sync :func:`adrop_database`; usable from sync fixtures and from inside a running loop."""
    run_sync(adrop_database(url, admin_dsn=admin_dsn))
