"""Fixtures of the fault-injection tests: the platform as real processes on a RabbitMQ node of the
module's own (so it can be SIGKILLed, alarmed or cut off without touching the machine's broker), on
fresh PostgreSQL databases, optionally with a ChaosProxy between a service and that node.

Tests read the services' databases directly only to know the truth they compare against (what
inventory's outbox holds) and to prepare a fault (a lock that stops the relay marking rows sent);
every effect they judge is read through the public API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from kkmp_shared.testing.postgres import create_database, drop_database, ensure_postgres
from kkmp_shared.testing.processes import Platform, ServiceProcess
from kkmp_shared.testing.proxy import ChaosProxy
from kkmp_shared.testing.rabbit import PrivateRabbit
from kkmp_shared.testing.wait import eventually
from sqlalchemy.engine import make_url

# The portal owns no data and consumes nothing: the fault tests leave it out.
SERVICES = ("registry", "reporting", "inventory", "sourcing", "notifications")
PASSWORD = "fault-password-123"
ADMIN_PASSWORD = "fault-admin-password"

_METRIC = re.compile(r'^kkmp_events_consumed_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


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

    def url(self, name: str) -> str:
        return self.platform.url(name)

    def service(self, name: str) -> ServiceProcess:
        return self.platform.services[name]

    async def fetch(self, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(plain_dsn(self.databases[service]), timeout=10)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def fetchval(self, service: str, query: str, *args: Any) -> Any:
        rows = await self.fetch(service, query, *args)
        return rows[0][0] if rows else None

    async def consumed(self, service: str) -> dict[tuple[str, str], float]:
        """`kkmp_events_consumed_total` of one service process: (queue, outcome) → count."""
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"{self.url(service)}/metrics")).text
        out: dict[tuple[str, str], float] = {}
        for line in text.splitlines():
            match = _METRIC.match(line.strip())
            if match:
                labels = dict(_LABEL.findall(match["labels"]))
                out[(labels["queue"], labels["outcome"])] = float(match["value"])
        return out

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
    # The same environment as kkmp_shared.testing.processes.Platform gives, plus per-service AMQP URLs.
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update({f"{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in port_of.items()})
    env.update(
        {
            "KKMP_DEMO": "1",
            "KKMP_DATA_DIR": str(work / name),
            "AMQP_URL": amqp_url,
            "REGISTRY_URL": f"http://127.0.0.1:{port_of['registry']}",
            "KKMP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "LOG_LEVEL": "INFO",
            # Short retry delays so that a poison message reaches its dead-letter queue in seconds.
            "RETRY_DELAYS_MS": "[200,1000,3000]",
            "RELAY_POLL_INTERVAL_S": "0.2",
            "DETECTION_INTERVAL_S": "0",
            "ALLOW_INTERNAL_WEBHOOKS": "true",
        }
    )
    if database_url:
        env[f"{name.upper()}_DATABASE_URL"] = database_url
    return env


@contextlib.contextmanager
def stack_up(work: Path, *, proxied: tuple[str, ...] = (), name: str = "kkmpfault") -> Iterator[Stack]:
    """Start a private node, PostgreSQL databases and the services; ``proxied`` services reach the
    broker through a ChaosProxy each (faults off until a test switches them on)."""
    from kkmp_shared.testing.ports import free_port

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
            amqp = proxies[service].url_for(rabbit.url) if service in proxies else rabbit.url
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
        rabbit.cleanup()
        for url in databases.values():
            with contextlib.suppress(Exception):
                drop_database(url)


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


@pytest.fixture
def keep_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[list[Stack]]:
    """Tests append their stack; on failure the services' log tails are printed."""
    stacks: list[Stack] = []
    yield stacks
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for stack in stacks:
            print(stack.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


# --- the ledger a test sends, and what every read model must then show ---------------------------

# Commodities that sell (unit price below the ceiling, HET/HAP), from data/commodities.csv.
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


def plan_ledger(seed: int, count: int, *, days: float = 2.0, stalled: bool = True) -> tuple[list[dict[str, Any]], Expected]:
    """``count`` movements of one cooperative, in time order over the last ``days`` (so nothing that
    sells looks stalled), never taking stock below zero; the first is a receipt of kedelai 45 days
    old when ``stalled``."""
    import random
    from datetime import UTC, datetime, timedelta

    rng = random.Random(seed)
    now = datetime.now(UTC) - timedelta(minutes=10)
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
            emit({"commodity": code, "kind": "receipt", "quantity": str(quantity),
                  "unit_price": SOLD[code] - 1500, "occurred_at": at})
            on_hand[code] += quantity
            continue
        quantity = Decimal(rng.randint(1, 5))
        price = SOLD[code]
        if code == ABOVE_CEILING[0] and rng.random() < 0.02:
            price = ABOVE_CEILING[1]
        emit({"commodity": code, "kind": "sale", "quantity": str(quantity), "unit_price": price,
              "occurred_at": at})
        on_hand[code] -= quantity
    return out, expected


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers of this directory, for test modules (conftest modules are not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        stack_up=stack_up, Town=Town, plan_ledger=plan_ledger, items=items, Expected=Expected,
        STALLED=STALLED, STALLED_QUANTITY=STALLED_QUANTITY, SOLD=SOLD,
    )
