"""Proof that the test-support package ``kkmp_testkit`` does what the fault tests rely on.

Everything here runs against real servers: a private RabbitMQ node (started, SIGKILLed, restarted
and memory-alarmed), the machine's broker through a ChaosProxy and in throw-away vhosts, and the
local PostgreSQL with throw-away databases. One private node serves the whole module because each
boot costs ~6 s on 2 cores, so the tests of the node are ordered: the SIGKILL test comes after the
ones that need an undisturbed node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import asyncpg
import pytest
from kkmp_testkit.ports import free_port, free_ports
from kkmp_testkit.postgres import (
    acreate_database,
    adrop_database,
    create_database,
    drop_database,
    ensure_postgres,
)
from kkmp_testkit.proxy import ChaosProxy
from kkmp_testkit.rabbit import (
    PrivateRabbit,
    amqp_answers,
    ensure_broker,
    release_vhosts,
    temporary_vhost,
    vhost_url,
)
from kkmp_testkit.wait import eventually, wait_until
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.integration

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as node:
        print(f"\nprivate node {node.node} ready in {node.last_start_seconds:.2f}s")
        yield node


@pytest.fixture(scope="module")
def broker_url() -> str:
    return ensure_broker()


@pytest.fixture(scope="module")
def vhost(broker_url: str) -> Iterator[str]:
    """A vhost of this module's own on the shared broker: nothing declared in it outlives it.

    Module-scoped because each rabbitmqctl call costs ~0.5 s of CPU (it boots an Elixir VM)."""
    with temporary_vhost(broker_url, "infra") as url:
        yield url


async def _connect(url: str, timeout: float = 10.0) -> aio_pika.abc.AbstractConnection:
    # Non-robust on purpose: these tests want to *see* a dropped connection, not have it healed.
    return await aio_pika.connect(url, timeout=timeout)


@contextlib.asynccontextmanager
async def _connection(url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    connection = await _connect(url)
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 5)


# ---------------------------------------------------------------------------------------------
# ports and wait
# ---------------------------------------------------------------------------------------------


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert 0 < free_port() < 65536
    assert not amqp_answers("127.0.0.1", ports[0], timeout=0.5)


async def test_eventually_returns_value_and_reports_last_failure() -> None:
    calls = {"n": 0}

    async def third_time_lucky() -> int:
        calls["n"] += 1
        return calls["n"] if calls["n"] >= 3 else 0

    assert await eventually(third_time_lucky, timeout=2, interval=0.01) == 3

    def always_wrong() -> None:
        raise ValueError("still broken")

    with pytest.raises(AssertionError, match="still broken") as info:
        await eventually(always_wrong, timeout=0.2, interval=0.02)
    assert isinstance(info.value.__cause__, ValueError)

    with pytest.raises(AssertionError, match=r"last value was \[\]"):
        await eventually(lambda: [], timeout=0.1, interval=0.02)

    # An attempt that never finishes is cut at the deadline.
    started = time.monotonic()
    with pytest.raises(AssertionError):
        await eventually(lambda: asyncio.sleep(30), timeout=0.3)
    assert time.monotonic() - started < 2

    deadline = time.monotonic() + 0.1
    assert wait_until(lambda: time.monotonic() > deadline, timeout=2, interval=0.01)
    with pytest.raises(AssertionError, match="custom"):
        wait_until(lambda: False, timeout=0.05, message="custom")


def test_vhost_url_encodes_the_vhost() -> None:
    assert (
        vhost_url("amqp://guest:guest@127.0.0.1:5672/", "a/b c")
        == "amqp://guest:guest@127.0.0.1:5672/a%2Fb%20c"
    )
    assert vhost_url("amqp://u:p@h:1/old?heartbeat=5", "new") == "amqp://u:p@h:1/new?heartbeat=5"
    assert vhost_url("amqp://u:p@h:1", "/") == "amqp://u:p@h:1/%2F"


# ---------------------------------------------------------------------------------------------
# PrivateRabbit
# ---------------------------------------------------------------------------------------------


async def test_private_rabbit_accepts_connections_and_confirms(rabbit: PrivateRabbit) -> None:
    assert rabbit.port != 5672
    assert rabbit.url == f"amqp://guest:guest@127.0.0.1:{rabbit.port}/"
    # The pid we would SIGKILL is the one the node reports for itself.
    assert rabbit.pid == rabbit.os_pid()
    async with _connection(rabbit.url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"confirm-{uuid.uuid4().hex[:8]}", auto_delete=True)
        # With publisher confirms, publish() returns only after the broker's basic.ack.
        confirmation = await channel.default_exchange.publish(
            aio_pika.Message(b"ping"), routing_key=queue.name, timeout=10
        )
        assert getattr(confirmation, "name", None) == "Basic.Ack"
        message = await eventually(lambda: queue.get(no_ack=True, fail=False), timeout=5)
        assert message is not None and message.body == b"ping"


async def test_private_rabbit_vhost_and_ctl(rabbit: PrivateRabbit) -> None:
    url = rabbit.create_vhost("private-vhost")
    try:
        async with _connection(url) as connection:
            channel = await connection.channel()
            await channel.declare_queue("only-here", auto_delete=True)
    finally:
        rabbit.delete_vhost("private-vhost")
    with pytest.raises(Exception):  # noqa: B017 - aio-pika raises several types for a refused vhost
        await _connect(url, timeout=5)


@pytest.mark.parametrize("resource", ["memory", "disk"])
async def test_resource_alarm_blocks_then_unblocks_publishing(rabbit: PrivateRabbit, resource: str) -> None:
    async with _connection(rabbit.url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"alarm-{uuid.uuid4().hex[:8]}", auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"before"), routing_key=queue.name)

        started = time.monotonic()
        await asyncio.to_thread(rabbit.set_alarm, resource, True)
        print(f"\n{resource} alarm raised in {time.monotonic() - started:.2f}s")
        try:
            assert await asyncio.to_thread(rabbit.alarm_active, resource)
            blocked = asyncio.create_task(
                channel.default_exchange.publish(aio_pika.Message(b"during"), routing_key=queue.name)
            )
            # The broker stops reading from a publishing connection while the alarm is on, so
            # the confirm cannot come.
            await asyncio.sleep(1.5)
            assert not blocked.done(), f"publish was confirmed despite the {resource} alarm"
        finally:
            await asyncio.to_thread(rabbit.set_alarm, resource, False)
        await asyncio.wait_for(blocked, 10)
        assert not await asyncio.to_thread(rabbit.alarm_active, resource)
        bodies = [m.body for m in [await queue.get(no_ack=True), await queue.get(no_ack=True)]]
        assert bodies == [b"before", b"during"]


async def test_kill_and_restart_keeps_durable_messages(rabbit: PrivateRabbit) -> None:
    queue_name = f"durable-{uuid.uuid4().hex[:8]}"
    connection = await _connect(rabbit.url)
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(queue_name, durable=True)
    # declare-ok does not mean "on disk" for the queue's definition (Mnesia logs asynchronously);
    # without this, a SIGKILL right after can lose the whole queue on a loaded machine.
    await asyncio.to_thread(rabbit.sync_metadata)
    for i in range(3):
        # Confirmed + persistent + durable queue: the broker acks only once it is on disk.
        await channel.default_exchange.publish(
            aio_pika.Message(f"kept-{i}".encode(), delivery_mode=PERSISTENT), routing_key=queue.name
        )

    old_pid = rabbit.pid
    assert old_pid is not None
    started = time.monotonic()
    rabbit.kill()
    killed_in = time.monotonic() - started
    assert not _alive(old_pid)
    assert not rabbit.is_running()
    # The client notices the broker's death (socket reset), as a service would. (aio-pika 10's
    # ``is_closed`` only reports a local close(); a lost connection clears ``connected``.)
    await eventually(lambda: not connection.connected.is_set(), timeout=10)
    with contextlib.suppress(Exception):
        await connection.close()

    started = time.monotonic()
    await asyncio.to_thread(rabbit.start)
    restarted_in = time.monotonic() - started
    print(f"\nSIGKILL took {killed_in:.2f}s, restart after kill {restarted_in:.2f}s")
    assert rabbit.pid is not None and rabbit.pid != old_pid

    async with _connection(rabbit.url) as again:
        channel = await again.channel()
        try:
            queue = await channel.declare_queue(queue_name, durable=True, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            pytest.fail(f"durable queue lost in the crash; node data in {rabbit.base_dir}")
        bodies = []
        for _ in range(3):
            message = await queue.get(no_ack=True, timeout=5)
            bodies.append(message.body)
        assert bodies == [b"kept-0", b"kept-1", b"kept-2"]
        await queue.delete(if_unused=False, if_empty=False)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie (killed, not yet reaped by its parent) counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------
# ChaosProxy (against the shared broker, in a vhost of the test's own)
# ---------------------------------------------------------------------------------------------


async def _round_trip(channel: aio_pika.abc.AbstractChannel) -> float:
    """Seconds for one AMQP RPC (queue.declare -> declare-ok): one chunk each way."""
    started = time.monotonic()
    await channel.declare_queue(f"rt-{uuid.uuid4().hex[:8]}", auto_delete=True, exclusive=True)
    return time.monotonic() - started


async def test_chaos_proxy_forwards_amqp_and_adds_latency(vhost: str) -> None:
    async with ChaosProxy.for_url(vhost) as proxy:
        url = proxy.url_for(vhost)
        assert url.endswith(f"@127.0.0.1:{proxy.port}/{vhost.rsplit('/', 1)[1]}")
        async with _connection(url) as connection:
            assert proxy.connection_count == 1
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue("through-proxy", auto_delete=True)
            await channel.default_exchange.publish(aio_pika.Message(b"via proxy"), routing_key=queue.name)
            message = await eventually(lambda: queue.get(no_ack=True, fail=False), timeout=5)
            assert message is not None and message.body == b"via proxy"

            fast = min([await _round_trip(channel) for _ in range(3)])
            proxy.latency_ms = 200
            slow = await _round_trip(channel)
            proxy.latency_ms = 0
            print(f"\nRPC round trip {fast * 1000:.1f} ms direct, {slow * 1000:.1f} ms with 200 ms latency")
            # 200 ms on the request chunk and 200 ms on the reply chunk.
            assert slow >= 0.38
            assert slow - fast >= 0.3
            assert await _round_trip(channel) < slow


async def test_chaos_proxy_reset_hang_and_refuse(vhost: str) -> None:
    async with ChaosProxy.for_url(vhost) as proxy:
        url = proxy.url_for(vhost)

        # reset_all: the client's connection dies with a reset, a new one gets through.
        connection = await _connect(url)
        closed = asyncio.Event()
        connection.close_callbacks.add(lambda *_: closed.set())
        assert proxy.reset_all() == 1
        await asyncio.wait_for(closed.wait(), 10)
        assert not connection.connected.is_set()
        with contextlib.suppress(Exception):
            await connection.close()
        async with _connection(url) as again:
            await (await again.channel()).declare_queue("after-reset", auto_delete=True, exclusive=True)

            # hang: bytes stop, the connection stays; the RPC completes once the hang ends.
            channel = await again.channel()
            proxy.hang(True)
            pending = asyncio.create_task(_round_trip(channel))
            await asyncio.sleep(0.5)
            assert not pending.done()
            assert proxy.connection_count == 1
            proxy.hang(False)
            assert await asyncio.wait_for(pending, 10) >= 0.5

        # refuse: new connections fail fast, then work again.
        proxy.refuse(True)
        with pytest.raises((ConnectionError, aio_pika.exceptions.AMQPConnectionError, OSError)):
            await _connect(url, timeout=5)
        proxy.refuse(False)
        async with _connection(url):
            pass
        assert proxy.accepted >= 4


def test_chaos_proxy_works_from_sync_code() -> None:
    # A plain TCP echo target keeps this independent of any broker.
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    target_port = listener.getsockname()[1]

    def echo() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the reset reaches this end too
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    with (
        ChaosProxy("127.0.0.1", target_port) as proxy,
        socket.create_connection(proxy.address, timeout=5) as c,
    ):
        c.sendall(b"hello")
        assert c.recv(1024) == b"hello"
        assert wait_until(lambda: proxy.connection_count == 1, timeout=2)
        proxy.reset_all()
        with pytest.raises(ConnectionResetError):
            c.sendall(b"x")
            c.recv(1024)
    listener.close()


# ---------------------------------------------------------------------------------------------
# vhost isolation on the shared broker
# ---------------------------------------------------------------------------------------------


async def test_vhosts_isolate_parallel_runs(broker_url: str) -> None:
    assert ensure_broker() == broker_url  # cached and still reachable
    with temporary_vhost(broker_url, "iso-a") as url_a, temporary_vhost(broker_url, "iso-b") as url_b:
        async with _connection(url_a) as conn_a, _connection(url_b) as conn_b:
            channel_a = await conn_a.channel()
            channel_b = await conn_b.channel()
            queue_a = await channel_a.declare_queue("same-name", durable=False, auto_delete=False)
            await channel_a.default_exchange.publish(aio_pika.Message(b"only in a"), routing_key="same-name")
            await eventually(lambda: _depth(channel_a, "same-name"), timeout=5)
            # The same queue name in the other vhost is a different, empty queue.
            queue_b = await channel_b.declare_queue("same-name", durable=False, auto_delete=False)
            assert queue_b.declaration_result.message_count == 0
            assert (await queue_a.get(no_ack=True)).body == b"only in a"
    # Deleted with its queues (pooled vhosts go a few at a time, or when released): logging in fails.
    release_vhosts()
    with pytest.raises(Exception):  # noqa: B017 - aio-pika raises several types for a refused vhost
        await _connect(url_a, timeout=5)


async def _depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    declared = await channel.declare_queue(name, passive=True)
    return declared.declaration_result.message_count or 0


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------


async def test_create_and_drop_database() -> None:
    admin = ensure_postgres()
    assert admin.startswith("postgresql://")

    url = create_database("infra test")
    assert url.startswith("postgresql+asyncpg://")
    name = url.rsplit("/", 1)[1]
    assert name.startswith("infra_test_")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id int primary key)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    finally:
        await engine.dispose()

    # Dropping must work while a session is still connected (a pool a test forgot to dispose).
    leaked = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
    drop_database(url)
    await eventually(leaked.is_closed, timeout=5)
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
    drop_database(url)  # idempotent

    # The async twins, for async fixtures.
    other = await acreate_database("infra_async")
    assert other != url
    await adrop_database(other)


async def test_ensure_broker_prefers_a_reachable_url(
    rabbit: PrivateRabbit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An explicit URL that answers wins; one that does not falls through to a working broker.
    assert ensure_broker(rabbit.url) == rabbit.url
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    monkeypatch.setenv("AMQP_URL", dead)
    assert ensure_broker(dead) != dead
