"""Crash points and a bad network between real services and the broker.

Inventory and reporting reach their RabbitMQ node through a ChaosProxy each. The crash points are
made deterministic with the proxy and a PostgreSQL lock instead of hooks in the services' code:

- between commit and publish: inventory cannot reach the broker, commits movements (their events wait
  in its outbox), and is SIGKILLed; the new process publishes them;
- between publish and marking sent: a SHARE lock on inventory's outbox lets the relay claim and
  publish rows but not mark them sent; inventory is SIGKILLed once reporting has applied them; the new
  process publishes them again and reporting's inbox absorbs every one;
- between commit and ack: an EXCLUSIVE lock on reporting's `stock_items` holds its stock consumer inside
  a batch's transaction (inbox rows claimed, deliveries unacked); reporting's connection then hangs,
  the lock is released, the batch commits and its ack stays in the proxy; reporting is SIGKILLed; the
  broker redelivers what reporting already applied and its inbox absorbs every one.

Then 500 ms of latency, connection resets and a hang while movements flow: readiness reports the
outage, the API keeps answering, and everything recovers by itself. After each test reporting's
figures equal the ledger sent (nothing lost, nothing applied twice). The same mechanisms are proven
at the library level, on SQLite and PostgreSQL, in shared/tests/test_crash_points.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from kkmp_testkit.wait import eventually

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

HEARTBEAT_S = 3


@pytest.fixture(scope="module")
async def stack(kit: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    with kit.stack_up(
        tmp_path_factory.mktemp("network"),
        proxied=("inventory", "reporting"),
        name="kkmpnet",
        heartbeat_s=HEARTBEAT_S,
    ) as running:
        yield running
        await running.aclose()


@pytest.fixture(scope="module")
def town(kit: Any, stack: Any) -> Any:
    return kit.Town(stack)


async def applied(stack: Any) -> int:
    """Inventory events reporting has applied so far (its inbox rows on the stock queue)."""
    return int(
        await stack.fetchval("reporting", "SELECT count(*) FROM inbox WHERE consumer = 'reporting.stock'")
    )


async def broker_check(stack: Any, service: str) -> tuple[int, Any]:
    response = await stack.ready(service)
    return response.status_code, response.json()["checks"].get("broker")


async def wait_outage(stack: Any, service: str, timeout: float = 60) -> None:
    async def down() -> bool:
        status, broker = await broker_check(stack, service)
        return status == 503 and broker != "ok"

    await eventually(down, timeout=timeout, interval=0.2, message=f"{service} reports the broker outage")


async def cut_off(stack: Any, service: str) -> None:
    """The service's broker connections are reset and new ones refused: a dead broker behind a proxy."""
    proxy = stack.proxies[service]
    proxy.refuse(True)
    proxy.reset_all()
    await wait_outage(stack, service)


@pytest.mark.timeout(300)
async def test_crash_between_commit_and_publish(stack: Any, kit: Any, town: Any) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await town.admin_headers(client)
        cohort = await kit.build_cohort(
            stack, town, client, {"35.78.04": 2}, movements_per_coop=200, seed=11, stalled=False
        )
        await cut_off(stack, "inventory")
        await kit.post_ledgers(stack, cohort, client)
        # Committed with their events, none published: then the process dies.
        assert await stack.outbox_pending("inventory") >= cohort.movement_count

        async def reconnect() -> None:
            stack.proxies["inventory"].refuse(False)

        await stack.kill_and_restart("inventory", before_start=reconnect)
        await eventually(lambda: kit.settled(stack), timeout=180, interval=0.5)
        summary = await kit.compare_read_models(stack, cohort, client, admin)
        assert summary["movements"] == 400


@pytest.mark.timeout(300)
async def test_crash_between_publish_and_marking_sent(stack: Any, kit: Any, town: Any) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await town.admin_headers(client)
        cohort = await kit.build_cohort(
            stack, town, client, {"35.78.06": 2}, movements_per_coop=150, seed=12, stalled=False
        )
        await cut_off(stack, "inventory")
        await kit.post_ledgers(stack, cohort, client)
        pending = await stack.outbox_pending("inventory")
        assert pending >= cohort.movement_count
        duplicates_before = await stack.outcome("reporting", "duplicates", "reporting.stock")
        before = await applied(stack)

        # SHARE conflicts with the relay's UPDATE (ROW EXCLUSIVE), not with its SELECT ... FOR UPDATE
        # SKIP LOCKED (ROW SHARE): the relay claims and publishes the rows, then waits to mark them.
        lock = await asyncpg.connect(kit.plain_dsn(stack.databases["inventory"]))
        transaction = lock.transaction()
        await transaction.start()
        await lock.execute("LOCK TABLE outbox IN SHARE MODE")
        try:
            stack.proxies["inventory"].refuse(False)

            async def all_applied() -> bool:
                return await applied(stack) - before >= pending

            await eventually(all_applied, timeout=120, interval=0.3, message="reporting applied them")
            # Published and applied downstream, still not marked sent: the relay is stuck on our lock.
            assert await lock.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == pending
            await asyncio.to_thread(stack.service("inventory").kill)
        finally:
            await transaction.rollback()
            await lock.close()
        stack.service("inventory").start()
        await stack.wait_ready("inventory")
        await eventually(lambda: kit.settled(stack), timeout=180, interval=0.5)

        duplicates = await stack.outcome("reporting", "duplicates", "reporting.stock") - duplicates_before
        print(f"published twice: {pending}; duplicates absorbed by reporting: {duplicates:.0f}")
        assert duplicates >= pending, "every event published again must reach reporting as a duplicate"
        await kit.compare_read_models(stack, cohort, client, admin)


async def stock_writers_waiting(stack: Any) -> int:
    """Reporting sessions waiting for a lock on `stock_items` (only the stock consumer writes it)."""
    return int(
        await stack.fetchval(
            "reporting",
            "SELECT count(*) FROM pg_locks WHERE relation = 'stock_items'::regclass AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    )


@pytest.mark.timeout(300)
async def test_crash_between_commit_and_ack(stack: Any, kit: Any, town: Any) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await town.admin_headers(client)
        cohort = await kit.build_cohort(
            stack, town, client, {"35.78.08": 2}, movements_per_coop=200, seed=13, stalled=False
        )
        # A backlog waits for reporting: it is cut off while the movements are posted.
        await cut_off(stack, "reporting")
        await kit.post_ledgers(stack, cohort, client)
        proxy = stack.proxies["reporting"]

        # EXCLUSIVE conflicts with the stock projection's SELECT ... FOR UPDATE and upsert of
        # `stock_items`, not with plain reads: back on line, reporting's stock consumer takes a batch,
        # claims its inbox rows and waits on our lock, its deliveries unacked.
        lock = await asyncpg.connect(kit.plain_dsn(stack.databases["reporting"]))
        transaction = lock.transaction()
        await transaction.start()
        await lock.execute("LOCK TABLE stock_items IN EXCLUSIVE MODE")
        try:
            proxy.refuse(False)

            async def batch_in_transaction() -> bool:
                return await stock_writers_waiting(stack) > 0

            await eventually(
                batch_in_transaction, timeout=60, interval=0.1, message="a stock batch waits on the lock"
            )
            # Acks from here on stay in the proxy; nothing of the stock queue can commit before.
            proxy.hang(True)
            before = await applied(stack)
        finally:
            await transaction.rollback()  # the batch commits; its ack is held
            await lock.close()

        async def committed() -> bool:
            return await applied(stack) > before

        await eventually(committed, timeout=30, interval=0.05, message="the held batch committed")
        # Then whatever else it had received (at most its prefetch): committed too, acks held too.
        seen = -1
        while (now := await applied(stack)) != seen:
            seen = now
            await asyncio.sleep(0.3)
        await asyncio.to_thread(stack.service("reporting").kill)
        proxy.reset_all()  # the held acks die with the connection; the broker requeues the unacked
        proxy.hang(False)
        # Counted after the kill: every stock event committed since the hang, none of them acked.
        committed_unacked = await applied(stack) - before
        stack.service("reporting").start()
        await stack.wait_ready("reporting")
        await eventually(lambda: kit.settled(stack), timeout=240, interval=0.5)

        # The metrics are the new process's: what it found in the inbox on redelivery.
        duplicates = await stack.outcome("reporting", "duplicates", "reporting.stock")
        print(f"committed, not acked when killed: {committed_unacked}; redelivered duplicates: {duplicates}")
        assert committed_unacked > 0, "reporting committed nothing while its acks were held"
        assert duplicates >= committed_unacked, "every committed, unacked event must come back a duplicate"
        await kit.compare_read_models(stack, cohort, client, admin)


@pytest.mark.timeout(420)
async def test_slow_and_broken_network(stack: Any, kit: Any, town: Any) -> None:
    """500 ms each way, then connection resets, then a hang, while movements and deliveries flow."""
    rng = random.Random(14)
    inventory, reporting = stack.proxies["inventory"], stack.proxies["reporting"]
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await town.admin_headers(client)
        cohort = await kit.build_cohort(
            stack, town, client, {"35.78.03": 3}, movements_per_coop=200, seed=14, stalled=False
        )
        before = await applied(stack)
        total = cohort.movement_count
        publisher = kit.ResilientPublisher(stack.rabbit.url)
        timeline: list[str] = []
        started = time.monotonic()

        def note(what: str) -> None:
            timeline.append(f"{time.monotonic() - started:5.1f}s {what}")

        # Latency: everything still flows, only slower; nobody declares an outage.
        inventory.latency_ms = reporting.latency_ms = 500
        note("latency 500 ms")
        posting = asyncio.create_task(kit.post_ledgers(stack, cohort, client, concurrency=1))
        delivering = asyncio.create_task(kit.send_deliveries(cohort, publisher, per_coop=10))

        async def progressed(share: float) -> bool:
            return await applied(stack) - before >= share * total

        await eventually(lambda: progressed(0.15), timeout=180, interval=0.3)
        for service in ("inventory", "reporting"):
            assert (await broker_check(stack, service))[0] == 200, f"{service} not ready under latency"
        inventory.latency_ms = reporting.latency_ms = 0
        note("latency off")

        # Resets: connections die (RST) at random moments; the services reconnect by themselves.
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            note(f"reset {inventory.reset_all()} inventory and {reporting.reset_all()} reporting connections")
        await stack.wait_ready("inventory", "reporting", timeout=60)
        note("ready again after resets")

        # A hang: bytes stop, sockets stay open. Heartbeats notice; readiness says so; the API answers.
        inventory.hang(True)
        reporting.hang(True)
        note("hang")
        await wait_outage(stack, "inventory")
        await wait_outage(stack, "reporting")
        note("both report the outage")
        coop = cohort.coops[0]
        response = await client.get(f"{stack.url('inventory')}/cooperatives/{coop.id}/stock", headers=admin)
        assert response.status_code == 200
        inventory.hang(False)
        reporting.hang(False)
        note("hang over")
        await stack.wait_ready("inventory", "reporting", timeout=90)
        note("ready again by themselves")

        await posting
        await delivering
        await publisher.close()
        await eventually(lambda: kit.settled(stack), timeout=240, interval=0.5)
        note("settled")
        summary = await kit.compare_read_models(stack, cohort, client, admin)
        dead = {q: n for q, n in (await kit.broker_queues(stack)).items() if q.endswith(".dlq") and n}
        assert dead == {}, f"messages were dead-lettered: {dead}"
        print("\n".join(timeline), summary)
