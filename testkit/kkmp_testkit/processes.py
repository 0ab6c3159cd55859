"""Start KKMP services as real processes (uvicorn) for end-to-end tests, and stop them.

Each service gets a free port, its own database (a fresh PostgreSQL database, or a SQLite file), the
test's vhost on the real broker, and the registry's JWKS URL. Logs go to files that a failing test
prints. Processes can be killed (SIGKILL) and started again on the same port and database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kkmp_shared.memory import allocator_env

from kkmp_testkit.ports import free_port
from kkmp_testkit.postgres import create_database, drop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost

DEFAULT_ORDER = ("registry", "reporting", "inventory", "sourcing", "notifications", "portal")
# A test run keeps several platforms up at once (and two with pytest-xdist) on one PostgreSQL, whose
# Debian default is 100 connections: a service process started by a test keeps 2 open, opens more
# only under load, and closes those again.
TEST_POOL_ENV = {"DATABASE_POOL_SIZE": "2", "DATABASE_MAX_OVERFLOW": "8"}
DEFAULT_ADMIN_PASSWORD = "e2e-admin-password"


def service_env(
    name: str,
    *,
    data_dir: Path,
    amqp_url: str,
    urls: Mapping[str, str],
    admin_password: str,
    database_url: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a service process a test starts: this process's (without any
    ``*_DATABASE_URL``), ``<NAME>_URL`` of every service in ``urls`` (name → base URL), demo mode, short
    retry and relay delays, no detection loop, a small database pool (:data:`TEST_POOL_ENV`),
    ``database_url`` as ``<NAME>_DATABASE_URL``, then ``extra``; with the allocator settings that
    `kkmp run` gives (kkmp_shared.memory). Used by :class:`Platform`, the fault tests' stack and
    kkmp_testkit.replicas."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update({f"{n.upper()}_URL": url for n, url in urls.items()})
    env.update(
        {
            "KKMP_DEMO": "1",
            "KKMP_DATA_DIR": str(data_dir),
            "AMQP_URL": amqp_url,
            "REGISTRY_URL": urls.get("registry", "http://127.0.0.1:8001"),
            "KKMP_ADMIN_PASSWORD": admin_password,
            "LOG_LEVEL": "INFO",
            "RETRY_DELAYS_MS": "[200,1000,3000]",
            "RELAY_POLL_INTERVAL_S": "0.2",
            "DETECTION_INTERVAL_S": "0",
            "ALLOW_INTERNAL_WEBHOOKS": "true",
            "PORTAL_SESSION_SECRET": "e2e-session-secret-" + "x" * 16,
            "PORTAL_COOKIE_SECURE": "false",
            **TEST_POOL_ENV,
        }
    )
    if database_url:
        env[f"{name.upper()}_DATABASE_URL"] = database_url
    env.update(extra or {})
    return allocator_env(env)  # as `kkmp run` starts them (kkmp_shared.memory)


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                f"{self.name}.bootstrap:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.url}/health/ready", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout}s ({last}):\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown hooks run."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Platform:
    """A set of running services wired to one broker vhost and their own databases."""

    amqp_url: str
    work_dir: Path
    database_urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    admin_password: str = DEFAULT_ADMIN_PASSWORD

    def url(self, name: str) -> str:
        return self.services[name].url

    def start(self, names: tuple[str, ...] | list[str] = DEFAULT_ORDER, timeout: float = 90.0) -> Platform:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in names}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name in names:
            env = service_env(
                name,
                data_dir=self.work_dir / name,
                amqp_url=self.amqp_url,
                urls=urls,
                admin_password=self.admin_password,
                database_url=self.database_urls.get(name),
                extra=self.extra_env,
            )
            self.services[name] = ServiceProcess(name, ports[name], env, self.work_dir / f"{name}.log")
        for name in names:
            self.services[name].start()
            if name == "registry":  # the others fetch its JWKS lazily, but it must exist
                self.services[name].wait_ready(timeout)
        for name in names:
            self.services[name].wait_ready(timeout)
        return self

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {n}\n{s.log_tail()}" for n, s in self.services.items())

    def token(self, username: str, password: str) -> str:
        response = httpx.post(
            f"{self.url('registry')}/auth/token",
            data={"username": username, "password": password},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def admin_token(self) -> str:
        return self.token("admin", self.admin_password)


@contextlib.contextmanager
def started_platform(
    names: Sequence[str],
    work: Path,
    *,
    prefix: str,
    postgres: bool = True,
    extra_env: Mapping[str, str] | None = None,
    admin_password: str = DEFAULT_ADMIN_PASSWORD,
) -> Iterator[Platform]:
    """``names`` started as a :class:`Platform` on a vhost of their own on the machine's broker
    (``<prefix>-<random>``) and, with ``postgres``, a fresh PostgreSQL database per service but the
    portal (``<prefix>_<service>``). The services' logs are printed when the start or the ``with``
    body fails; afterwards the services stop, the databases are dropped and the vhost deleted."""
    with temporary_vhost(ensure_broker(), prefix) as amqp_url:
        databases: dict[str, str] = {}
        if postgres:
            ensure_postgres()
            databases = {n: create_database(f"{prefix}_{n}") for n in names if n != "portal"}
        plat = Platform(
            amqp_url,
            work,
            databases,
            extra_env=dict(extra_env or {}),
            admin_password=admin_password,
        )
        try:
            plat.start(tuple(names))
            yield plat
        except Exception:
            print(plat.logs())
            raise
        finally:
            plat.stop()
            for url in databases.values():
                drop_database(url)
