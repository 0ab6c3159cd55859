"""A private PgBouncer for tests: Debian's `pgbouncer` binary in transaction pooling, on a free port, in
front of the test PostgreSQL server.

`pgbouncer(admin_dsn)` starts it and yields a `PgBouncer`, whose `url(database_url)` is the same
database reached through it. Clients authenticate as the server's user with no password (`auth_type =
trust`, as the local test server does); PgBouncer logs in to PostgreSQL as that user too. The server
pool is small (`pool_size`), so concurrent sessions really do share server connections.

`make test-services` installs the package where it can (`deploy/scripts/ensure-services.sh pgbouncer`);
nothing is installed at test time.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from kkmp_testkit.ports import free_port

__all__ = ["PgBouncer", "pgbouncer", "pgbouncer_binary"]


def pgbouncer_binary() -> str:
    """The `pgbouncer` executable, or a RuntimeError saying how to get it."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None
    )
    if found is None:
        raise RuntimeError(
            "pgbouncer is not installed: run `make test-services` (or `apt-get install pgbouncer`)"
        )
    return found


@dataclass
class PgBouncer:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    def url(self, database_url: str) -> str:
        """`database_url` (any PostgreSQL URL of the proxied server) reached through this PgBouncer."""
        return (
            make_url(database_url).set(host=self.host, port=self.port).render_as_string(hide_password=False)
        )

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def pgbouncer(admin_dsn: str, *, pool_size: int = 4, timeout: float = 20.0) -> Iterator[PgBouncer]:
    """Start a PgBouncer (transaction pooling) in front of the server of `admin_dsn`; stop it after."""
    binary = pgbouncer_binary()
    server = make_url(admin_dsn)
    user = server.username or "postgres"
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="kkmp-pgbouncer-"))
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server.host or '127.0.0.1'} port={server.port or 5432} user={user}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {workdir / 'userlist.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 500",
                # asyncpg sends it at connect; PgBouncer would refuse an unknown startup parameter.
                "ignore_startup_parameters = extra_float_digits",
                f"logfile = {workdir / 'pgbouncer.log'}",
                f"pidfile = {workdir / 'pgbouncer.pid'}",
                "",
            ]
        )
    )
    command = [binary]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: it drops to an ordinary account, which must own its files.
        account = "postgres" if _exists("postgres") else "nobody"
        for path in (workdir, *workdir.iterdir()):
            shutil.chown(path, account)
        command += ["-u", account]
    command.append(str(workdir / "pgbouncer.ini"))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bouncer = PgBouncer("127.0.0.1", port, workdir, process)
    try:
        _wait_listening(bouncer, timeout)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
    except KeyError:
        return False
    return True


def _wait_listening(bouncer: PgBouncer, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            stderr = bouncer.process.stderr.read().decode(errors="replace") if bouncer.process.stderr else ""
            raise RuntimeError(f"pgbouncer exited with {bouncer.process.returncode}: {stderr}{bouncer.log()}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((bouncer.host, bouncer.port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {bouncer.port} within {timeout}s: {bouncer.log()}")
