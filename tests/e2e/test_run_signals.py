"""`kkmp run` as an operator's service manager or a closed terminal stops it: SIGTERM and SIGHUP stop
every service it started, as Ctrl-C does, and free their ports (before, SIGTERM left all six running,
orphaned in sessions of their own, holding the ports).

The runner is started for real (the `kkmp` script, a free block of six ports, a temporary data dir, the
broker through a vhost of its own, demo mode without the demo seed).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kkmp_cli.runner import port_free
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.wait import wait_until

pytestmark = pytest.mark.e2e

KKMP = str(Path(sys.executable).with_name("kkmp"))
ALL = ("portal", "registry", "inventory", "sourcing", "reporting", "notifications")  # port_base + index


def free_block(size: int = 6) -> int:
    """A base port with the `size` ports from it free (the runner gives each service base + offset)."""
    for _ in range(200):
        base = random.randrange(20000, 40000)
        if all(port_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free block of ports")


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    with temporary_vhost(ensure_broker(), prefix="kkmp-run") as url:
        yield url


def start_runner(tmp_path: Path, amqp_url: str, only: tuple[str, ...]) -> tuple[subprocess.Popen[bytes], int]:
    base = free_block()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL") and k != "KKMP_DATA_DIR"}
    env.update({"AMQP_URL": amqp_url, "KKMP_DEMO": "1", "LOG_LEVEL": "WARNING", "DETECTION_INTERVAL_S": "0"})
    command = [KKMP, "run", "--no-demo", "--data-dir", str(tmp_path), "--port-base", str(base)]
    for name in only:
        command += ["--only", name]
    output = (tmp_path / "runner.out").open("wb")
    runner = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    return runner, base


@pytest.mark.parametrize(
    ("stop_signal", "only"),
    [
        (signal.SIGTERM, ALL),
        # The terminal closed: the same path; two services are enough to show it.
        (signal.SIGHUP, ("registry", "portal")),
    ],
    ids=["SIGTERM-all-six", "SIGHUP"],
)
def test_a_stop_signal_stops_every_service_and_frees_their_ports(
    tmp_path: Path, amqp_url: str, stop_signal: signal.Signals, only: tuple[str, ...]
) -> None:
    runner, base = start_runner(tmp_path, amqp_url, only)
    ports = [base + ALL.index(name) for name in only]
    children: set[int] = set()
    try:
        wait_until(
            lambda: runner.poll() is not None or all(ready(port) for port in ports),
            timeout=150,
            message=f"services not ready; see {tmp_path / 'runner.out'} and {tmp_path / 'logs'}",
        )
        assert runner.poll() is None, (tmp_path / "runner.out").read_text(errors="replace")
        children = children_of(runner.pid)
        assert len(children) == len(only), children

        runner.send_signal(stop_signal)
        assert runner.wait(timeout=30) == 0

        output = (tmp_path / "runner.out").read_text(errors="replace")
        assert f"Stopping ({stop_signal.name})" in output and "Stopped." in output, output
        for pid in children:
            assert not Path(f"/proc/{pid}").exists(), f"service process {pid} outlived the runner"
        assert all(port_free(port) for port in ports), [p for p in ports if not port_free(p)]
    finally:  # a failed test leaves nothing running behind it
        if runner.poll() is None:
            children |= children_of(runner.pid)
            runner.kill()
            runner.wait(timeout=10)
        for pid in children:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


def test_a_stop_signal_during_start_up_stops_what_was_started(tmp_path: Path, amqp_url: str) -> None:
    """A signal while the runner still waits for its services to answer stops what it started."""
    runner, base = start_runner(tmp_path, amqp_url, ("registry",))
    wait_until(lambda: len(children_of(runner.pid)) == 1, timeout=30)
    children = children_of(runner.pid)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists()
    assert port_free(base + ALL.index("registry"))
