"""Stock reads at 64 connections: `GET /cooperatives/{id}/stock`, closed loop, as the portal's busiest page.

`measure(url, token, cooperative_ids)` is the load generator (bench/run.py may call it): a fixed number of
keep-alive HTTP/1.1 connections, each sending its next request as soon as the last answer arrived. It is
written on asyncio protocols with httptools (already installed with uvicorn[standard]) rather than
httpx: on the two-core benchmark machine, 64 httpx clients (as bench/run.py had them) spent 8 ms of CPU
per request and one shared httpx client 14 ms (its pool serialises 64 waiters), more than the service
itself, so the client was the bottleneck; this one spends about 0.4 ms. The client's own CPU per request
is measured and reported (`client_cpu_us_per_request`, `client_cpu_share`) so a reader can tell which
side was saturated.

`python bench/stock_reads.py` starts the inventory alone on a throwaway PostgreSQL database (its
directory rows inserted directly, tokens signed by a key the script owns, so no registry is needed),
stocks a few commodities in each cooperative, measures the reads, then posts 20,000 movements in batches
of 1,000 and reports the service's RSS idle, after the ingest and after the reads.

    python bench/stock_reads.py                      # start inventory, measure, ingest, print JSON
    python bench/stock_reads.py --hold               # ... then keep it running (for py-spy) until Ctrl-C
    python bench/stock_reads.py --url URL --token T --coops id1,id2   # measure a running service
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from cpu import cpu_s, rss_mb  # noqa: E402
from figures import percentile_ms  # noqa: E402

COMMODITIES = ("beras_medium", "gula", "minyakita", "telur")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `request` sends raw bytes and waits for the whole response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.body_bytes = 0
        self.keep_alive = True
        self.closed = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed mid-response"))
        if not self.closed.done():
            self.closed.set_result(None)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        # Asked here: once the message is complete the parser is reset for the next one, and answers
        # False whatever the response said (every request then paid for a new connection).
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def measure(
    url: str,
    token: str,
    cooperative_ids: list[str],
    connections: int = 64,
    seconds: float = 10,
    *,
    warmup: float = 1.0,
    path: str = "/cooperatives/{id}/stock",
) -> dict[str, Any]:
    """Closed loop over `connections` keep-alive connections for `seconds` (after `warmup`)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [
        (
            f"GET {path.format(id=c)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        for c in cooperative_ids
    ]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answered = 0  # every response, warm-up included
    opened = 0  # connections, warm-up included: `connections` unless the server closed some
    recording = False
    stop = False

    async def worker(i: int) -> None:
        nonlocal answered, opened
        conn: _Connection | None = None
        n = i
        while not stop:
            if conn is None or conn.transport is None or conn.transport.is_closing():
                _, conn = await loop.create_connection(_Connection, host, port)
                opened += 1
            raw = requests[n % len(requests)]
            n += connections
            started = time.perf_counter()
            try:
                status = await conn.request(raw)
            except ConnectionError:
                conn = None
                statuses[0] = statuses.get(0, 0) + 1
                continue
            answered += 1
            if recording:
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
            if not conn.keep_alive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    tasks = [asyncio.create_task(worker(i)) for i in range(connections)]
    await asyncio.sleep(warmup)
    recording = True
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    recording = False
    cpu1, wall1 = time.process_time(), time.perf_counter()
    stop = True
    _, hung = await asyncio.wait(tasks, timeout=30)  # each finishes the request it has in flight
    for task in hung:
        task.cancel()
    elapsed = wall1 - wall0
    latencies.sort()
    count = len(latencies)
    return {
        "connections": connections,
        "seconds": round(elapsed, 2),
        "requests": count,
        "requests_all": answered,
        "connections_opened": opened,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rps": round(count / elapsed),
        "p50_ms": percentile_ms(latencies, 50),
        "p90_ms": percentile_ms(latencies, 90),
        "p99_ms": percentile_ms(latencies, 99),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        # The load generator's own cost: if its share nears one core, it is the bottleneck.
        "client_cpu_us_per_request": round((cpu1 - cpu0) / max(count, 1) * 1e6, 1),
        "client_cpu_share": round((cpu1 - cpu0) / elapsed, 3),
    }


# --- inventory alone ---------------------------------------------------------------------------------


async def insert_cooperatives(database_url: str, n: int) -> list[str]:
    """Directory rows written straight into the inventory's table (what registry events would do)."""
    from inventory.adapters import orm
    from sqlalchemy.ext.asyncio import create_async_engine

    ids = [str(uuid.uuid4()) for _ in range(n)]
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            orm.known_cooperatives.insert(),
            [
                {
                    "id": cid,
                    "name": f"KKMP bench {i}",
                    "kelurahan_code": f"35.78.{i // 10:02d}.{1000 + i}",
                    "kecamatan_code": f"35.78.{i // 10:02d}",
                    "kelurahan_name": f"Kelurahan {i}",
                    "lat": -7.25,
                    "lon": 112.75,
                    "status": "operating",
                    "business_units": ["sembako"],
                    "member_count": 0,
                    "updated_at": datetime.now(UTC),
                }
                for i, cid in enumerate(ids)
            ],
        )
    await engine.dispose()
    return ids


async def stock_cooperatives(url: str, token: str, ids: list[str]) -> None:
    """A few commodities in each cooperative: a receipt and some sales today."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=60) as client:
        for cid in ids:
            movements: list[dict[str, Any]] = []
            for c in COMMODITIES:
                movements.append({"commodity": c, "kind": "receipt", "quantity": "100", "unit_price": 10000})
                movements += [
                    {"commodity": c, "kind": "sale", "quantity": "2", "unit_price": 11000} for _ in range(3)
                ]
            r = await client.post(
                f"{url}/cooperatives/{cid}/movements/batch", headers=headers, json={"movements": movements}
            )
            r.raise_for_status()


async def ingest(url: str, token: str, ids: list[str], total: int, per_batch: int = 1000) -> float:
    """`total` movements through the batch endpoint, four requests at a time (as bench/run.py does)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(4)

    async def post(client: httpx.AsyncClient, cid: str) -> None:
        movements = [
            {"commodity": "beras_medium", "kind": "receipt", "quantity": "100000", "unit_price": 12000}
        ]
        movements += [
            {"commodity": "beras_medium", "kind": "sale", "quantity": "1", "unit_price": 13000}
            for _ in range(per_batch - 1)
        ]
        async with sem:
            r = await client.post(
                f"{url}/cooperatives/{cid}/movements/batch", headers=headers, json={"movements": movements}
            )
            r.raise_for_status()

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as client:
        await asyncio.gather(*(post(client, ids[b % len(ids)]) for b in range(total // per_batch)))
    return total / (time.perf_counter() - started)


async def event_sink(amqp_url: str) -> Any:
    """A queue bound to every event, capped at one message: with no other service running, the relay's
    `mandatory` publishes would otherwise be unroutable and retried forever."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange("kkmp.events", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(
        "bench.sink", arguments={"x-max-length": 1, "x-overflow": "drop-head"}, auto_delete=False
    )
    await queue.bind(exchange, "#")
    return connection


async def outbox_drained(url: str, timeout: float = 300) -> float:
    """Wait until the relay has published every event (its backlog gauge reads 0); seconds waited."""
    import httpx

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=10) as client:
        while time.perf_counter() - started < timeout:
            text = (await client.get(f"{url}/metrics")).text
            backlog = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("kkmp_outbox_backlog{")
            ]
            if backlog and max(backlog) == 0:
                break
            await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def run_alone(args: argparse.Namespace) -> dict[str, Any]:
    from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
    from kkmp_testkit.processes import Platform
    from kkmp_testkit.rabbit import create_vhost, delete_vhost, ensure_broker, vhost_url
    from kkmp_testkit.tokens import TokenFactory

    vhost = f"bench-stock-{uuid.uuid4().hex[:8]}"
    create_vhost(vhost)
    ensure_postgres()
    database_url = await acreate_database("bench_stock_inventory")
    work = Path(tempfile.mkdtemp(prefix="kkmp-stock-reads-"))
    tokens = TokenFactory()
    extra_env = {"LOG_LEVEL": "WARNING", "JWKS_FILE": str(tokens.write_jwks(work / "jwks.json"))}
    amqp_url = vhost_url(ensure_broker(), vhost)
    plat = Platform(amqp_url, work, {"inventory": database_url}, extra_env=extra_env)
    results: dict[str, Any] = {}
    sink = await event_sink(amqp_url)
    try:
        await asyncio.to_thread(plat.start, ["inventory"])
        service = plat.services["inventory"]
        assert service.proc is not None
        pid = service.proc.pid
        url = service.url
        token = tokens.mint("admin", username="bench-admin", expires_in=6 * 3600)
        ids = await insert_cooperatives(database_url, args.cooperatives)
        await stock_cooperatives(url, token, ids)
        await asyncio.sleep(1)
        results["rss_mb_idle"] = rss_mb(pid)
        cpu0 = cpu_s(pid)
        reads = await measure(url, token, ids, args.connections, args.seconds)
        reads["server_cpu_share"] = round((cpu_s(pid) - cpu0) / (args.seconds + 1.0), 3)
        reads["server_cpu_us_per_request"] = round(
            (cpu_s(pid) - cpu0) / max(reads["requests"] * (1 + 1.0 / args.seconds), 1) * 1e6
        )
        results["stock_reads"] = reads
        results["rss_mb_after_reads"] = rss_mb(pid)
        if args.movements:
            results["ingest_movements_per_s"] = round(await ingest(url, token, ids, args.movements))
            # As in bench/run.py, the reads come after the events are out (the relay shares the process).
            await asyncio.sleep(2.5)  # the backlog gauge is refreshed every two seconds
            results["outbox_drain_s"] = round(await outbox_drained(url), 1)
            results["rss_mb_after_ingest"] = rss_mb(pid)
            results["stock_reads_after_ingest"] = await measure(
                url, token, ids, args.connections, args.seconds
            )
            results["rss_mb_after_ingest_and_reads"] = rss_mb(pid)
        print(json.dumps(results, indent=2), flush=True)
        if args.hold:
            print(
                json.dumps({"url": url, "pid": pid, "token": token, "coops": ",".join(ids)}),
                flush=True,
            )
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
    finally:
        await asyncio.to_thread(plat.stop)
        await sink.close()
        await adrop_database(database_url)
        delete_vhost(vhost)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="measure a running service instead of starting one")
    parser.add_argument("--token", help="bearer token (with --url)")
    parser.add_argument("--coops", help="comma-separated cooperative ids (with --url)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--cooperatives", type=int, default=60)
    parser.add_argument("--movements", type=int, default=20000, help="ingested after the reads (0: none)")
    parser.add_argument("--hold", action="store_true", help="keep the service running until Ctrl-C")
    args = parser.parse_args()
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    if args.url:
        if not (args.token and args.coops):
            parser.error("--url needs --token and --coops")
        result = run(measure(args.url, args.token, args.coops.split(","), args.connections, args.seconds))
        print(json.dumps(result, indent=2))
        return
    run(run_alone(args))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
