"""RabbitMQ for tests: find a broker, isolate tests in vhosts, and run private nodes to break.

- :func:`ensure_broker` returns an AMQP URL of a broker that answers: ``AMQP_URL``, the machine's
  local node, a testcontainers container, or the local node started on demand, in that order.
- :func:`create_vhost` / :func:`delete_vhost` / :func:`temporary_vhost` / :func:`vhost_url` give
  each test run a vhost of its own, so parallel runs (xdist workers, two CI jobs) on one broker
  never see each other's queues.
- :class:`RabbitCluster` is three such nodes joined into one cluster (``rabbitmqctl join_cluster``),
  for tests of quorum queues and of failover between nodes.
- :class:`PrivateRabbit` is a RabbitMQ node started for one test module, on its own ports and
  data directory, that fault tests may SIGKILL, restart or push into a memory alarm. Fault tests
  must use it and never the machine's shared node on 5672, which other tests (and other
  engineers' runs) rely on.

How a private node is started (Debian's ``rabbitmq-server`` 3.10 package, checked on this machine):
``/usr/sbin/rabbitmq-server`` is a wrapper which, run as root, re-runs the real script under
``su rabbitmq``. ``su`` without ``-l`` keeps the environment apart from HOME, SHELL, USER and
LOGNAME, so the ``RABBITMQ_*`` variables set here reach the node, and the node runs as the
``rabbitmq`` user with ``HOME=/var/lib/rabbitmq``. Its Erlang cookie is therefore
``/var/lib/rabbitmq/.erlang.cookie`` (not root's). ``rabbitmqctl`` run as root goes through the
same wrapper and ``su``, so it reads the same cookie and can always talk to the node. Running as
any other user, the wrapper refuses; :class:`PrivateRabbit` then runs the scripts under
``/usr/lib/rabbitmq/bin`` directly with ``HOME`` set to the node's own directory, holding a cookie
of its own, and runs ``rabbitmqctl`` with the same ``HOME``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from kkmp_testkit._aio import run_sync
from kkmp_testkit.ports import free_ports

__all__ = [
    "PrivateRabbit",
    "RabbitCluster",
    "amqp_answers",
    "create_vhost",
    "delete_vhost",
    "ensure_broker",
    "rabbitmqctl",
    "release_vhosts",
    "temporary_vhost",
    "vhost_url",
]

LOCAL_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"

_RABBIT_LIB_BIN = Path("/usr/lib/rabbitmq/bin")
_ROOT_WRAPPER_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _find_tool(name: str) -> str | None:
    """Locate a RabbitMQ CLI tool; /usr/sbin is often missing from a non-login PATH."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _ROOT_WRAPPER_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return None


# --------------------------------------------------------------------------------------------
# Reachability probes
# --------------------------------------------------------------------------------------------

_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def amqp_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when ``host:port`` speaks AMQP 0-9-1: it answers our protocol header with a frame.

    A bare TCP connect is not enough: RabbitMQ's Erlang distribution port, a proxy or an unrelated
    server would pass it. A broker that is still booting accepts nothing at all on its AMQP port,
    because the listener is opened as the last boot step.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_AMQP_HEADER)
            first = sock.recv(1)
    except OSError:
        return False
    # Frame type 1 is a METHOD frame (connection.start). A broker that dislikes the header
    # answers with its own header instead ("AMQP..."), which still proves it is a broker.
    return first in (b"\x01", b"A")


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default_port = 5671 if parts.scheme == "amqps" else 5672
    return parts.hostname or "127.0.0.1", parts.port or default_port


async def _alogin(url: str, timeout: float) -> None:
    import aio_pika  # lazy: importing this module must not require the broker client

    connection = await aio_pika.connect(url, timeout=timeout)
    await connection.close()


def _can_login(url: str, timeout: float = 5.0) -> bool:
    """True when a full AMQP connection (credentials and vhost included) opens on ``url``."""
    try:
        run_sync(_alogin(url, timeout))
    except Exception:
        return False
    return True


def _answers(url: str) -> bool:
    """Cheap liveness check of the broker behind ``url``, without logging in."""
    host, port = _host_port(url)
    if urlsplit(url).scheme == "amqps":
        # A TLS listener would answer our plaintext header with a TLS alert: TCP must do.
        try:
            socket.create_connection((host, port), timeout=2.0).close()
        except OSError:
            return False
        return True
    return amqp_answers(host, port)


def _reachable(url: str) -> bool:
    return _answers(url) and _can_login(url)


# --------------------------------------------------------------------------------------------
# rabbitmqctl
# --------------------------------------------------------------------------------------------


def rabbitmqctl(
    *args: str,
    node: str | None = None,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    executable: str | None = None,
) -> str:
    """Run ``rabbitmqctl [-n node] args...`` and return its stdout; raise ``RuntimeError`` on failure.

    ``node=None`` addresses the machine's default node (``NODENAME`` in
    /etc/rabbitmq/rabbitmq-env.conf, ``rabbit@localhost`` here).
    """
    ctl = executable or _find_tool("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("rabbitmqctl not found: install the rabbitmq-server package")
    command = [ctl, *(["-n", node] if node else []), *args]
    # The Debian wrapper passes arguments through `su -c "..."`, re-quoting only double quotes;
    # a `$` or a backquote would be expanded by that shell, so refuse them rather than run
    # something else than what was asked.
    if ctl.startswith(_ROOT_WRAPPER_DIRS) and any(ch in arg for arg in args for ch in "$`\\"):
        raise ValueError(f"rabbitmqctl argument unsafe through the Debian wrapper: {args!r}")
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(command)} timed out after {timeout}s") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {done.returncode}: {' | '.join(detail[-6:])}"
        )
    return done.stdout


# --------------------------------------------------------------------------------------------
# ensure_broker
# --------------------------------------------------------------------------------------------

_broker_lock = threading.Lock()
_broker_url: str | None = None
# The testcontainers container, when ensure_broker had to start one (kept for vhost commands).
_container: Any = None


def _docker_answers() -> bool:
    try:
        import docker  # installed with testcontainers; lazy so a bare install still imports us

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _start_container() -> str:
    """Start ``rabbitmq:3-management`` with testcontainers and return its AMQP URL."""
    global _container
    # DockerContainer rather than testcontainers' RabbitMqContainer: the latter imports pika,
    # which this project does not install. The readiness wait is ours (AMQP login).
    from testcontainers.core.container import DockerContainer

    container = DockerContainer("rabbitmq:3-management").with_exposed_ports(5672)
    container.start()
    atexit.register(container.stop)
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(5672))
    # The official image allows guest from any address (loopback_users.guest = false).
    url = f"amqp://guest:guest@{host}:{port}/"
    deadline = time.monotonic() + 90
    while not _reachable(url):
        if time.monotonic() > deadline:
            container.stop()
            raise RuntimeError(f"rabbitmq:3-management container did not accept AMQP on {url}")
        time.sleep(0.5)
    _container = container
    return url


def _start_local_default_node(timeout: float) -> str | None:
    """Start the machine's default node (`rabbitmq-server -detached`) and wait for 5672."""
    server = _find_tool("rabbitmq-server")
    if server is None:
        return None
    try:
        subprocess.run(
            [server, "-detached"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _reachable(LOCAL_BROKER_URL):
            return LOCAL_BROKER_URL
        time.sleep(0.5)
    return None


def ensure_broker(url: str | None = None, *, start_timeout: float = 60.0) -> str:
    """Return the AMQP URL of a reachable broker for the tests, starting one if need be.

    Order: ``url`` if given; ``$AMQP_URL`` if set; the local ``127.0.0.1:5672``; a
    ``rabbitmq:3-management`` testcontainer when a Docker engine answers; the machine's default
    node started with ``rabbitmq-server -detached``. Each candidate counts only if a real AMQP
    login succeeds. Raises ``RuntimeError`` with one line saying what to do when none works.
    The answer is cached for the process (a second call only re-checks that it still answers).
    """
    global _broker_url
    with _broker_lock:
        if url is None and _broker_url is not None and _answers(_broker_url):
            return _broker_url
        tried: list[str] = []
        # An explicit ``url`` is returned but not cached: it must not become every later
        # caller's default (it may be a PrivateRabbit that is about to go away).
        if url:
            if _reachable(url):
                return url
            tried.append(f"url argument {_redact(url)} unreachable")
        env_url = os.environ.get("AMQP_URL")
        if env_url:
            if _reachable(env_url):
                _broker_url = env_url
                return env_url
            tried.append(f"$AMQP_URL {_redact(env_url)} unreachable")
        if _reachable(LOCAL_BROKER_URL):
            _broker_url = LOCAL_BROKER_URL
            return LOCAL_BROKER_URL
        tried.append(f"{':'.join(map(str, _host_port(LOCAL_BROKER_URL)))} unreachable")
        if _docker_answers():
            try:
                _broker_url = _start_container()
                return _broker_url
            except Exception as exc:
                tried.append(f"testcontainers failed ({type(exc).__name__}: {exc})".replace("\n", " "))
        else:
            tried.append("no Docker engine")
        started = _start_local_default_node(start_timeout)
        if started:
            _broker_url = started
            return started
        tried.append("`rabbitmq-server -detached` did not bring up 5672")
        raise RuntimeError(
            "No RabbitMQ broker for the tests: set AMQP_URL=amqp://user:pass@host:port/ to a running "
            "broker, or start the local one (as root: `rabbitmq-server -detached`), or start a Docker "
            f"engine for testcontainers [{'; '.join(tried)}]"
        )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------------------------
# vhosts
# --------------------------------------------------------------------------------------------


def vhost_url(base_url: str, vhost: str) -> str:
    """``base_url`` with its vhost replaced by ``vhost`` (percent-encoded: "/" becomes %2F)."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def _vhost_ctl(args: list[str], node: str | None) -> str:
    if node is None and _container is not None:
        # The broker is a container: its own rabbitmqctl has the right cookie and node name.
        exit_code, output = _container.exec(["rabbitmqctl", *args])
        if exit_code != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} in the container failed: {output!r}")
        return output.decode() if isinstance(output, bytes) else str(output)
    return rabbitmqctl(*args, node=node)


VHOST_START_S = 180.0


def create_vhost(name: str, *, node: str | None = None, user: str = "guest") -> None:
    """Create vhost ``name`` and give ``user`` full permissions on it.

    ``node`` is a rabbitmqctl node name (``PrivateRabbit.node``); ``None`` means the broker that
    :func:`ensure_broker` chose (its container) or else the machine's default node.
    """
    try:
        _vhost_ctl(["add_vhost", name], node)
    except RuntimeError as exc:
        # A broker busy with other tests' quorum queues can take longer than rabbitmqctl waits to
        # start a vhost, and goes on starting it: wait for it rather than fail the test's set-up.
        if "timed out" not in str(exc):
            raise
        deadline = time.monotonic() + VHOST_START_S
        while name not in _vhost_ctl(["list_vhosts", "--quiet"], node).split():
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    _vhost_ctl(["set_permissions", "-p", name, user, ".*", ".*", ".*"], node)


def create_vhost_user(vhost: str, *, node: str | None = None) -> tuple[str, str]:
    """A broker user of the vhost's own, with a random password: what a deployment outside demo mode
    gives its services (they refuse RabbitMQ's default guest password). Returns (user, password)."""
    user, password = f"kkmp-{vhost}", secrets.token_hex(16)  # never a leading "-" (an option)
    _vhost_ctl(["add_user", user, password], node)
    _vhost_ctl(["set_permissions", "-p", vhost, user, ".*", ".*", ".*"], node)
    return user, password


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def delete_user(user: str, *, node: str | None = None) -> None:
    with contextlib.suppress(RuntimeError):  # already gone
        _vhost_ctl(["delete_user", user], node)


def delete_vhost(name: str, *, node: str | None = None) -> None:
    """Delete vhost ``name`` with everything in it; a vhost that is already gone is fine."""
    try:
        _vhost_ctl(["delete_vhost", name], node)
    except RuntimeError as exc:
        if "does not exist" not in str(exc) and "no_such_vhost" not in str(exc):
            raise


class _VhostPool:
    """Vhosts of the machine's default node, created and deleted a few at a time.

    Each ``rabbitmqctl`` call starts an Erlang VM (half a second of CPU on an idle machine, several
    seconds of wall time on a busy one), and a vhost took three of them. Here one ``rabbitmqctl eval``
    creates ``BATCH`` vhosts with the guest user's permissions, and one deletes the vhosts handed back
    (in a background thread, once ``BATCH`` of them wait, and at exit).
    """

    BATCH = 4
    ACTING_USER = "kkmp-tests"

    def __init__(self) -> None:
        self.ready: list[str] = []
        self.returned: list[str] = []
        self.lock = threading.Lock()
        self.deleting: list[threading.Thread] = []
        self.first = True
        atexit.register(self.close)

    def take(self) -> str:
        with self.lock:
            if self.first:
                self.first = False
                self._delete_orphans()
            if not self.ready:
                names = [f"kkmptest-{os.getpid()}-{uuid.uuid4().hex[:10]}" for _ in range(self.BATCH)]
                self._create(names)
                self.ready.extend(names)
            return self.ready.pop()

    def give_back(self, name: str) -> None:
        with self.lock:
            self.returned.append(name)
            if len(self.returned) < self.BATCH:
                return
            names, self.returned = self.returned, []
        thread = threading.Thread(target=self._delete, args=(names,), daemon=True)
        thread.start()
        self.deleting.append(thread)

    def release(self) -> None:
        """Delete the vhosts handed back so far, now."""
        with self.lock:
            names, self.returned = self.returned, []
        if names:
            self._delete(names)

    def close(self) -> None:
        with self.lock:
            names, self.returned = self.returned + self.ready, []
            self.ready = []
        for thread in self.deleting:
            thread.join(timeout=VHOST_START_S)
        if names:
            with contextlib.suppress(RuntimeError):
                self._delete(names)

    def _create(self, names: list[str]) -> None:
        user = self.ACTING_USER
        each = (
            f'begin ok = rabbit_vhost:add(V, <<"{user}">>), '
            f'ok = rabbit_auth_backend_internal:set_permissions(<<"guest">>, V, <<".*">>, <<".*">>, '
            f'<<".*">>, <<"{user}">>) end'
        )
        try:
            _eval(f"[{each} || V <- [{_binaries(names)}]], ok.")
        except RuntimeError as exc:
            # A busy broker may take longer than rabbitmqctl waits and go on creating them.
            if "timed out" not in str(exc):
                raise
            deadline = time.monotonic() + VHOST_START_S
            while not set(names) <= set(rabbitmqctl("list_vhosts", "--quiet").split()):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
            for name in names:
                rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")

    def _delete_orphans(self) -> None:
        """Delete the pooled vhosts of test processes that died before handing them back: each one
        keeps file handles of the node's (its message stores) until it is deleted."""
        if not Path("/proc/self").exists():
            return  # no way to tell a live owner from a dead one
        orphans = []
        for name in rabbitmqctl("list_vhosts", "--quiet").split():
            owner = re.fullmatch(r"kkmptest-(\d+)-[0-9a-f]+", name)
            if owner and not Path(f"/proc/{owner.group(1)}").exists():
                orphans.append(name)
        if orphans:
            self._delete(orphans)

    def _delete(self, names: list[str]) -> None:
        # A vhost already gone (deleted by its test) answers an error tuple, not an exception.
        _eval(f'[catch rabbit_vhost:delete(V, <<"{self.ACTING_USER}">>) || V <- [{_binaries(names)}]], ok.')


def _binaries(names: list[str]) -> str:
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"vhost name unsafe in an Erlang expression: {name!r}")
    return ", ".join(f'<<"{name}">>' for name in names)


def _eval(expression: str) -> str:
    return rabbitmqctl("eval", expression, timeout=VHOST_START_S)


_pool: _VhostPool | None = None


def _vhost_pool() -> _VhostPool:
    global _pool
    if _pool is None:
        _pool = _VhostPool()
    return _pool


def release_vhosts() -> None:
    """Delete now the pooled vhosts whose tests are done (otherwise deleted a few at a time)."""
    if _pool is not None:
        _pool.release()


@contextlib.contextmanager
def temporary_vhost(base_url: str, prefix: str = "kkmptest", *, node: str | None = None) -> Iterator[str]:
    """Create a uniquely named vhost, yield its AMQP URL, and delete it afterwards.

    On the machine's default node the vhost comes from a pool (``prefix`` is then not in its name) and
    is deleted with the next few handed back, or by :func:`release_vhosts`.
    """
    if node is None and _container is None:
        pool = _vhost_pool()
        name = pool.take()
        try:
            yield vhost_url(base_url, name)
        finally:
            pool.give_back(name)
        return
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_vhost(name, node=node)
    try:
        yield vhost_url(base_url, name)
    finally:
        delete_vhost(name, node=node)


# --------------------------------------------------------------------------------------------
# PrivateRabbit
# --------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (the node's parent may never reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    match = re.search(r"^State:\s+(\S)", status, re.MULTILINE)
    return match is not None and match.group(1) not in ("Z", "X")


def _processes_with_env(marker: bytes) -> list[tuple[int, str]]:
    """(pid, comm) of every process whose environment contains ``marker`` (e.g. NODENAME=...).

    The node's OS processes (beam.smp, erl_child_setup, inet_gethost, the disk monitor's sh) all
    inherit the environment the node was started with, so this finds exactly that node's
    processes, without trusting a pid file or asking the (possibly hung) node itself.
    """
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        found.append((int(entry.name), comm))
    return found


class PrivateRabbit:
    """A RabbitMQ node of the test's own, on free ports, with its data in a temporary directory.

    Usage::

        with PrivateRabbit() as rabbit:       # start() on enter, cleanup() on exit
            conn = await aio_pika.connect(rabbit.url)
            rabbit.kill(); rabbit.start()     # crash and recover, data directory kept
            rabbit.set_memory_alarm(True)     # publishers get blocked

    A start takes ~5-7 s on 2 cores (mostly the VM loading RabbitMQ's modules), a graceful stop
    ~1.5 s, a SIGKILL ~0.1 s: keep one node per test module, not per test.

    Args:
        name: node name prefix; the node is ``<name>-<port>@localhost``.
        base_dir: where data, logs and config go (default: a new ``/tmp/kkmp-rabbit-*``,
            removed by ``cleanup()``; a given directory is left in place).
        start_timeout: seconds ``start()`` waits for an AMQP login before giving up.
        extra_config: extra ``rabbitmq.conf`` lines (new-style sysctl format).
        erl_args: extra Erlang VM flags (e.g. fewer schedulers for a lean node).
        cookie: the Erlang cookie when the node does not run under the Debian wrapper (the nodes of
            a :class:`RabbitCluster` share one).
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 45.0,
        extra_config: str = "",
        erl_args: str = "",
        cookie: str | None = None,
    ) -> None:
        self._name = name or "kkmptest"
        self.port, self.dist_port = free_ports(2)
        #: The Erlang node name, for ``rabbitmqctl -n``; unique while the node lives (port inside).
        self.node = f"{self._name}-{self.port}@localhost"
        self.start_timeout = start_timeout
        self.extra_config = extra_config
        self.erl_args = erl_args
        self._cookie = cookie
        self._own_base = base_dir is None
        # /tmp explicitly: the node runs as `rabbitmq` and must be able to reach its directory,
        # which a TMPDIR under /root would not allow.
        self.base_dir = (
            Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="kkmp-rabbit-", dir="/tmp"))
        )
        self.pid: int | None = None
        #: Seconds the last start() took until an AMQP login succeeded (for tuning timeouts).
        self.last_start_seconds: float | None = None
        self._prepared = False
        self._booted_once = False
        self._saved_limits: dict[str, str] = {}
        self._cleaned = False
        self._runs_as_root = os.geteuid() == 0
        self._is_rabbitmq_user = _is_rabbitmq_user()
        # A test that forgets cleanup() (or dies of an exception) must not leave a node or a
        # directory behind.
        atexit.register(self.cleanup)

    # -- paths and environment --------------------------------------------------------------

    @property
    def url(self) -> str:
        """AMQP URL of the node's default vhost (guest is allowed because we connect via loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def mnesia_base(self) -> Path:
        return self.base_dir / "mnesia"

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "log"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.node}.log"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "node.pid"

    def _uses_wrapper(self) -> bool:
        return self._runs_as_root or self._is_rabbitmq_user

    def _home(self) -> str | None:
        # With the Debian wrapper `su` sets HOME=/var/lib/rabbitmq (cookie there). Without it we
        # are some other user and give the node, and our rabbitmqctl, a HOME with our own cookie.
        return None if self._uses_wrapper() else str(self.base_dir)

    def _node_env(self) -> dict[str, str]:
        # Inherited RABBITMQ_* settings (from a developer's shell, say) must not leak into the node.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.mnesia_base),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base_dir / "enabled_plugins"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(self.base_dir / "plugins-expand"),
            RABBITMQ_CONFIG_FILE=str(self.base_dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base_dir / "advanced.config"),
            # An empty env file of our own: /etc/rabbitmq/rabbitmq-env.conf sets NODENAME and
            # ERL_FLAGS for the machine's node and must not apply to ours.
            RABBITMQ_CONF_ENV_FILE=str(self.base_dir / "rabbitmq-env.conf"),
            # Like the machine's node (its rabbitmq-env.conf): the distribution port and, if this
            # node is the one that starts it, epmd listen on loopback only.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                f"-kernel inet_dist_use_interface {{127,0,0,1}} {self.erl_args}".strip()
            ),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        home = self._home()
        if home:
            env["HOME"] = home
        return env

    def _ctl_env(self) -> dict[str, str] | None:
        home = self._home()
        return None if home is None else {**os.environ, "HOME": home}

    def _ctl_executable(self) -> str | None:
        return None if self._uses_wrapper() else str(_RABBIT_LIB_BIN / "rabbitmqctl")

    def _prepare(self) -> None:
        if self._prepared:
            return
        for directory in (self.base_dir, self.mnesia_base, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "enabled_plugins").write_text("[].\n")  # no plugins: faster boot
        (self.base_dir / "advanced.config").write_text("[].\n")
        (self.base_dir / "rabbitmq-env.conf").write_text("")
        # Our own main config replaces /etc/rabbitmq/rabbitmq.conf, whose listener is 5672.
        (self.base_dir / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.1 = 127.0.0.1:{self.port}",
                    "loopback_users.guest = true",
                    # Test data is tiny; the default 50MB free-disk limit could still trip on a
                    # nearly full CI disk (seen: 287M free) and block publishers for no reason.
                    "disk_free_limit.absolute = 1MB",
                    "log.file.level = info",
                    "log.console = false",
                    self.extra_config,
                ]
            )
            + "\n"
        )
        cookie = self.base_dir / ".erlang.cookie"
        if not self._uses_wrapper() and not cookie.exists():
            # Nodes of one cluster share a cookie (under the Debian wrapper they all use rabbitmq's).
            cookie.write_text(self._cookie or secrets.token_hex(20))
            cookie.chmod(0o400)  # Erlang refuses a cookie readable by others
        if self._runs_as_root:
            # The node runs as `rabbitmq` (the wrapper's `su`): it must own its directories.
            rabbit_user = pwd.getpwnam("rabbitmq")
            for path in [self.base_dir, *self.base_dir.rglob("*")]:
                os.chown(path, rabbit_user.pw_uid, rabbit_user.pw_gid)
        self._prepared = True

    # -- process discovery -----------------------------------------------------------------

    def _node_processes(self) -> list[tuple[int, str]]:
        marker = f"RABBITMQ_NODENAME={self.node}".encode()
        # epmd is shared by every Erlang node on the machine (the shared broker included); if our
        # node happened to start it, it carries our environment, but it must never be killed.
        return [(pid, comm) for pid, comm in _processes_with_env(marker) if comm != "epmd"]

    def _is_our_beam(self, pid: int) -> bool:
        """True if ``pid`` is alive and is this node's VM: a pid from a pid file or from an
        earlier start may have been reused by an unrelated process, which must never be killed."""
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
        marker = f"RABBITMQ_NODENAME={self.node}".encode()
        return comm.startswith("beam") and marker in environ and _pid_alive(pid)

    def _find_beam_pid(self) -> int | None:
        candidates: list[int] = []
        if self.pid is not None:
            candidates.append(self.pid)
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int(self.pid_file.read_text().strip()))
        for pid in candidates:
            if self._is_our_beam(pid):
                return pid
        for pid, comm in self._node_processes():
            if comm.startswith("beam") and _pid_alive(pid):
                return pid
        return None

    def is_running(self) -> bool:
        """True while the node's Erlang VM process exists (it may still be booting)."""
        self.pid = self._find_beam_pid()
        return self.pid is not None

    def log_tail(self, lines: int = 25) -> str:
        """The end of the node's log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no node log)"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> PrivateRabbit:
        """Start the node (or restart it on its existing data) and wait until AMQP login works.

        On the very first start, a port that someone else grabbed since it was chosen (the kernel
        may hand an ephemeral port to any outgoing connection) is not an error: the node gets
        fresh ports, a new name and an empty directory, up to twice. Later starts keep the port,
        since clients were given ``url``.
        """
        if self._cleaned:
            raise RuntimeError("this PrivateRabbit was cleaned up; make a new one")
        if self.is_running():
            return self
        attempts = 1 if self._booted_once else 3
        for attempt in range(1, attempts + 1):
            if not self._booted_once and not self._ports_free():
                self._new_identity()
            self._prepare()
            try:
                self._boot(timeout or self.start_timeout)
            except _BootFailed as exc:
                if self._booted_once or attempt == attempts or self._ports_free():
                    raise RuntimeError(str(exc)) from None
                self._new_identity()  # a port clash: try again elsewhere
                continue
            self._booted_once = True
            return self
        raise AssertionError("unreachable")

    def _ports_free(self) -> bool:
        return _port_free(self.port) and _port_free(self.dist_port)

    def _new_identity(self) -> None:
        """Fresh ports and node name, and an empty data directory (first start only)."""
        _sweep(self._node_processes, grace=1.0)
        for directory in (self.mnesia_base, self.log_dir):
            shutil.rmtree(directory, ignore_errors=True)
        self.port, self.dist_port = free_ports(2)
        self.node = f"{self._name}-{self.port}@localhost"
        self._prepared = False

    def _boot(self, timeout: float) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()  # a stale pid file after kill() would point at a dead pid
        began = time.monotonic()
        if self._uses_wrapper():
            server = _find_tool("rabbitmq-server")
        else:
            server = str(_RABBIT_LIB_BIN / "rabbitmq-server")
        if server is None or not Path(server).exists():
            raise RuntimeError("rabbitmq-server not found: install the rabbitmq-server package")
        launch_log = self.base_dir / "launch.log"
        with launch_log.open("ab") as out:
            # -detached: the script forks the VM and returns at once; the VM outlives us until
            # stop()/kill()/cleanup(). Its output goes to the node log, not here.
            done = subprocess.run(
                [server, "-detached"],
                env=self._node_env(),
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=60,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"{server} -detached exited {done.returncode}: {launch_log.read_text(errors='replace')}"
            )

        deadline = began + timeout
        seen_beam = False
        while True:
            beam = self._find_beam_pid()
            if beam is not None:
                seen_beam = True
                self.pid = beam
            elif seen_beam:
                # The VM came up and died: a port clash, a corrupt data dir, a bad config.
                raise _BootFailed(f"RabbitMQ node {self.node} died while booting:\n{self.log_tail()}")
            elif time.monotonic() - began > 15:
                raise _BootFailed(
                    f"RabbitMQ node {self.node} never started (no beam.smp with its name):\n"
                    f"{launch_log.read_text(errors='replace')[-2000:]}\n{self.log_tail()}"
                )
            if beam is not None and amqp_answers("127.0.0.1", self.port, timeout=1.0):
                if _can_login(self.url, timeout=5.0):
                    break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"RabbitMQ node {self.node} not accepting AMQP on port {self.port} after "
                    f"{time.monotonic() - began:.1f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        self.last_start_seconds = time.monotonic() - began

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node gracefully (`rabbitmqctl stop`); SIGKILL it if it does not go in time."""
        if not self.is_running():
            return
        pid = self.pid
        try:
            self.ctl("stop", timeout=timeout)
        except RuntimeError:
            # The node may be wedged (or the CLI unable to reach it): SIGTERM makes the Erlang VM
            # shut down cleanly too.
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        # `rabbitmqctl stop` returns once the node has *agreed* to halt; wait for the OS process,
        # or a quick start() after it would find the old VM and the ports still taken.
        if pid is not None and not _wait_gone(pid, timeout):
            self.kill()
        self.pid = None

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM, as a crash or an OOM kill would, and wait until it is gone.

        Only this node's beam.smp is killed (found by the pid file or by its environment), never
        epmd and never another node. The data directory stays as the crash left it, so start()
        exercises RabbitMQ's crash recovery.
        """
        pid = self._find_beam_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, 15.0):
            raise RuntimeError(f"RabbitMQ node {self.node} (pid {pid}) survived SIGKILL")
        self.pid = None
        # The VM's helper processes (erl_child_setup, inet_gethost, the disk monitor's shell) see
        # their pipes close and exit by themselves; give them a moment, then make sure.
        _sweep(self._node_processes, grace=2.0)

    def restart(self, *, hard: bool = False, timeout: float | None = None) -> None:
        """Stop (or with ``hard=True`` SIGKILL) the node and start it again on the same data and port."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start(timeout=timeout)

    def cleanup(self) -> None:
        """Make sure the node and all its processes are gone, then remove its directory."""
        if self._cleaned:
            return
        try:
            if self.is_running():
                try:
                    self.stop(timeout=15.0)
                except Exception:
                    self.kill()
            _sweep(self._node_processes, grace=0.5)
        finally:
            self._cleaned = True
            atexit.unregister(self.cleanup)
            # KKMP_TEST_KEEP_DIRS=1 keeps data and logs for a post-mortem of a failed run.
            if self._own_base and not os.environ.get("KKMP_TEST_KEEP_DIRS"):
                shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- control -----------------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        """Run ``rabbitmqctl -n <this node> args...`` and return its output."""
        return rabbitmqctl(
            *args, node=self.node, timeout=timeout, env=self._ctl_env(), executable=self._ctl_executable()
        )

    def eval(self, expression: str, timeout: float = 30.0) -> str:
        """Evaluate an Erlang expression on the node (``rabbitmqctl eval``) and return the result text."""
        return self.ctl("eval", expression, timeout=timeout).strip()

    def os_pid(self) -> int:
        """The node VM's OS pid as the node itself reports it (``os:getpid()``)."""
        return int(self.eval("os:getpid().").strip('"'))

    def sync_metadata(self) -> None:
        """Force the node's definitions (vhosts, queues, exchanges, bindings) to disk now.

        RabbitMQ 3.10 keeps definitions in Mnesia, which writes its transaction log
        asynchronously: ``queue.declare-ok`` can arrive before the durable queue is on disk, and
        a SIGKILL a few milliseconds later then loses the queue, messages and all (seen here
        under load). Messages themselves are safe once confirmed. Call this between declaring
        topology and ``kill()`` when the test is about message durability, not about that race.
        """
        self.eval("mnesia:sync_log().")

    def memory_alarm_active(self) -> bool:
        """True while this node has a memory resource alarm in force."""
        return self.alarm_active("memory")

    def alarm_active(self, resource: str) -> bool:
        """True while this node has a `memory` or `disk` resource alarm in force."""
        return resource in self.eval("rabbit_alarm:get_alarms().")

    def set_memory_alarm(self, on: bool, timeout: float = 15.0) -> None:
        """Raise (``on=True``) or clear the node's memory alarm, and wait until it took effect.

        Raising sets the memory high watermark to 0 (what ``rabbitmqctl
        set_vm_memory_high_watermark 0`` does: any memory use is over it), the broker's real
        alarm path: publishing connections get ``connection.blocked`` and are no longer read
        until the alarm clears, so their confirms stop. Clearing restores the watermark the node
        had before (0.4 by default). The setting is runtime-only: a restart also clears it.
        """
        self.set_alarm("memory", on, timeout)

    def set_disk_alarm(self, on: bool, timeout: float = 15.0) -> None:
        """Raise or clear the node's disk alarm, and wait until it took effect.

        Raising sets the free-disk limit to a petabyte (``rabbitmqctl set_disk_free_limit``): the
        disk monitor finds less free space than that and raises the alarm, which blocks publishers
        exactly as a full disk would. Clearing restores the limit the node had before.
        """
        self.set_alarm("disk", on, timeout)

    def set_alarm(self, resource: str, on: bool, timeout: float = 15.0) -> None:
        if resource == "memory":
            get, set_, raised = (
                "vm_memory_monitor:get_vm_memory_high_watermark().",
                "vm_memory_monitor:set_vm_memory_high_watermark({})",
                "0.0",
            )
        elif resource == "disk":
            get, set_, raised = (
                "rabbit_disk_monitor:get_disk_free_limit().",
                "rabbit_disk_monitor:set_disk_free_limit({})",
                str(10**15),
            )
        else:
            raise ValueError(f"no such alarm: {resource}")
        if on and resource not in self._saved_limits:
            self._saved_limits[resource] = self.eval(get)
        value = (
            raised if on else self._saved_limits.get(resource, "0.4" if resource == "memory" else "50000000")
        )
        # One eval sets the limit and reads the alarms back (each rabbitmqctl run boots an Elixir VM,
        # ~0.5 s of CPU); eval rather than the CLI command because the saved value may be
        # {absolute, Bytes}. The monitor raises or clears the alarm inside that call.
        alarms = self.eval(f"ok = {set_.format(value)}, rabbit_alarm:get_alarms().")
        deadline = time.monotonic() + timeout
        while (resource in alarms) != on:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{resource} alarm on {self.node} did not become {'on' if on else 'off'}")
            time.sleep(0.2)
            alarms = self.eval("rabbit_alarm:get_alarms().")

    def create_vhost(self, name: str, user: str = "guest") -> str:
        """Create vhost ``name`` on this node and return its AMQP URL."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        return vhost_url(self.url, name)

    def delete_vhost(self, name: str) -> None:
        """Delete vhost ``name`` on this node."""
        self.ctl("delete_vhost", name)

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> PrivateRabbit:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"PrivateRabbit(node={self.node!r}, port={self.port}, pid={self.pid})"


class _BootFailed(Exception):
    """The node died (or never appeared) while booting; start() may retry on fresh ports."""


def _port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _is_rabbitmq_user() -> bool:
    try:
        return os.geteuid() == pwd.getpwnam("rabbitmq").pw_uid
    except KeyError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _sweep(find: Callable[[], list[tuple[int, str]]], grace: float) -> None:
    """Wait up to ``grace`` seconds for the processes ``find()`` lists to exit, then SIGKILL them."""
    deadline = time.monotonic() + grace
    while True:
        left = [pid for pid, _ in find() if _pid_alive(pid)]
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# RabbitCluster
# --------------------------------------------------------------------------------------------

# Three nodes share 2 cores with everything else: schedulers that sleep when idle instead of spinning
# (the default busy-wait costs CPU the other nodes need; one scheduler each made boots 2x slower).
_LEAN_ERL_ARGS = "+sbwt none +sbwtdcpu none +sbwtdio none"
_LEAN_CONFIG = "\n".join(
    [
        # Seconds, not the default minute, to notice a peer that was SIGKILLed (distribution ticks).
        "net_ticktime = 10",
        "collect_statistics_interval = 30000",
    ]
)


class RabbitCluster:
    """A real RabbitMQ cluster on this machine: ``size`` :class:`PrivateRabbit` nodes (own node
    names, ports and data directories, one Erlang cookie) joined with ``rabbitmqctl join_cluster``.

    Usage::

        with RabbitCluster() as cluster:          # start(), cleanup() on exit
            cluster.urls                           # the nodes' AMQP URLs
            cluster.kill(1); cluster.restart(1)    # SIGKILL a node, start it again: it rejoins
            cluster.running_nodes()                # from cluster_status

    The nodes boot in parallel, then the others join the first one by one (stop_app,
    join_cluster, start_app). ``last_start_seconds`` says how long it took.
    """

    def __init__(self, size: int = 3, *, name: str = "kkmpcluster", start_timeout: float = 120.0) -> None:
        cookie = secrets.token_hex(20)
        self.nodes = [
            PrivateRabbit(
                name=f"{name}{index}",
                start_timeout=start_timeout,
                extra_config=_LEAN_CONFIG,
                erl_args=_LEAN_ERL_ARGS,
                cookie=cookie,
            )
            for index in range(size)
        ]
        self.start_timeout = start_timeout
        #: Seconds the last start() took, from launching the nodes to all of them running as one cluster.
        self.last_start_seconds: float | None = None

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def node_names(self) -> list[str]:
        return [node.node for node in self.nodes]

    def start(self) -> RabbitCluster:
        began = time.monotonic()
        errors: list[BaseException] = []

        def boot(node: PrivateRabbit) -> None:
            try:
                node.start()
            except BaseException as exc:  # reported below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        seed = self.nodes[0].node
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", seed)
            node.ctl("start_app", timeout=self.start_timeout)
        self.wait_running(len(self.nodes))
        self.last_start_seconds = time.monotonic() - began
        return self

    def running_nodes(self, via: int | None = None) -> list[str]:
        """The running members as a live node sees them (``cluster_status``)."""
        for index in [via] if via is not None else range(len(self.nodes)):
            node = self.nodes[index]
            if not node.is_running():
                continue
            with contextlib.suppress(RuntimeError, ValueError):
                status = json.loads(node.ctl("cluster_status", "--formatter", "json", timeout=30))
                return sorted(status.get("running_nodes", []))
        return []

    def wait_running(self, count: int, timeout: float | None = None) -> list[str]:
        """Wait until ``count`` members run (as every running node sees it) and return them."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        running: list[str] = []
        while time.monotonic() < deadline:
            running = self.running_nodes()
            if len(running) >= count:
                return running
            time.sleep(0.3)
        raise RuntimeError(f"cluster has {running} running, not {count} nodes")

    def kill(self, index: int) -> None:
        """SIGKILL one node (its data directory stays, as after a crash)."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout: float | None = None) -> float:
        """Start a stopped or killed node again on its data; wait until it runs in the cluster.
        Returns the seconds it took."""
        began = time.monotonic()
        self.nodes[index].start(timeout=timeout)
        deadline = began + (timeout or self.start_timeout)
        while True:
            running = self.running_nodes(via=index)
            if self.nodes[index].node in running and len(running) == len(self.nodes):
                return time.monotonic() - began
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.nodes[index].node} did not rejoin: running {running}")
            time.sleep(0.3)

    def cleanup(self) -> None:
        # SIGKILL rather than graceful stops: the data is thrown away, and a clustered node's stop
        # waits for its peers.
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.kill()
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> RabbitCluster:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
