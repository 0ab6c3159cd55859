"""`kkmp run`: start every service as its own process, wait until healthy, stop them all on Ctrl-C,
SIGTERM (a service manager, `kill`) or SIGHUP (the terminal closed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
from kkmp_shared import clock
from kkmp_shared.memory import allocator_env
from rich.console import Console

from kkmp_cli.services import ServiceSpec, available

console = Console()
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """A stop signal arrived: leave the run loop and stop the services (as Ctrl-C does)."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Every stop signal ends the run the way Ctrl-C does. The children run in sessions of their own
    (so a terminal's signals reach only this process): whatever stops us must stop them through us."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignoring_stop_signals() -> None:
    """While the services are being stopped, a second signal must not cut that short (orphans)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def broker_reachable(amqp_url: str, timeout: float = 2.0) -> bool:
    """True if one of the (comma-separated) broker addresses accepts a connection."""
    for url in amqp_url.split(","):
        parsed = urlparse(url.strip())
        address = (parsed.hostname or "localhost", parsed.port or 5672)
        try:
            with socket.create_connection(address, timeout=timeout):
                return True
        except OSError:
            continue
    return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def demo_reports_expected_from() -> str:
    """Every cooperative owes monthly reports from four months back: the demo city's history."""
    start = clock.now().replace(day=1) - timedelta(days=100)
    return start.strftime("%Y-%m")


# The demo seed creates 153 manager accounts: at OWASP's argon2id minimum (still a sound setting) their
# hashes take seconds of the first start, where the registry's default takes minutes on 2 cores.
DEMO_PASSWORD_HASHING = {
    "PASSWORD_HASH_TIME_COST": "2",
    "PASSWORD_HASH_MEMORY_KIB": "19456",
    "PASSWORD_HASH_PARALLELISM": "1",
}


def service_env(spec: ServiceSpec, data_dir: Path, demo: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("KKMP_DATA_DIR", str(data_dir))
    env["KKMP_DEMO"] = "1" if demo else env.get("KKMP_DEMO", "0")
    env.setdefault("PORT", str(spec.port))
    env.setdefault("REGISTRY_URL", "http://127.0.0.1:8001")
    env.setdefault("DETECTION_INTERVAL_S", "60")
    env.setdefault("REPORTS_EXPECTED_FROM", demo_reports_expected_from())
    if env["KKMP_DEMO"] == "1":
        for name, value in DEMO_PASSWORD_HASHING.items():
            env.setdefault(name, value)
    # glibc: two arenas, large blocks mapped on their own (see kkmp_shared.memory); set values win.
    return allocator_env(env)


def start(spec: ServiceSpec, data_dir: Path, demo: bool, log_dir: Path) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{spec.name}.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            spec.app,
            "--factory",
            "--host",
            os.environ.get("KKMP_HOST", "127.0.0.1"),
            "--port",
            str(spec.port),
            "--no-access-log",
        ],
        env=service_env(spec, data_dir, demo),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us, and we stop the children in order
    )


def wait_healthy(spec: ServiceSpec, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{spec.url}/health/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def run_platform(
    *, data_dir: Path, demo: bool, seed: int | None, only: list[str] | None = None, port_base: int = 8000
) -> int:
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
    if not broker_reachable(amqp_url):
        console.print(
            f"[bold red]RabbitMQ is not reachable at {urlparse(amqp_url).netloc.split('@')[-1]}[/]: "
            "start it with `rabbitmq-server -detached` (or `docker compose up -d rabbitmq`), or set AMQP_URL."
        )
        return 2
    # The ports keep their order from port_base (8000: portal, 8001: registry, ...); the services and the
    # demo seed find each other through the *_URL variables (set ones win).
    specs = [
        replace(s, port=s.port - 8000 + port_base) for s in available() if only is None or s.name in only
    ]
    for spec in specs:
        os.environ.setdefault(f"{spec.name.upper()}_URL", spec.url)
    busy = [s for s in specs if not port_free(s.port)]
    if busy:
        console.print(
            f"[bold red]Ports in use:[/] {', '.join(f'{s.name} {s.port}' for s in busy)}; "
            "stop what runs there (an earlier `make run`?) and try again."
        )
        return 2
    log_dir = data_dir / "logs"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with stopped_by_signals():
        return _run(specs, procs, data_dir=data_dir, demo=demo, seed=seed, log_dir=log_dir)


def _run(
    specs: list[ServiceSpec],
    procs: dict[str, subprocess.Popen[bytes]],
    *,
    data_dir: Path,
    demo: bool,
    seed: int | None,
    log_dir: Path,
) -> int:
    try:
        with console.status("Starting services...") as status:
            for spec in specs:
                status.update(f"Starting {spec.name} on port {spec.port}...")
                procs[spec.name] = start(spec, data_dir, demo, log_dir)
            for spec in specs:
                status.update(f"Waiting for {spec.name}...")
                if not wait_healthy(spec, procs[spec.name]):
                    console.print(
                        f"[bold red]{spec.name} did not become healthy[/]; see {log_dir / spec.name}.log"
                    )
                    stop_all(procs)
                    return 1
        console.print("[green]All services are up.[/]")
        if demo:
            from kkmp_cli.seed import seed_if_empty

            seed_if_empty(seed if seed is not None else 20251128)
        print_urls(specs, demo)
        console.print("Press Ctrl-C to stop.")
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    console.print(f"[bold red]{name} exited ({proc.returncode})[/]; see {log_dir / name}.log")
                    stop_all(procs)
                    return 1
            time.sleep(1)
    except (KeyboardInterrupt, Stop) as stop:
        console.print(f"\nStopping ({stop or 'Ctrl-C'})...")
    finally:
        ignoring_stop_signals()
        stop_all(procs)
    console.print("Stopped.")
    return 0


def print_urls(specs: list[ServiceSpec], demo: bool) -> None:
    console.print()
    for spec in specs:
        suffix = "" if spec.name == "portal" else "  (API docs: /docs)"
        console.print(f"  {spec.name:<14} {spec.url}{suffix}")
    if demo:
        from kkmp_cli.seed import DEMO_PASSWORD

        console.print()
        console.print("Demo accounts (password for all but admin: [bold]" + DEMO_PASSWORD + "[/]):")
        console.print("  admin          / " + os.environ.get("KKMP_ADMIN_PASSWORD", "kkmp-demo-admin"))
        console.print("  petugas        (officer, whole city)")
        console.print(
            "  pengurus-<kelurahan code without dots>  e.g. pengurus-3578021004 (manager of that KKMP)"
        )
        console.print("  pemasok-bulog  (supplier)")
    console.print()
