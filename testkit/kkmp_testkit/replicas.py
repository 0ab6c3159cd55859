"""The platform as replicas on a RabbitMQ cluster: a 3-node :class:`~kkmp_testkit.rabbit.RabbitCluster`,
one fresh PostgreSQL database per service, and N replicas of every service as processes on their own
ports, the replicas of a service sharing its database. The proof that losing a broker node or a replica
loses nothing (tests/faults/test_cluster_replicas.py) and the cluster run of `make bench` both use it.

Every replica is given all the nodes' addresses in ``AMQP_URL``, in an order of its own (it connects to
the first that answers): :data:`PLACEMENT` puts one replica of each consuming service first on node 1,
the node the proof and the bench kill, and the others on nodes 0 and 2, so connections spread over the
nodes and the queue leaders (RabbitMQ places a quorum queue's leader on the node of the client that
declares it) land on all three.

Until migrations run under a lock and the registry's key comes from a shared secret in every branch,
the replicas of a service start one after another (the first ready before the second starts), and
every registry replica is given the same signing key file.

    with ReplicatedPlatform(work) as plat:
        plat.url("inventory", 1)            # replica 1's HTTP address
        plat.kill("sourcing", 0); plat.start_replica("sourcing", 0)
        plat.cluster.kill(1)                # a broker node
        await plat.counts("reporting", 1)   # its kkmp_events_consumed_total
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from kkmp_testkit.ports import free_port
from kkmp_testkit.postgres import create_database, drop_database, ensure_postgres
from kkmp_testkit.processes import ServiceProcess, service_env
from kkmp_testkit.rabbit import RabbitCluster

__all__ = [
    "CONSUMERS",
    "PLACEMENT",
    "SERVICES",
    "ReplicatedPlatform",
    "ResumeWatch",
    "keep_fed",
    "parse_consumed",
]

SERVICES = ("registry", "reporting", "inventory", "sourcing", "notifications")
#: The services that consume events (the registry only publishes).
CONSUMERS = ("inventory", "sourcing", "reporting", "notifications")
#: Service → the node each replica tries first (its AMQP_URL list starts there and goes round).
PLACEMENT: dict[str, tuple[int, ...]] = {
    "registry": (0, 2),
    "inventory": (0, 1),
    "sourcing": (1, 2),
    "reporting": (2, 1),
    "notifications": (1, 0),
}

_METRIC = re.compile(r"^kkmp_events_consumed_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_CONNECTED = re.compile(r"broker connected to [\w.\-]+:(\d+)")


def parse_consumed(text: str) -> dict[tuple[str, str], float]:
    """`kkmp_events_consumed_total` from a Prometheus page: (queue, outcome) → count."""
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line.strip())
        if match:
            labels = dict(_LABEL.findall(match["labels"]))
            out[(labels["queue"], labels["outcome"])] = float(match["value"])
    return out


def write_signing_key(path: Path) -> Path:
    """A PEM RSA key that every registry replica signs with (as a mounted secret would give them)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return path


@dataclass
class ReplicatedPlatform:
    """See the module docstring. ``env`` is added to every replica's environment, ``service_env[name]``
    to that service's; ``replicas`` per service (at most the cluster's size, for :data:`PLACEMENT`)."""

    work: Path
    replicas: int = 2
    services: Sequence[str] = SERVICES
    env: dict[str, str] = field(default_factory=dict)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    name: str = "kkmprep"
    admin_password: str = "replicas-admin-password"
    cluster: RabbitCluster = field(init=False)
    databases: dict[str, str] = field(default_factory=dict, init=False)
    processes: dict[str, list[ServiceProcess]] = field(default_factory=dict, init=False)
    #: Seconds the cluster took to start, and the services after it.
    started_s: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.cluster = RabbitCluster(name=self.name)

    # -- addresses ------------------------------------------------------------------------------

    def url(self, service: str, replica: int = 0) -> str:
        return self.processes[service][replica].url

    def urls(self, service: str) -> list[str]:
        return [p.url for p in self.processes[service]]

    def process(self, service: str, replica: int) -> ServiceProcess:
        return self.processes[service][replica]

    def first_node(self, service: str, replica: int) -> int:
        return PLACEMENT[service][replica % len(PLACEMENT[service])]

    def on_node(self, node: int, services: Iterable[str] = CONSUMERS) -> list[tuple[str, int]]:
        """(service, replica) of the replicas that connect to ``node`` first."""
        return [(s, r) for s in services for r in range(self.replicas) if self.first_node(s, r) == node]

    def amqp_urls(self, first: int) -> list[str]:
        urls = self.cluster.urls
        return [urls[(first + step) % len(urls)] for step in range(len(urls))]

    def live_node(self) -> int:
        """A node that runs now (for rabbitmqctl and the test's own AMQP connections)."""
        for index, node in enumerate(self.cluster.nodes):
            if node.is_running():
                return index
        raise RuntimeError("no broker node runs")

    # -- lifecycle ------------------------------------------------------------------------------

    def _environment(
        self, service: str, replica: int, ports: dict[str, list[int]], key: Path
    ) -> dict[str, str]:
        # Another service is reached at its replica 0 (the JWKS too: the registry replicas share a key).
        # LOG_LEVEL stays INFO (service_env's): ResumeWatch reads "broker connected to" from the logs.
        return service_env(
            service,
            data_dir=self.work / f"{service}-{replica}",
            amqp_url=",".join(self.amqp_urls(self.first_node(service, replica))),
            urls={n: f"http://127.0.0.1:{p[0]}" for n, p in ports.items()},
            admin_password=self.admin_password,
            database_url=self.databases[service],
            extra={
                # Ten processes on a PostgreSQL shared with other test runs (max_connections 100): a
                # budget of 10 × (3 + 3).
                "DATABASE_POOL_SIZE": "3",
                "DATABASE_MAX_OVERFLOW": "3",
                # The same starting key in every registry replica (they share the key store after).
                "SIGNING_KEY_FILE": str(key),
                **self.env,
                **self.service_env.get(service, {}),
            },
        )

    def start(self, timeout: float = 120.0) -> ReplicatedPlatform:
        began = time.monotonic()
        ensure_postgres()
        self.work.mkdir(parents=True, exist_ok=True)
        self.cluster.start()
        self.started_s["cluster"] = time.monotonic() - began
        self.databases = {s: create_database(f"{self.name}_{s}") for s in self.services}
        key = write_signing_key(self.work / "registry-signing-key.pem")
        ports = {s: [free_port() for _ in range(self.replicas)] for s in self.services}
        for service in self.services:
            self.processes[service] = [
                ServiceProcess(
                    service,
                    ports[service][r],
                    self._environment(service, r, ports, key),
                    self.work / f"{service}-{r}.log",
                )
                for r in range(self.replicas)
            ]
        services_began = time.monotonic()
        # Replica by replica: the services of one round start together (their databases differ), the
        # next round after the first is ready (no two migrations of one database at once). The registry
        # first: the others fetch its JWKS.
        for replica in range(self.replicas):
            if "registry" in self.processes:
                self.processes["registry"][replica].start()
                self.processes["registry"][replica].wait_ready(timeout)
            others = [s for s in self.services if s != "registry"]
            for service in others:
                self.processes[service][replica].start()
            for service in others:
                self.processes[service][replica].wait_ready(timeout)
        self.started_s["services"] = time.monotonic() - services_began
        # Every durable definition on disk before a node may be SIGKILLed (see PrivateRabbit.sync_metadata).
        for node in self.cluster.nodes:
            node.sync_metadata()
        return self

    def kill(self, service: str, replica: int) -> None:
        """SIGKILL one replica (no shutdown hook runs)."""
        self.processes[service][replica].kill()

    def start_replica(self, service: str, replica: int, timeout: float = 90.0) -> None:
        """Start a killed replica again, on the same port, database and broker addresses."""
        process = self.processes[service][replica]
        process.start()
        process.wait_ready(timeout)

    def cleanup(self) -> None:
        for processes in self.processes.values():
            for process in processes:
                with contextlib.suppress(Exception):
                    process.kill()  # no graceful stop needed: the data is thrown away
        self.cluster.cleanup()
        for url in self.databases.values():
            with contextlib.suppress(Exception):
                drop_database(url)

    def __enter__(self) -> ReplicatedPlatform:
        try:
            return self.start()
        except BaseException:
            print(self.logs())
            self.cleanup()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def logs(self, lines: int = 30) -> str:
        return "\n".join(
            f"===== {s}-{r}\n{p.log_tail(lines)}"
            for s, processes in self.processes.items()
            for r, p in enumerate(processes)
        )

    # -- observations ---------------------------------------------------------------------------

    def admin_token(self) -> str:
        response = httpx.post(
            f"{self.url('registry')}/auth/token",
            data={"username": "admin", "password": self.admin_password},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    async def counts(
        self, service: str, replica: int, client: httpx.AsyncClient | None = None
    ) -> dict[tuple[str, str], float]:
        """`kkmp_events_consumed_total` of one replica (zero for all after a restart)."""
        if client is None:
            async with httpx.AsyncClient(timeout=10) as own:
                return await self.counts(service, replica, own)
        response = await client.get(f"{self.url(service, replica)}/metrics")
        return parse_consumed(response.text)


class ResumeWatch:
    """How long consumers took to resume after a broker node was killed, per replica that was connected
    to it: from the kill to the first event the replica consumed on its new connection.

    "On its new connection": the replica's consumed counter (every queue, every outcome) is read as
    soon as its log says it connected to another node after the kill, and the resume is the first time
    it rises above that reading. A batch that was in flight on the dead connection and committed just
    after the kill is thus not taken for a resume. Counters are polled every ``interval`` seconds, so the
    figure is an upper bound by at most that much. The events must keep coming: the caller keeps a flow
    into every consuming queue while it waits.
    """

    def __init__(self, plat: ReplicatedPlatform, node: int, *, interval: float = 0.1) -> None:
        self.plat = plat
        self.node = node
        self.interval = interval
        self.watched = plat.on_node(node)
        self.killed_at: float | None = None
        self._offsets: dict[tuple[str, int], int] = {}
        self.reconnected: dict[tuple[str, int], float] = {}  # seconds after the kill
        self.resumed: dict[tuple[str, int], float] = {}
        self.new_node: dict[tuple[str, int], str] = {}

    def kill(self) -> None:
        """Note where each watched replica's log ends, then SIGKILL the node."""
        for service, replica in self.watched:
            path = self.plat.process(service, replica).log_path
            self._offsets[(service, replica)] = path.stat().st_size if path.exists() else 0
        self.killed_at = time.monotonic()
        self.plat.cluster.kill(self.node)

    def _connected_since_kill(self, key: tuple[str, int]) -> str | None:
        path = self.plat.process(*key).log_path
        with path.open("rb") as fh:
            fh.seek(self._offsets[key])
            text = fh.read().decode(errors="replace")
        match = _CONNECTED.search(text)
        return match.group(1) if match else None

    async def wait(self, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until every watched replica resumed (or the deadline); returns the figures."""
        assert self.killed_at is not None, "kill() first"
        baseline: dict[tuple[str, int], float] = {}
        deadline = self.killed_at + timeout
        async with httpx.AsyncClient(timeout=5) as client:
            while len(self.resumed) < len(self.watched) and time.monotonic() < deadline:
                for key in self.watched:
                    if key in self.resumed:
                        continue
                    try:
                        if key not in baseline:
                            port = self._connected_since_kill(key)
                            if port is None:
                                continue
                            # The reading right after the reconnect is the baseline.
                            self.reconnected[key] = time.monotonic() - self.killed_at
                            self.new_node[key] = port
                            baseline[key] = sum((await self.plat.counts(*key, client)).values())
                            continue
                        total = sum((await self.plat.counts(*key, client)).values())
                    except (httpx.HTTPError, OSError):
                        continue
                    if total > baseline[key]:
                        self.resumed[key] = time.monotonic() - self.killed_at
                await asyncio.sleep(self.interval)
        return self.figures()

    def figures(self) -> dict[str, Any]:
        """Seconds after the kill, per replica ("service-replica"): reconnected to another node, and
        first event consumed there; ``resume_max_s`` is None unless every watched replica resumed."""
        name = {k: f"{k[0]}-{k[1]}" for k in self.watched}
        ports = {str(node.port): index for index, node in enumerate(self.plat.cluster.nodes)}
        done = [self.resumed[k] for k in self.watched if k in self.resumed]
        complete = len(done) == len(self.watched) and bool(done)
        return {
            "killed_node": self.node,
            "moved_to_node": {name[k]: ports.get(p) for k, p in self.new_node.items()},
            "reconnect_s": {name[k]: round(v, 2) for k, v in self.reconnected.items()},
            "resume_s": {name[k]: round(v, 2) for k, v in self.resumed.items()},
            "not_resumed": [name[k] for k in self.watched if k not in self.resumed],
            "resume_max_s": round(max(done), 2) if complete else None,
        }


async def keep_fed(
    stop: asyncio.Event,
    amqp_urls: Sequence[str],
    messages: Sequence[tuple[bytes, str, str]],
    interval: float = 0.05,
) -> int:
    """Publish ``messages`` ((body, routing key, message id), CloudEvents already published once) again
    and again, one each ``interval``, until ``stop``: every consumer they reach counts each copy as a
    duplicate, so its counters keep moving while :class:`ResumeWatch` waits. Persistent, confirmed,
    through the first of ``amqp_urls`` that answers. Returns how many were published."""
    import aio_pika

    sent = 0
    connection = None
    for url in amqp_urls:
        try:
            connection = await aio_pika.connect(url, timeout=5)
            break
        except Exception:
            continue
    if connection is None:
        raise RuntimeError("no broker node answered")
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("kkmp.events", ensure=False)
        while not stop.is_set() and messages:
            body, routing_key, message_id = messages[sent % len(messages)]
            await exchange.publish(
                aio_pika.Message(
                    body=body,
                    content_type="application/cloudevents+json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message_id,
                    type=routing_key,
                ),
                routing_key=routing_key,
                timeout=10,
            )
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    return sent
