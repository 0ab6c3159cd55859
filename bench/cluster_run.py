"""The cluster run of `make bench`: the platform as two replicas of every service on a 3-node RabbitMQ
cluster (kkmp_testkit.replicas, the stack of the fault tier's proof), measured as the single-node run is:

- the raw ceiling of a quorum queue on this cluster (persistent, confirmed, acked; bench/ceiling.py),
- ingest movements/s through the API, the batches spread over both inventory replicas, until both
  reporting replicas together processed them all, and its ratio to that ceiling,
- alert latency under that ingest (bench/alert_latency.py: exchange → a whole-city officer's inbox and a
  webhook), p50/p99,
- the consumer resume time after SIGKILLing one node: for each replica connected to it, from the kill
  to the first event it consumed on its new connection (kkmp_testkit.replicas.ResumeWatch), while
  stalled events and a delivery, already published, are published again every 50 ms to keep every
  consuming queue fed. The node is then restarted and its rejoin time recorded.

Figures go into the results under `cluster_*` keys.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from alert_latency import Receiver, city_officer, ingest_and_alerts, make_cooperatives
from ceiling import broker_ceiling
from cpu import CpuMeter
from kkmp_shared import clock
from kkmp_shared.events.contracts import OrderDelivered
from kkmp_shared.events.envelope import new_event
from kkmp_testkit.replicas import ReplicatedPlatform, ResumeWatch, keep_fed
from sqlalchemy.engine import make_url

MOVEMENTS = int(os.environ.get("BENCH_CLUSTER_MOVEMENTS", os.environ.get("BENCH_MOVEMENTS", "20000")))
STALLS = int(os.environ.get("BENCH_STALLS", "200"))
KILLED_NODE = 1  # kkmp_testkit.replicas.PLACEMENT: one replica of every consumer connects to it first


def _pids(plat: ReplicatedPlatform) -> dict[str, int]:
    return {
        f"{s}-{r}": p.proc.pid
        for s, processes in plat.processes.items()
        for r, p in enumerate(processes)
        if p.proc is not None
    }


async def _processed(client: httpx.AsyncClient, plat: ReplicatedPlatform, service: str) -> float:
    """Events the service's replicas processed (both together)."""
    total = 0.0
    for replica in range(plat.replicas):
        counts = await plat.counts(service, replica, client)
        total += sum(v for (queue, outcome), v in counts.items() if outcome == "processed")
    return total


async def cluster_figures(results: dict[str, Any]) -> None:
    work = Path(tempfile.mkdtemp(prefix="kkmp-bench-cluster-"))
    plat = ReplicatedPlatform(work, name="kkmpbench")
    try:
        await asyncio.to_thread(plat.start)
        results["cluster_start_s"] = round(plat.started_s["cluster"], 1)
        results["cluster_replicas_start_s"] = round(plat.started_s["services"], 1)
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=80)) as client:
            admin = {"Authorization": f"Bearer {await asyncio.to_thread(plat.admin_token)}"}
            coops = await make_cooperatives(client, plat, admin, 60)
            officer = await city_officer(client, plat, admin)
            meter = CpuMeter(_pids(plat))
            meter.start()
            ceiling = await broker_ceiling(plat.cluster.urls[0], MOVEMENTS, 700, quorum=True)
            results["cluster_quorum_ceiling_msgs_per_s"] = round(ceiling)
            results["cluster_quorum_ceiling_cpu"] = meter.stop(MOVEMENTS)
            async with Receiver() as receiver:
                response = await client.post(
                    f"{plat.url('notifications')}/subscriptions",
                    headers=admin,
                    json={"channel": "webhook", "target": receiver.url, "event_types": ["stock.stalled.v1"]},
                )
                response.raise_for_status()
                await ingest_and_alerts(
                    client,
                    plat,
                    admin,
                    officer,
                    coops,
                    receiver,
                    results,
                    # Half the batches through each inventory replica, each from a load process of its own.
                    amqp_url=plat.cluster.urls[0],
                    inventory_urls=plat.urls("inventory"),
                    processed=lambda: _processed(client, plat, "reporting"),
                    pids=lambda: _pids(plat),
                    movements=MOVEMENTS,
                    stalls=STALLS,
                    ceiling_key="cluster_quorum_ceiling_msgs_per_s",
                    prefix="cluster_",
                )
            await _resume_after_node_kill(client, plat, admin, coops[-1], results)
    except Exception as exc:
        # The figures measured so far are kept and printed; the failure is recorded beside them.
        results["cluster_error"] = f"{type(exc).__name__}: {exc}"
        print(plat.logs(10))
    finally:
        await asyncio.to_thread(plat.cleanup)


async def _connect(dsn: str, timeout: float = 120.0) -> asyncpg.Connection:
    """A connection, waiting for a free slot: the machine's PostgreSQL is shared with other runs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=10)
        except asyncpg.exceptions.TooManyConnectionsError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def _resume_after_node_kill(
    client: httpx.AsyncClient,
    plat: ReplicatedPlatform,
    admin: dict[str, str],
    coop: str,
    results: dict[str, Any],
) -> None:
    survivors = [url for index, url in enumerate(plat.cluster.urls) if index != KILLED_NODE]
    # What keeps every consuming queue fed: stalled events (sourcing.stock, notifications.alerts,
    # reporting.stock) and one delivery (inventory.orders), published once already.
    dsn = make_url(plat.databases["inventory"]).set(drivername="postgresql").render_as_string(False)
    connection = await _connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT event_id, event_type, body FROM outbox WHERE published_at IS NOT NULL"
            " AND event_type = 'stock.stalled.v1' LIMIT 50"
        )
    finally:
        await connection.close()
    messages = [(r["body"].encode(), r["event_type"], r["event_id"]) for r in rows]
    info = (await client.get(f"{plat.url('registry')}/cooperatives/{coop}", headers=admin)).json()
    delivery = OrderDelivered(
        cooperative_id=coop,
        kelurahan_code=info["kelurahan_code"],
        kecamatan_code=info["kecamatan_code"],
        order_id="bench-order",
        delivery_id="bench-delivery",
        supplier_id="bench-supplier",
        commodity="garam",
        quantity=Decimal(1),
        unit_price=7000,
        delivered_at=clock.now(),
    )
    event = new_event(delivery, source="/sourcing", subject=coop)
    delivered = (
        orjson.dumps(event.model_dump(mode="json", exclude_none=True)),
        OrderDelivered.event_type,
        event.id,
    )
    # The delivery every other message: inventory.orders gets as steady a flow as the stock queues (with
    # it once in 51, inventory's resume was bounded by the feed, not by the failover).
    messages = [m for stalled in messages for m in (delivered, stalled)] or [delivered]

    watch = ResumeWatch(plat, KILLED_NODE)
    stop = asyncio.Event()
    feeding = asyncio.create_task(keep_fed(stop, survivors, messages))
    await asyncio.sleep(1.0)  # the flow is on before the kill
    await asyncio.to_thread(watch.kill)
    figures = await watch.wait(timeout=60)
    stop.set()
    results["cluster_resume_fed_messages"] = await feeding
    results["cluster_consumer_resume_s"] = figures["resume_max_s"]
    results["cluster_resume"] = figures
    results["cluster_node_rejoin_s"] = round(await asyncio.to_thread(plat.cluster.restart, KILLED_NODE), 1)
