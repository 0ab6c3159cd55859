"""Fixtures of the fault-injection tests: the platform as real processes on a RabbitMQ node of the
module's own (so it can be SIGKILLed, alarmed or cut off without touching the machine's broker), on
fresh PostgreSQL databases, optionally with a ChaosProxy between a service and that node.

Every effect a test judges is read through the public APIs. The services' databases are read directly
only for what no API says: the truth the effects are compared against (which events inventory's outbox
holds), the progress of a stream (inbox and outbox counts, to time a fault), whether a service has
learnt a cooperative yet, and to set up a fault (a lock that stops the relay marking rows sent).

Helpers are handed to the test modules by the `kit` fixture (a conftest is not importable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import pytest
from kkmp_shared import clock
from kkmp_shared.events.contracts import OrderDelivered
from kkmp_shared.events.envelope import new_event
from kkmp_testkit.ports import free_port
from kkmp_testkit.postgres import create_database, drop_database, ensure_postgres
from kkmp_testkit.processes import Platform, ServiceProcess, service_env
from kkmp_testkit.proxy import ChaosProxy
from kkmp_testkit.rabbit import PrivateRabbit
from kkmp_testkit.replicas import ReplicatedPlatform, parse_consumed
from kkmp_testkit.wait import eventually
from sqlalchemy.engine import make_url

# The portal owns no data and consumes nothing: the fault tests leave it out.
SERVICES = ("registry", "reporting", "inventory", "sourcing", "notifications")
PASSWORD = "fault-password-123"
ADMIN_PASSWORD = "fault-admin-password"


def plain_dsn(url: str) -> str:
    """asyncpg wants postgresql://, the services get postgresql+asyncpg://."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Stack:
    """A private broker node, the services on PostgreSQL, and the proxies in front of some of them."""

    rabbit: PrivateRabbit
    platform: Platform
    databases: dict[str, str]
    proxies: dict[str, ChaosProxy] = field(default_factory=dict)
    _connections: dict[str, asyncpg.Connection] = field(default_factory=dict, repr=False)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)
    _queue_names: list[str] = field(default_factory=list, repr=False)

    def url(self, name: str) -> str:
        return self.platform.url(name)

    def broker_url(self) -> str:
        """Where the test's own AMQP connections go."""
        return self.rabbit.url

    def ctl(self, *args: str) -> str:
        """rabbitmqctl against the stack's broker."""
        return self.rabbit.ctl(*args)

    def service(self, name: str) -> ServiceProcess:
        return self.platform.services[name]

    async def fetch(self, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
        # One connection per service database, kept (tests poll these tables many times a second),
        # and used by one task at a time.
        async with self._locks.setdefault(service, asyncio.Lock()):
            conn = self._connections.get(service)
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(plain_dsn(self.databases[service]), timeout=10)
                self._connections[service] = conn
            return list(await conn.fetch(query, *args))

    async def aclose(self) -> None:
        for conn in self._connections.values():
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
        self._connections.clear()

    async def ready_messages(self) -> dict[str, int]:
        """Messages ready in every queue of the node, over AMQP (cheaper than a rabbitmqctl run)."""
        if not self._queue_names:
            self._queue_names = sorted(await broker_queues(self))
        out: dict[str, int] = {}
        connection = await aio_pika.connect(self.broker_url(), timeout=5)
        async with connection:
            channel = await connection.channel()
            try:
                for name in self._queue_names:
                    queue = await channel.declare_queue(name, passive=True)
                    out[name] = queue.declaration_result.message_count or 0
            except aio_pika.exceptions.ChannelClosed:
                self._queue_names = []  # a queue went away: list them again next time
                raise
        return out

    async def fetchval(self, service: str, query: str, *args: Any) -> Any:
        rows = await self.fetch(service, query, *args)
        return rows[0][0] if rows else None

    async def consumed(self, service: str) -> dict[tuple[str, str], float]:
        """`kkmp_events_consumed_total` of one service process: (queue, outcome) → count."""
        async with httpx.AsyncClient(timeout=10) as client:
            return parse_consumed((await client.get(f"{self.url(service)}/metrics")).text)

    async def outcome(self, service: str, outcome: str, queue: str | None = None) -> float:
        counts = await self.consumed(service)
        return sum(v for (q, o), v in counts.items() if o == outcome and (queue is None or q == queue))

    async def ready(self, service: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(f"{self.url(service)}/health/ready")

    async def wait_ready(self, *names: str, timeout: float = 90.0) -> None:
        for name in names or SERVICES:

            async def is_ready(name: str = name) -> bool:
                return (await self.ready(name)).status_code == 200

            await eventually(is_ready, timeout=timeout, interval=0.3, message=f"{name} ready")

    async def kill_and_restart(self, name: str, *, before_start: Any = None) -> None:
        """SIGKILL a service process (no shutdown hook runs) and start it again on the same port and DB."""
        process = self.service(name)
        await asyncio.to_thread(process.kill)
        if before_start is not None:
            await before_start()
        process.start()
        await self.wait_ready(name)

    async def outbox_pending(self, service: str) -> int:
        return int(await self.fetchval(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL"))

    def logs(self) -> str:
        return self.platform.logs()


def _service_env(
    name: str, port_of: dict[str, int], work: Path, amqp_url: str, database_url: str | None
) -> dict[str, str]:
    # The same environment as kkmp_testkit.processes.Platform gives, plus per-service AMQP URLs.
    extra: dict[str, str] = {}
    if name == "reporting":
        # Reporting's default prefetch (300) would take a test's whole backlog in one batch; 64 keeps
        # several batches in flight and bounds what the commit/ack crash test holds unacked.
        extra["PREFETCH"] = "64"
    return service_env(
        name,
        data_dir=work / name,
        amqp_url=amqp_url,
        urls={n: f"http://127.0.0.1:{p}" for n, p in port_of.items()},
        admin_password=ADMIN_PASSWORD,
        database_url=database_url,
        extra=extra,
    )


@contextlib.contextmanager
def stack_up(
    work: Path, *, proxied: tuple[str, ...] = (), name: str = "kkmpfault", heartbeat_s: int | None = None
) -> Iterator[Stack]:
    """Start a private node, PostgreSQL databases and the services; ``proxied`` services reach the
    broker through a ChaosProxy each (faults off until a test switches them on).

    ``heartbeat_s`` overrides the AMQP heartbeat of the proxied services (the library's default is
    10 s, so a silent peer is noticed after aiormq's grace of 3 × 11 s; a test of a hang uses less).
    """
    ensure_postgres()
    work.mkdir(parents=True, exist_ok=True)
    rabbit = PrivateRabbit(name=name)
    proxies: dict[str, ChaosProxy] = {}
    databases: dict[str, str] = {}
    platform = Platform(rabbit.url, work, admin_password=ADMIN_PASSWORD)
    try:
        rabbit.start()
        databases = {s: create_database(f"fault_{s}") for s in SERVICES}
        for service in proxied:
            proxies[service] = ChaosProxy.for_url(rabbit.url).start()
        port_of = {s: free_port() for s in SERVICES}
        for service in SERVICES:
            amqp = rabbit.url
            if service in proxies:
                amqp = proxies[service].url_for(rabbit.url)
                if heartbeat_s is not None:
                    amqp += f"?heartbeat={heartbeat_s}"
            env = _service_env(service, port_of, work, amqp, databases[service])
            platform.services[service] = ServiceProcess(
                service, port_of[service], env, work / f"{service}.log"
            )
        for service in SERVICES:
            platform.services[service].start()
            if service == "registry":
                platform.services[service].wait_ready(90)
        for service in SERVICES:
            platform.services[service].wait_ready(90)
        # Every durable queue, exchange and binding on disk before a test SIGKILLs the node (see
        # PrivateRabbit.sync_metadata: Mnesia writes definitions asynchronously).
        rabbit.sync_metadata()
        yield Stack(rabbit, platform, databases, proxies)
    except BaseException:
        print(platform.logs())
        raise
    finally:
        for process in platform.services.values():
            process.kill()  # a fault test's processes need no graceful stop: saves ~10 s per module
        for proxy in proxies.values():
            proxy.stop()
        rabbit.kill()
        rabbit.cleanup()
        for url in databases.values():
            with contextlib.suppress(Exception):
                drop_database(url)


@dataclass
class ClusterStack(Stack):
    """The platform as two replicas of every service on a 3-node cluster (kkmp_testkit.replicas), with
    the interface of `Stack` that the helpers here use: a service's address is a live replica's, the
    broker is a running node, the consumed counters are summed over the live replicas."""

    replicated: ReplicatedPlatform | None = None

    @property
    def plat(self) -> ReplicatedPlatform:
        assert self.replicated is not None
        return self.replicated

    def url(self, name: str, replica: int | None = None) -> str:
        if replica is not None:
            return self.plat.url(name, replica)
        for process in self.plat.processes[name]:
            if process.proc is not None and process.proc.poll() is None:
                return process.url
        return self.plat.url(name, 0)

    def broker_url(self) -> str:
        return self.plat.cluster.nodes[self.plat.live_node()].url

    def ctl(self, *args: str) -> str:
        return self.plat.cluster.nodes[self.plat.live_node()].ctl(*args)

    async def consumed(self, service: str) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for replica, process in enumerate(self.plat.processes[service]):
            if process.proc is None or process.proc.poll() is not None:
                continue
            for key, value in (await self.plat.counts(service, replica)).items():
                out[key] = out.get(key, 0.0) + value
        return out

    async def wait_ready(self, *names: str, timeout: float = 90.0) -> None:
        for name in names or SERVICES:
            for process in self.plat.processes[name]:

                async def is_ready(url: str = process.url) -> bool:
                    async with httpx.AsyncClient(timeout=10) as client:
                        return (await client.get(f"{url}/health/ready")).status_code == 200

                await eventually(is_ready, timeout=timeout, interval=0.3, message=f"{process.url} ready")

    def logs(self) -> str:
        return self.plat.logs()


@contextlib.contextmanager
def cluster_stack_up(work: Path, *, name: str = "kkmpproof") -> Iterator[ClusterStack]:
    """A 3-node RabbitMQ cluster, fresh PostgreSQL databases and two replicas of every service."""
    plat = ReplicatedPlatform(
        work,
        name=name,
        admin_password=ADMIN_PASSWORD,
        # As stack_up: several reporting batches in flight rather than the whole backlog in one.
        service_env={"reporting": {"PREFETCH": "64"}},
    )
    with plat:
        started = plat.started_s
        print(f"\ncluster started in {started['cluster']:.1f}s, the replicas in {started['services']:.1f}s")
        stack = ClusterStack(
            rabbit=plat.cluster.nodes[0],
            platform=Platform(",".join(plat.cluster.urls), work, admin_password=ADMIN_PASSWORD),
            databases=plat.databases,
            replicated=plat,
        )
        try:
            yield stack
        except BaseException:
            print(plat.logs())
            raise


# --- people and cooperatives ---------------------------------------------------------------------


@dataclass
class Person:
    id: str
    username: str
    token: str
    role: str
    cooperative_id: str | None = None
    kecamatan_codes: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Coop:
    id: str
    name: str
    kelurahan_code: str
    kecamatan_code: str
    manager: Person


class Town:
    """Creates cooperatives and users through the registry, as an operator would, and waits until the
    services that learn them from events know them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.used: set[str] = set()
        self._admin: str | None = None

    async def admin_headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        if self._admin is None:
            self._admin = await self._token(client, "admin", ADMIN_PASSWORD)
        return {"Authorization": f"Bearer {self._admin}"}

    async def _token(self, client: httpx.AsyncClient, username: str, password: str) -> str:
        response = await client.post(
            f"{self.stack.url('registry')}/auth/token", data={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def user(self, client: httpx.AsyncClient, role: str, **fields: Any) -> Person:
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        response = await client.post(
            f"{self.stack.url('registry')}/users",
            headers=await self.admin_headers(client),
            json={"username": username, "password": PASSWORD, "role": role, **fields},
        )
        assert response.status_code == 201, response.text
        return Person(
            id=response.json()["id"],
            username=username,
            token=await self._token(client, username, PASSWORD),
            role=role,
            cooperative_id=fields.get("cooperative_id"),
            kecamatan_codes=list(fields.get("kecamatan_codes", [])),
        )

    async def cooperatives(self, client: httpx.AsyncClient, kecamatan_code: str, count: int) -> list[Coop]:
        rows = (
            await client.get(
                f"{self.stack.url('registry')}/regions/kelurahan", params={"kecamatan_code": kecamatan_code}
            )
        ).json()
        free = [r for r in rows if r["code"] not in self.used][:count]
        assert len(free) == count, f"not enough free kelurahan in {kecamatan_code}"
        self.used.update(r["code"] for r in free)
        out = []
        for kel in free:
            response = await client.post(
                f"{self.stack.url('registry')}/cooperatives",
                headers=await self.admin_headers(client),
                json={"name": f"KKMP {kel['name']}", "kelurahan_code": kel["code"], "formation": "new"},
            )
            assert response.status_code == 201, response.text
            body = response.json()
            manager = await self.user(client, "coop_manager", cooperative_id=body["id"])
            out.append(Coop(body["id"], body["name"], kel["code"], kecamatan_code, manager))
        return out

    async def known_everywhere(self, coops: list[Coop], people: list[Person], timeout: float = 60) -> None:
        """Inventory, sourcing, reporting and notifications learn cooperatives and users from events."""
        ids = [c.id for c in coops]
        user_ids = [p.id for p in people] + [c.manager.id for c in coops]
        checks = {
            "inventory": ("SELECT count(*) FROM known_cooperatives WHERE id = ANY($1::text[])", ids),
            "sourcing": ("SELECT count(*) FROM known_cooperatives WHERE id = ANY($1::text[])", ids),
            "reporting": ("SELECT count(*) FROM known_cooperatives WHERE id = ANY($1::text[])", ids),
            "notifications": ("SELECT count(*) FROM recipients WHERE user_id = ANY($1::text[])", user_ids),
        }
        for service, (query, values) in checks.items():

            async def known(service: str = service, query: str = query, values: list[str] = values) -> bool:
                return int(await self.stack.fetchval(service, query, values)) == len(values)

            await eventually(known, timeout=timeout, interval=0.3, message=f"{service} knows everyone")


def items(body: Any) -> list[dict[str, Any]]:
    return body["items"] if isinstance(body, dict) and "items" in body else body


@pytest.fixture(autouse=True)
def _service_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test prints the tail of each service's log (the processes' own view of the fault)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "stack" in request.fixturenames:
        print(request.getfixturevalue("stack").logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


# --- the ledger a test sends, and what every read model must then show ---------------------------

# Commodities that sell (unit price below the ceiling, HET/HAP), from the reference commodities.csv.
SOLD = {"beras_medium": 13000, "gula": 17000, "minyakita": 15500, "telur": 28500, "tepung_terigu": 12000}
ABOVE_CEILING = ("beras_medium", 15000)  # HET 13,500: recorded and announced as price.ceiling_exceeded
# Never sold and received long ago (stall_days 30): one stalled episode per cooperative.
STALLED = ("kedelai", 11000)
STALLED_QUANTITY = 40


@dataclass
class Expected:
    """One cooperative's ledger as the test sent it."""

    movements: int = 0
    on_hand: dict[str, Decimal] = field(default_factory=dict)
    sales: int = 0
    sale_quantity: Decimal = Decimal(0)
    sale_value: int = 0
    above_ceiling: int = 0

    def add(self, movement: dict[str, Any]) -> None:
        quantity = Decimal(movement["quantity"])
        commodity = movement["commodity"]
        self.movements += 1
        sign = -1 if movement["kind"] in ("sale", "transfer_out", "spoilage") else 1
        self.on_hand[commodity] = self.on_hand.get(commodity, Decimal(0)) + sign * quantity
        if movement["kind"] == "sale":
            self.sales += 1
            self.sale_quantity += quantity
            self.sale_value += int(quantity * movement["unit_price"])
            if (commodity, movement["unit_price"]) == ABOVE_CEILING:
                self.above_ceiling += 1


def plan_ledger(
    seed: int, count: int, *, days: float = 2.0, stalled: bool = True
) -> tuple[list[dict[str, Any]], Expected]:
    """``count`` movements of one cooperative, in time order over the last ``days`` (so nothing that
    sells looks stalled), never taking stock below zero; the first is a receipt of kedelai 45 days
    old when ``stalled``."""
    rng = random.Random(seed)
    now = clock.now() - timedelta(minutes=10)
    start = now - timedelta(days=days)
    step = (now - start) / max(count, 1)
    expected = Expected()
    out: list[dict[str, Any]] = []

    def emit(movement: dict[str, Any]) -> None:
        expected.add(movement)
        out.append(movement)

    if stalled:
        code, price = STALLED
        emit(
            {
                "commodity": code,
                "kind": "receipt",
                "quantity": str(STALLED_QUANTITY),
                "unit_price": price,
                "occurred_at": (now - timedelta(days=45)).isoformat(),
                "reference": f"stalled-{seed}",
            }
        )
    on_hand = {code: Decimal(0) for code in SOLD}
    while len(out) < count:
        at = (start + step * len(out)).isoformat()
        code = rng.choice(list(SOLD))
        if on_hand[code] < 10:
            quantity = Decimal(rng.randint(150, 300))
            emit(
                {
                    "commodity": code,
                    "kind": "receipt",
                    "quantity": str(quantity),
                    "unit_price": SOLD[code] - 1500,
                    "occurred_at": at,
                }
            )
            on_hand[code] += quantity
            continue
        quantity = Decimal(rng.randint(1, 5))
        price = SOLD[code]
        if code == ABOVE_CEILING[0] and rng.random() < 0.02:
            price = ABOVE_CEILING[1]
        emit(
            {
                "commodity": code,
                "kind": "sale",
                "quantity": str(quantity),
                "unit_price": price,
                "occurred_at": at,
            }
        )
        on_hand[code] -= quantity
    return out, expected


# --- publishing into the broker as a relay would, through crashes -----------------------------------


class ResilientPublisher:
    """Publishes persistent messages with confirms and `mandatory`, reconnecting and publishing again
    until the broker confirms: at-least-once, like a service's relay (so a crash can duplicate)."""

    def __init__(self, amqp_url: str | list[str], exchange: str = "kkmp.events") -> None:
        # Several addresses (a cluster's nodes): the next one is tried after a failed attempt.
        self.amqp_urls = [amqp_url] if isinstance(amqp_url, str) else list(amqp_url)
        self._turn = 0
        self.exchange_name = exchange
        self._connection: Any = None
        self._exchange: Any = None
        self.attempts = 0
        self.confirmed = 0

    async def _connect(self) -> Any:
        if self._connection is None or self._connection.is_closed or self._exchange is None:
            await self.close()
            url = self.amqp_urls[self._turn % len(self.amqp_urls)]
            self._connection = await aio_pika.connect(url, timeout=5)
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await channel.get_exchange(self.exchange_name, ensure=False)
        return self._exchange

    async def publish(
        self,
        body: bytes,
        routing_key: str,
        message_id: str,
        deadline_s: float = 120,
        headers: dict[str, Any] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        while True:
            self.attempts += 1
            try:
                exchange = await self._connect()
                await exchange.publish(
                    aio_pika.Message(
                        body=body,
                        content_type="application/cloudevents+json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=message_id,
                        type=routing_key,
                        headers=headers or {},
                    ),
                    routing_key=routing_key,
                    mandatory=True,
                    timeout=5,
                )
                self.confirmed += 1
                return
            except Exception:
                await self.close()
                self._turn += 1
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def close(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)


async def republish_from_outbox(
    stack: Stack,
    publisher: ResilientPublisher,
    service: str,
    event_types: list[str],
    *,
    per_type: int,
    seed: int,
) -> dict[str, int]:
    """Publish again, under their own ids, up to ``per_type`` events of each type that ``service``'s relay
    already published: what a relay does after a crash between publishing and marking sent."""
    counts: dict[str, int] = {}
    for event_type in event_types:
        rows = await stack.fetch(
            service,
            "SELECT event_id, event_type, body FROM outbox WHERE published_at IS NOT NULL AND event_type = $1"
            " ORDER BY md5(event_id || $2) LIMIT $3",
            event_type,
            str(seed),
            per_type,
        )
        for row in rows:
            await publisher.publish(row["body"].encode(), row["event_type"], row["event_id"])
        counts[event_type] = len(rows)
    return counts


def delivery_event(coop: Coop, number: int, quantity: int = 5) -> tuple[bytes, str]:
    """An `order.delivered.v1` CloudEvent as sourcing's relay would publish it: inventory books a
    receipt of garam (never sold in these tests) referenced by the delivery id."""
    data = OrderDelivered(
        cooperative_id=coop.id,
        kelurahan_code=coop.kelurahan_code,
        kecamatan_code=coop.kecamatan_code,
        order_id=f"order-{coop.id[:8]}-{number}",
        delivery_id=f"delivery-{coop.id[:8]}-{number}",
        supplier_id="supplier-fault-test",
        commodity=DELIVERED,
        quantity=Decimal(quantity),
        unit_price=7000,
        delivered_at=clock.now(),
    )
    event = new_event(data, source="/sourcing", subject=coop.id)
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True)), event.id


DELIVERED = "garam"


# --- a cohort of cooperatives, its ledgers, and the comparison of every read model with them --------


@dataclass
class Cohort:
    """Cooperatives whose ledgers a test sends, the people told about them, and what was sent."""

    coops: list[Coop]
    taker: Coop | None  # has an open supply need for the stalled commodity: stalled stock is proposed to it
    officers_in: dict[str, Person]  # kecamatan code → an officer scoped to it
    officer_city: Person  # no kecamatan: the whole city
    officer_out: Person  # scoped to a kecamatan where the cohort has nothing
    plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expected: dict[str, Expected] = field(default_factory=dict)
    deliveries: dict[str, list[tuple[bytes, str]]] = field(default_factory=dict)
    posted: dict[str, int] = field(default_factory=dict)  # batches answered 201, per cooperative
    resent: int = 0  # attempts that got no answer or a 5xx, and were sent again under the same key
    replayed: int = 0  # answers that came from the idempotency store (the first attempt had committed)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def movement_count(self) -> int:
        return sum(e.movements for e in self.expected.values())

    def coop(self, coop_id: str) -> Coop:
        return next(c for c in self.coops if c.id == coop_id)


async def build_cohort(
    stack: Stack,
    town: Town,
    client: httpx.AsyncClient,
    layout: dict[str, int],
    *,
    movements_per_coop: int,
    seed: int,
    out_of_scope: str = "35.78.01",
    stalled: bool = True,
) -> Cohort:
    """``layout``: kecamatan code → how many cooperatives. With ``stalled``, each cooperative's ledger
    starts with kedelai received 45 days ago, and a taker in the first kecamatan needs kedelai."""
    coops: list[Coop] = []
    for kecamatan, count in layout.items():
        coops += await town.cooperatives(client, kecamatan, count)
    taker = (await town.cooperatives(client, next(iter(layout)), 1))[0] if stalled else None
    officers_in = {k: await town.user(client, "officer", kecamatan_codes=[k]) for k in layout}
    officer_city = await town.user(client, "officer", kecamatan_codes=[])
    officer_out = await town.user(client, "officer", kecamatan_codes=[out_of_scope])
    cohort = Cohort(coops, taker, officers_in, officer_city, officer_out)
    everyone = [*coops, taker] if taker else coops
    await town.known_everywhere(everyone, [*officers_in.values(), officer_city, officer_out])
    for number, coop in enumerate(coops):
        plan, expected = plan_ledger(seed * 1000 + number, movements_per_coop, stalled=stalled)
        cohort.plans[coop.id] = plan
        cohort.expected[coop.id] = expected
    if taker is None:
        return cohort
    response = await client.post(
        f"{stack.url('sourcing')}/needs",
        headers=taker.manager.headers,
        json={
            "cooperative_id": taker.id,
            "kind": "supply",
            "commodity": STALLED[0],
            "quantity": "100000",
            "description": "Kedelai untuk UMKM tahu dan tempe",
        },
    )
    assert response.status_code == 201, response.text
    return cohort


async def post_ledgers(
    stack: Stack,
    cohort: Cohort,
    client: httpx.AsyncClient,
    *,
    batch_size: int = 100,
    concurrency: int = 2,
    deadline_s: float = 300,
    inventory_urls: list[str] | None = None,
) -> None:
    """Post every cooperative's plan through the batch API, batches of one cooperative in order
    (to ``inventory_urls`` when given: the cooperatives spread over those replicas).

    A batch whose answer is lost (a killed process, a reset connection) is sent again under the same
    `Idempotency-Key`: the same result comes back and nothing is applied twice.
    """
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    targets = list(inventory_urls or [])

    async def post_coop(coop: Coop) -> None:
        plan = cohort.plans[coop.id]
        # Replicas: each cooperative has a replica of its own, and moves to the next one when an
        # attempt gets no answer (the same key there: the idempotency store is in the shared database).
        turn = cohort.coops.index(coop)
        for number, start in enumerate(range(0, len(plan), batch_size)):
            key = f"fault-{cohort.run_id}-{coop.id}-{number}"
            body = {"movements": plan[start : start + batch_size]}
            deadline = loop.time() + deadline_s
            while True:
                base = targets[turn % len(targets)] if targets else stack.url("inventory")
                try:
                    async with gate:
                        response = await client.post(
                            f"{base}/cooperatives/{coop.id}/movements/batch",
                            headers={**coop.manager.headers, "Idempotency-Key": key},
                            json=body,
                        )
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 201:
                    cohort.posted[coop.id] = cohort.posted.get(coop.id, 0) + 1
                    cohort.replayed += response.headers.get("Idempotent-Replayed") == "true"
                    break
                cohort.resent += 1
                turn += 1
                if response is not None and response.status_code < 500:
                    raise AssertionError(
                        f"batch {number} of {coop.id}: {response.status_code} {response.text}"
                    )
                assert loop.time() < deadline, f"batch {number} of {coop.id} never accepted"
                await asyncio.sleep(0.5)

    await asyncio.gather(*(post_coop(c) for c in cohort.coops))


async def send_deliveries(cohort: Cohort, publisher: ResilientPublisher, per_coop: int) -> None:
    """`order.delivered.v1` events for every cooperative, interleaved, through a resilient publisher."""
    for coop in cohort.coops:
        cohort.deliveries.setdefault(coop.id, [])
    for _ in range(per_coop):
        for coop in cohort.coops:
            body, event_id = delivery_event(coop, len(cohort.deliveries[coop.id]))
            cohort.deliveries[coop.id].append((body, event_id))
            await publisher.publish(body, "order.delivered.v1", event_id)


async def get_all(client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> list[Any]:
    out: list[Any] = []
    while True:
        response = await client.get(url, headers=headers, params={**params, "limit": 500, "offset": len(out)})
        assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
        page = items(response.json())
        out += page
        if len(page) < 500:
            return out


def _num(value: Any) -> Decimal:
    return Decimal(str(value))


async def compare_read_models(
    stack: Stack, cohort: Cohort, client: httpx.AsyncClient, admin: dict[str, str]
) -> dict[str, Any]:
    """Every read model against the ledger the test sent; raises AssertionError naming the first
    difference. Returns a few totals for the test's report."""
    inv, rep, src, notif = (stack.url(s) for s in ("inventory", "reporting", "sourcing", "notifications"))
    coop_ids = [c.id for c in cohort.coops]

    # Inventory: the ledger holds each movement once, and stock on hand is what the movements add up to.
    for coop in cohort.coops:
        expected = cohort.expected[coop.id]
        delivered = len(cohort.deliveries.get(coop.id, []))
        page = (
            await client.get(f"{inv}/cooperatives/{coop.id}/movements", headers=admin, params={"limit": 1})
        ).json()
        assert page["total"] == expected.movements + delivered, (
            f"inventory ledger of {coop.name}: {page['total']} movements, sent {expected.movements}"
            f" + {delivered} deliveries"
        )
        stock = {
            line["commodity"]: _num(line["on_hand"])
            for line in (await client.get(f"{inv}/cooperatives/{coop.id}/stock", headers=admin)).json()
        }
        want = dict(expected.on_hand)
        if delivered:
            want[DELIVERED] = Decimal(5 * delivered)
        assert {k: v for k, v in stock.items() if v or k in want} == want, f"inventory stock of {coop.name}"

    # Reporting: stock on hand, sales (count, quantity, value) and price violations, per cooperative.
    for coop in cohort.coops:
        expected = cohort.expected[coop.id]
        delivered = len(cohort.deliveries.get(coop.id, []))
        response = await client.get(f"{rep}/cooperatives/{coop.id}", headers=admin)
        assert response.status_code == 200, response.text
        detail = response.json()
        stock = {s["commodity"]: _num(s["on_hand"]) for s in detail["stock"]}
        want = dict(expected.on_hand)
        if delivered:
            want[DELIVERED] = Decimal(5 * delivered)
        assert {k: v for k, v in stock.items() if v or k in want} == want, f"reporting stock of {coop.name}"
        weeks = detail["sales_weekly"]
        sales = (
            sum(int(w["transactions"]) for w in weeks),
            sum(_num(w["quantity"]) for w in weeks),
            sum(int(w["value"]) for w in weeks),
        )
        assert sales == (expected.sales, expected.sale_quantity, expected.sale_value), (
            f"reporting sales of {coop.name}: {sales}, ledger "
            f"{(expected.sales, expected.sale_quantity, expected.sale_value)}"
        )
        assert detail["price_violations_90d"] == expected.above_ceiling, (
            f"reporting violations of {coop.name}"
        )

    # Notifications: each recipient once per event, nobody outside the audience.
    async def inbox(person: Person, event_type: str) -> list[dict[str, Any]]:
        return await get_all(client, f"{notif}/me/notifications", person.headers, event_type=event_type)

    def event_ids(rows: list[dict[str, Any]]) -> list[str]:
        return sorted(r["event_id"] for r in rows if r.get("cooperative_id") in coop_ids)

    for coop in cohort.coops:
        deliveries = cohort.deliveries.get(coop.id, [])
        if deliveries:
            got = await inbox(coop.manager, "order.delivered.v1")
            want = sorted(e for _, e in deliveries)
            assert event_ids(got) == want, f"delivery notifications of {coop.name}'s manager"
    totals = {
        "movements": cohort.movement_count,
        "deliveries": sum(len(d) for d in cohort.deliveries.values()),
    }
    if cohort.taker is None:
        return totals

    # Stalled stock: reporting lists it, sourcing proposes it once, the audience hears of it once.
    stalled_rows = [
        r for r in await get_all(client, f"{rep}/stalled", admin) if r["cooperative_id"] in coop_ids
    ]
    assert sorted((r["cooperative_id"], r["commodity"]) for r in stalled_rows) == sorted(
        (c, STALLED[0]) for c in coop_ids
    ), "reporting /stalled: one row per stalled item"
    assert all(_num(r["on_hand"]) == STALLED_QUANTITY for r in stalled_rows)

    # The truth about what was announced: inventory's outbox.
    stalled_events = await stack.fetch(
        "inventory",
        "SELECT event_id, subject FROM outbox"
        " WHERE event_type = 'stock.stalled.v1' AND subject = ANY($1::text[])",
        coop_ids,
    )
    assert sorted(r["subject"] for r in stalled_events) == sorted(coop_ids), (
        "one stalled episode per cooperative"
    )
    stalled_by_coop = {r["subject"]: r["event_id"] for r in stalled_events}

    # Sourcing: one stalled item per episode, one proposal of it to the cooperative that needs it.
    for coop in cohort.coops:
        stalled_items = await get_all(client, f"{src}/stalled-items", admin, cooperative_id=coop.id)
        assert [i["commodity"] for i in stalled_items] == [STALLED[0]], (
            f"sourcing stalled items of {coop.name}"
        )
    every_proposal = await get_all(client, f"{src}/redistributions", admin, commodity=STALLED[0])
    proposals = [p for p in every_proposal if p["from_cooperative_id"] in coop_ids]
    pairs = [(p["stalled_item_id"], p["to_cooperative_id"]) for p in proposals]
    assert len(pairs) == len(set(pairs)), "sourcing: a stalled item proposed twice to the same cooperative"
    to_taker = sorted(
        p["from_cooperative_id"] for p in proposals if p["to_cooperative_id"] == cohort.taker.id
    )
    assert to_taker == sorted(coop_ids), "sourcing: exactly one proposal per stalled episode to the taker"

    for coop in cohort.coops:
        got = await inbox(coop.manager, "stock.stalled.v1")
        assert event_ids(got) == [stalled_by_coop[coop.id]], f"stalled notifications of {coop.name}'s manager"
        got = await inbox(coop.manager, "redistribution.proposed.v1")
        mine = [p for p in proposals if p["from_cooperative_id"] == coop.id]
        assert len(got) == len({r["event_id"] for r in got}) == len(mine), f"proposals told to {coop.name}"
    for kecamatan, officer in cohort.officers_in.items():
        want = sorted(e for c, e in stalled_by_coop.items() if cohort.coop(c).kecamatan_code == kecamatan)
        assert event_ids(await inbox(officer, "stock.stalled.v1")) == want, f"officer of {kecamatan}"
    assert event_ids(await inbox(cohort.officer_city, "stock.stalled.v1")) == sorted(stalled_by_coop.values())
    assert event_ids(await inbox(cohort.officer_out, "stock.stalled.v1")) == [], "an officer out of scope"
    got = await inbox(cohort.taker.manager, "redistribution.proposed.v1")
    to_them = [p for p in every_proposal if p["to_cooperative_id"] == cohort.taker.id]
    assert len(got) == len({r["event_id"] for r in got}) == len(to_them), "proposals told to the taker"
    return {**totals, "stalled": len(stalled_events), "proposals": len(proposals)}


async def broker_queues(stack: Stack) -> dict[str, int]:
    """Messages (ready + unacknowledged) in every queue of the private node."""
    out = await asyncio.to_thread(stack.ctl, "list_queues", "-q", "--formatter", "json", "name", "messages")
    return {q["name"]: int(q["messages"]) for q in json.loads(out)}


async def settled(stack: Stack) -> bool:
    """Every outbox published and every queue but the dead-letter ones empty."""
    for service in ("registry", "inventory", "sourcing", "reporting", "notifications"):
        if await stack.outbox_pending(service):
            return False
    if any(n for q, n in (await stack.ready_messages()).items() if not q.endswith(".dlq")):
        return False
    # Nothing ready anywhere: ask the node once for unacknowledged messages too.
    queues = await broker_queues(stack)
    # Retry queues count: what waits there comes back. Dead letters are judged by the test.
    busy = {q: n for q, n in queues.items() if n and not q.endswith(".dlq")}
    return not busy


# --- watching a stream while faults land ------------------------------------------------------------


async def consumed_stock_events(stack: Stack) -> int:
    """How many inventory events reporting has taken in (its inbox on the stock queue, shared by its
    replicas on a cluster stack)."""
    return int(
        await stack.fetchval("reporting", "SELECT count(*) FROM inbox WHERE consumer = 'reporting.stock'")
    )


async def detect_until(
    stop: asyncio.Event, client: httpx.AsyncClient, url: str, admin: dict[str, str]
) -> int:
    """Run detection at ``url`` every few seconds while the flow lasts (episodes start during faults);
    returns how many runs were answered."""
    runs = 0
    while not stop.is_set():
        try:
            response = await client.post(f"{url}/detections/run", headers=admin, json={})
        except httpx.TransportError:  # the process was just killed: the next round runs again
            response = None
        if response is not None and response.status_code < 500:
            assert response.status_code == 200, response.text
            runs += 1
        try:
            await asyncio.wait_for(stop.wait(), timeout=4)
        except TimeoutError:
            pass
    return runs


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    await eventually(condition, timeout=timeout, interval=0.25)


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers of this directory, for test modules (conftest modules are not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        stack_up=stack_up,
        cluster_stack_up=cluster_stack_up,
        Town=Town,
        build_cohort=build_cohort,
        post_ledgers=post_ledgers,
        send_deliveries=send_deliveries,
        compare_read_models=compare_read_models,
        broker_queues=broker_queues,
        settled=settled,
        ResilientPublisher=ResilientPublisher,
        republish_from_outbox=republish_from_outbox,
        delivery_event=delivery_event,
        get_all=get_all,
        consumed_stock_events=consumed_stock_events,
        detect_until=detect_until,
        wait_for=wait_for,
        DELIVERED=DELIVERED,
        plain_dsn=plain_dsn,
    )
