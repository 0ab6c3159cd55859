"""deploy/postgres-init.sql on a real PostgreSQL cluster of the test's own, run as the postgres image's
entrypoint runs it: one role and one database per service, no service can reach another's database."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kkmp_testkit.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "deploy" / "postgres-init.sql"
WITH_DATABASE = ("registry", "inventory", "sourcing", "reporting", "notifications")
PASSWORDS = {name: f"{name}-db-password-{i}Xq7v2LmP9sT4" for i, name in enumerate(WITH_DATABASE)}


def _pg_bin(tool: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    path = str(found[-1]) if found else shutil.which(tool)
    assert path, f"{tool} (PostgreSQL server binaries) is needed: apt-get install postgresql"
    return path


@pytest.fixture
def private_postgres() -> Iterator[tuple[list[str], int]]:
    """A PostgreSQL cluster of this test's own (initdb, password auth over TCP), as the postgres image
    makes one: the init script creates roles, which are global to a cluster. initdb refuses root, so as
    root the server runs as the machine's postgres user, in a directory it owns."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(prefix="kkmp-pg-init-") as directory:
        tmp_path = Path(directory)
        if as_postgres:
            shutil.chown(tmp_path, "postgres")
        yield from _cluster(tmp_path, as_postgres)


def _cluster(tmp_path: Path, as_postgres: list[str]) -> Iterator[tuple[list[str], int]]:
    data, sockets = tmp_path / "pgdata", tmp_path / "sock"
    subprocess.run([*as_postgres, "mkdir", str(sockets)], check=True)
    port = free_port()
    run = [*as_postgres]
    subprocess.run(
        [*run, _pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*run, _pg_bin("pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(tmp_path / "pg.log"), "start",
         "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"],
        check=True, capture_output=True,
    )  # fmt: skip
    superuser = [*run, _pg_bin("psql"), "-h", str(sockets), "-p", str(port), "-U", "postgres"]
    try:
        yield superuser, port
    finally:
        subprocess.run([*run, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False)


def _as_role(
    port: int, role: str, password: str, database: str, sql: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", role, "-d", database,
         "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql],
        capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
    )  # fmt: skip


def test_postgres_init_gives_each_service_its_own_role_and_database(
    private_postgres: tuple[list[str], int],
) -> None:
    superuser, port = private_postgres
    init = INIT.read_text()
    passwords = PASSWORDS
    env = {**os.environ, **{f"{name.upper()}_DB_PASSWORD": pw for name, pw in passwords.items()}}
    # As the image's entrypoint runs it: psql, stop on error, the script on stdin (the file is the test's).
    result = subprocess.run(
        [*superuser, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-d", "postgres"],
        input=init, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name, password in passwords.items():
        made = _as_role(port, name, password, name, "CREATE TABLE t (x int); SELECT current_user")
        assert made.returncode == 0 and made.stdout.strip().endswith(name), made.stderr
        wrong = _as_role(
            port, name, passwords["registry" if name != "registry" else "inventory"], name, "SELECT 1"
        )
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
        for other in WITH_DATABASE:
            if other != name:
                refused = _as_role(port, name, password, other, "SELECT 1")
                assert refused.returncode != 0 and "permission denied for database" in refused.stderr


def test_postgres_init_stops_when_a_service_password_is_unset(
    private_postgres: tuple[list[str], int],
) -> None:
    superuser, _port = private_postgres
    env = {key: value for key, value in os.environ.items() if not key.endswith("_DB_PASSWORD")}
    env.update({f"{name.upper()}_DB_PASSWORD": "x" * 20 for name in WITH_DATABASE if name != "reporting"})
    result = subprocess.run(
        [*superuser, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-d", "postgres"],
        input=INIT.read_text(), capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode != 0
    roles = subprocess.run(
        [*superuser, "-d", "postgres", "-tA", "-c",
         "SELECT count(*) FROM pg_roles WHERE rolname = 'reporting'"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert roles.stdout.strip() == "0"
