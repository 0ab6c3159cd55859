"""The alert floor of this machine: the least an alert path with the same guarantees costs, in place
of the notifications service, on the same stalls and the same load.

Like the HTTP floor (bench/http_floor.py), it answers one question: is the alert-latency target
(p99 under 500 ms from a `stock.stalled.v1` on the exchange to the inbox and to the webhook) within
this machine's reach at all, whatever the service does beyond the essentials? The floor keeps only
what an alert must cost to be neither lost nor applied twice, in a process of its own:

- a durable queue bound to `stock.stalled.v1`, consumed with manual acks (prefetch 256), every
  message that is there taken as one batch, with no linger;
- per batch, one PostgreSQL transaction through asyncpg (no ORM): the inbox claim of the event ids
  (a redelivered event is applied once), one inbox row for the officer, and one outbox row for each
  `notification.delivered.v1` the service would publish (the inbox's and the webhook's); the
  messages are acked once it commits;
- then one signed POST of the event to the webhook receiver per stall, at most `--per-target` at
  once (64, the service's `DELIVERY_PER_TARGET`), through `--client`: aiohttp (what the service
  uses), httpx, or `raw` (HTTP/1.1 written and read by hand: the least a POST from Python costs);
  and the delivered events published persistent and confirmed.

It has no routing table, recipients, templates, repeat windows, API, attempts table, leases or
tracing. Its `inbox` time is when the transaction committed, a lower bound of any inbox read.

    .venv/bin/python bench/alert_floor.py [--stalls 200] [--movements 20000] [--client aiohttp]

prints p50/p99 from publication to the floor's commit and to the webhook, and the CPU per stall of
each process. With httpx, the floor itself cost 1.9-2.6 ms of CPU per stall under the ingest and its
webhook p99 was 570-1,700 ms at 8 POSTs at once; with aiohttp 0.50-0.55 ms and 250-360 ms; by hand
0.45 ms and 120-230 ms. That is why the service POSTs with aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

STALLED = "stock.stalled.v1"
SECRET = b"floor-secret"
CLIENTS = ("aiohttp", "httpx", "raw")
HERE = Path(__file__).resolve().parent

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (event_id text PRIMARY KEY, processed_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    id uuid PRIMARY KEY, user_id text NOT NULL, event_id text NOT NULL, event_type text NOT NULL,
    title text NOT NULL, cooperative_id text, created_at timestamptz NOT NULL, read_at timestamptz
);
CREATE TABLE IF NOT EXISTS outbox (
    seq bigserial PRIMARY KEY, event_id uuid NOT NULL, event_type text NOT NULL, body jsonb NOT NULL,
    created_at timestamptz NOT NULL, published_at timestamptz
);
"""


class RawPoster:
    """HTTP/1.1 POSTs over kept-alive asyncio streams, written and read by hand: the least a POST
    from Python can cost (no client library), `size` connections at most."""

    def __init__(self, url: str, size: int) -> None:
        parsed = httpx.URL(url)
        self.host, self.port, self.path = parsed.host, parsed.port or 80, parsed.raw_path.decode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(size)

    async def post(self, body: bytes, headers: dict[str, str], method: str = "POST") -> int:
        async with self.slots:
            if self.idle:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(
                f"{method} {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.idle.append((reader, writer))
            return status


class Floor:
    """The floor's process: consume, commit, ack, POST, publish; stamps each stall's commit."""

    def __init__(self, amqp_url: str, dsn: str, hook: str, client: str, per_target: int) -> None:
        self.amqp_url, self.dsn, self.hook, self.client = amqp_url, dsn, hook, client
        self.officer = "officer"
        self.committed: dict[str, float] = {}
        self.pending: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        self.slots = asyncio.Semaphore(per_target)
        self.raw = RawPoster(hook, per_target)
        self.tasks: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        self.db = await asyncpg.connect(self.dsn)
        await self.db.execute(SCHEMA)
        self.http = httpx.AsyncClient(timeout=10)
        self.aio = aiohttp.ClientSession()
        # Warm, as a service that has been running is (the receiver answers any GET).
        await self.post(b"", {}, method="GET")
        connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=256)
        self.exchange = await channel.declare_exchange(
            "kkmp.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue("floor.alerts", durable=True)
        await queue.bind(self.exchange, STALLED)
        await queue.consume(self.receive)
        self.ready.set()
        while True:
            batch = [await self.pending.get()]
            while not self.pending.empty():
                batch.append(self.pending.get_nowait())
            await self.apply(batch)

    async def receive(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        # A coroutine: aio-pika wraps a plain callable with a warning that formats its repr, and a
        # bound `put_nowait`'s repr is the whole queue.
        self.pending.put_nowait(message)

    async def apply(self, batch: list[aio_pika.abc.AbstractIncomingMessage]) -> None:
        events = [json.loads(m.body) for m in batch]
        moment = datetime.now(UTC)
        async with self.db.transaction():
            fresh = {
                r["event_id"]
                for r in await self.db.fetch(
                    "INSERT INTO inbox SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING "
                    "RETURNING event_id",
                    [e["id"] for e in events],
                    moment,
                )
            }
            new = [e for e in events if e["id"] in fresh]
            await self.db.executemany(
                "INSERT INTO notifications (id, user_id, event_id, event_type, title, cooperative_id, "
                "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [
                    (uuid.uuid4(), self.officer, e["id"], e["type"], "Stok macet", e["subject"], moment)
                    for e in new
                ],
            )
            await self.db.executemany(
                "INSERT INTO outbox (event_id, event_type, body, created_at) VALUES ($1, $2, $3, $4)",
                [
                    (uuid.uuid4(), "notification.delivered.v1", self.delivered(e, "inbox"), moment)
                    for e in new
                ],
            )
        at = time.time()
        for e in new:
            self.committed.setdefault(e["id"], at)
        await batch[-1].ack(multiple=True)
        for message, e in zip(batch, events, strict=True):
            if e["id"] in fresh:
                task = asyncio.create_task(self.deliver(message.body, e))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        await self.publish([self.delivered(e, "inbox") for e in new])

    def delivered(self, event: dict[str, Any], channel: str) -> str:
        return json.dumps(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "/alert-floor",
                "type": "notification.delivered.v1",
                "time": datetime.now(UTC).isoformat(),
                "data": {"channel": channel, "source_event_id": event["id"], "recipient": self.officer},
            }
        )

    async def deliver(self, body: bytes, event: dict[str, Any]) -> None:
        signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/cloudevents+json", "X-KKMP-Signature": signature}
        status = await self.post(body, headers)
        if 200 <= status < 300:
            await self.publish([self.delivered(event, "webhook")])

    async def post(self, body: bytes, headers: dict[str, str], method: str = "POST") -> int:
        """One request to the receiver through the chosen client, at most `per_target` at once."""
        if self.client == "raw":
            return await self.raw.post(body, headers, method)
        async with self.slots:
            if self.client == "aiohttp":
                async with self.aio.request(
                    method, self.hook, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    return response.status
            return (await self.http.request(method, self.hook, content=body, headers=headers)).status_code

    async def publish(self, bodies: list[str]) -> None:
        await asyncio.gather(
            *(
                self.exchange.publish(
                    aio_pika.Message(
                        body.encode(),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type="application/json",
                    ),
                    routing_key="notification.delivered.v1",
                )
                for body in bodies
            )
        )


def serve(argv: list[str]) -> None:
    """The floor's process: `alert_floor.py serve AMQP DSN HOOK CLIENT PER_TARGET STAMPS`; on
    SIGTERM it writes each stall's commit time (epoch s) to STAMPS and exits."""
    amqp_url, dsn, hook, client, per_target, stamps = argv
    floor = Floor(amqp_url, dsn, hook, client, int(per_target))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        running = asyncio.create_task(floor.run())
        await floor.ready.wait()
        Path(stamps).with_suffix(".ready").touch()
        await stop.wait()
        running.cancel()
        await asyncio.to_thread(Path(stamps).write_text, json.dumps(floor.committed))
        os._exit(0)

    import uvloop

    uvloop.run(main())


# --- the measurement ---------------------------------------------------------------------------------


class FloorProcess:
    """The floor as a process of its own; `committed()` reads its stamps after it stopped."""

    def __init__(self, amqp_url: str, dsn: str, hook: str, client: str, per_target: int, work: Path) -> None:
        self.stamps = work / "floor-stamps.json"
        self.ready = self.stamps.with_suffix(".ready")
        self.args = [amqp_url, dsn, hook, client, str(per_target), str(self.stamps)]

    async def __aenter__(self) -> FloorProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "alert_floor.py"), "serve", *self.args
        )
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the alert floor did not start")
            await asyncio.sleep(0.05)
        return self

    async def stop(self) -> dict[str, float]:
        if self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        return json.loads(self.stamps.read_text()) if self.stamps.exists() else {}

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def measure_floor(
    stalls: int, movements: int, services: tuple[str, ...], http_client: str, per_target: int
) -> dict[str, Any]:
    """The same stalls and load as bench/alert_latency.py's focused run, the floor in notifications'
    place; p50/p99 from publication to the floor's commit (`inbox`) and to the webhook."""
    import tempfile

    from alert_latency import (
        STALL_ITEMS,
        AlertProbe,
        Receiver,
        _ingest,
        _sink,
        make_cooperatives,
        seed_stalls,
    )
    from cpu import CpuMeter
    from figures import percentile_ms
    from kkmp_testkit.postgres import acreate_database, adrop_database
    from stack import running_platform

    services = tuple(s for s in services if s != "notifications")
    async with running_platform("floor", services) as (plat, amqp_url):
        database = await acreate_database("floor_alerts")
        try:
            dsn = database.replace("postgresql+asyncpg://", "postgresql://")
            async with httpx.AsyncClient(timeout=120) as client, Receiver() as receiver:
                admin = {"Authorization": f"Bearer {await asyncio.to_thread(plat.admin_token)}"}
                stall_coops = (stalls + len(STALL_ITEMS) - 1) // len(STALL_ITEMS)
                coops = await make_cooperatives(client, plat, admin, stall_coops + (8 if movements else 0))
                await _sink(amqp_url)
                announced = await seed_stalls(client, plat, admin, coops[:stall_coops], stalls)
                work = Path(tempfile.mkdtemp(prefix="kkmp-floor-"))
                floor = FloorProcess(amqp_url, dsn, receiver.url, http_client, per_target, work)
                async with floor, AlertProbe(amqp_url) as probe:
                    ingest = asyncio.create_task(_ingest(client, plat, admin, coops[stall_coops:], movements))
                    await asyncio.sleep(1.0 if movements else 0)
                    pids = {n: s.proc.pid for n, s in plat.services.items() if s.proc}
                    pids["alert floor"] = floor.proc.pid
                    meter = CpuMeter(pids, with_children=False)
                    meter.start()
                    (
                        await client.post(f"{plat.url('inventory')}/detections/run", headers=admin, json={})
                    ).raise_for_status()
                    await ingest
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and (
                        len(probe.published) < announced
                        or not set(probe.published) <= set(await receiver.refresh())
                    ):
                        await asyncio.sleep(0.1)
                    cpu = meter.stop(announced)
                    committed = await floor.stop()
        finally:
            await adrop_database(database)

    published = probe.published

    def latencies(ends: dict[str, float]) -> list[float]:
        return [(ends[i] - t) * 1000 for i, t in published.items() if i in ends]

    inbox, webhook = latencies(committed), latencies(receiver.arrivals)
    return {
        "stalls_announced": len(published),
        "floor_inbox_matched": f"{len(inbox)}/{len(published)}",
        "floor_inbox_p50_ms": percentile_ms(inbox, 50, 1),
        "floor_inbox_p99_ms": percentile_ms(inbox, 99, 1),
        "floor_webhook_matched": f"{len(webhook)}/{len(published)}",
        "floor_webhook_p50_ms": percentile_ms(webhook, 50, 1),
        "floor_webhook_p99_ms": percentile_ms(webhook, 99, 1),
        "cpu_ms_per_stall": cpu["ms_per_unit"],
        "cpu_cores_busy": cpu["cores_busy"],
        "machine_cores_busy": cpu["machine_cores_busy"],
    }


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stalls", type=int, default=200)
    parser.add_argument("--movements", type=int, default=20000, help="ingest load during detection")
    parser.add_argument("--services", default="registry,inventory,reporting,sourcing")
    parser.add_argument("--client", choices=CLIENTS, default="aiohttp", help="the HTTP client of the POSTs")
    parser.add_argument("--per-target", type=int, default=64, help="POSTs in flight at once (the service's)")
    args = parser.parse_args()
    services = tuple(s for s in args.services.split(",") if s)
    figures = asyncio.run(measure_floor(args.stalls, args.movements, services, args.client, args.per_target))
    for key, value in figures.items():
        print(f"{key:<28} {'MISSED' if value is None else value!s:>12}")


if __name__ == "__main__":
    main()
