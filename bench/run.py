"""`make bench`: the platform's figures, each measured in one run beside its target.

Starts every service as its own process on PostgreSQL (throwaway databases) and a fresh vhost of the
real broker, then measures ingest throughput against the raw broker ceiling, alert latency under that
load, HTTP stock reads at 64 connections, memory, and (through the services' own bench modules)
detection and dashboards at national scale. Prints a table and writes bench/results.json.

Beside each figure it prints the run's CPU accounting (bench/cpu.py): the CPU milliseconds one
message, movement, stall or request cost in each process (services, broker node, PostgreSQL, the
load generator) and the cores busy, so a missed target shows where the time went and whether the
machine was saturated; and the HTTP floor (bench/http_floor.py): the same 64-connection load on a
bare ASGI app under uvicorn, which no route can beat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from alert_latency import Receiver, city_officer, ingest_and_alerts, make_cooperatives  # noqa: E402
from ceiling import broker_ceiling  # noqa: E402
from cluster_run import cluster_figures  # noqa: E402
from cpu import CpuMeter, rss_mb  # noqa: E402
from http_floor import floor as http_floor  # noqa: E402
from kkmp_testkit.processes import Platform  # noqa: E402
from stack import running_platform  # noqa: E402
from stock_reads import measure as stock_reads_measure  # noqa: E402

SERVICES = ("registry", "reporting", "inventory", "sourcing", "notifications")
TARGETS = {
    "ingest_movements_per_s": (">=", 1000),
    "ingest_ratio": (">=", 0.5),
    "alert_latency_p99_ms": ("<", 500),
    "alert_latency_inbox_p99_ms": ("<", 500),
    "alert_latency_webhook_p99_ms": ("<", 500),
    "detection_scan_s": ("<", 10),
    "dashboard_summary_p95_ms": ("<", 50),
    "dashboard_kecamatan_p95_ms": ("<", 50),
    "http_stock_p99_ms": ("<", 50),
    "cluster_consumer_resume_s": ("<", 10),
}
INGEST_MOVEMENTS = int(os.environ.get("BENCH_MOVEMENTS", "20000"))
STALLS = int(os.environ.get("BENCH_STALLS", "200"))


def machine() -> dict[str, Any]:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def service_pids(plat: Platform) -> dict[str, int]:
    return {n: s.proc.pid for n, s in plat.services.items() if s.proc}


async def consumed(client: httpx.AsyncClient, url: str, event_type_queue_prefix: str) -> float:
    """Events a service's consumers processed, from its Prometheus metrics."""
    text = (await client.get(f"{url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("kkmp_events_consumed_total{")
            and 'outcome="processed"' in line
            and f'queue="{event_type_queue_prefix}' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def platform_figures(results: dict[str, Any]) -> None:
    async with running_platform("bench", SERVICES) as (plat, amqp_url):
        results["rss_mb_idle"] = {n: rss_mb(s.proc.pid) for n, s in plat.services.items() if s.proc}
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=80)) as client:
            admin = {"Authorization": f"Bearer {await asyncio.to_thread(plat.admin_token)}"}
            coops = await make_cooperatives(client, plat, admin, 60)
            # stock.stalled.v1 reaches managers and officers in scope, not the admin: the inbox
            # measured is a whole-city officer's, read with the officer's own token.
            officer = await city_officer(client, plat, admin)
            meter = CpuMeter(service_pids(plat))
            meter.start()
            ceiling = await broker_ceiling(amqp_url, INGEST_MOVEMENTS, 700)
            results["broker_ceiling_msgs_per_s"] = round(ceiling)
            results["broker_ceiling_cpu"] = meter.stop(INGEST_MOVEMENTS)
            async with Receiver() as receiver:
                await client.post(
                    f"{plat.url('notifications')}/subscriptions",
                    headers=admin,
                    json={
                        "channel": "webhook",
                        "target": receiver.url,
                        "event_types": ["stock.stalled.v1"],
                    },
                )
                await ingest_and_alerts(
                    client,
                    plat,
                    admin,
                    officer,
                    coops,
                    receiver,
                    results,
                    amqp_url=amqp_url,
                    inventory_urls=[plat.url("inventory")],
                    processed=lambda: consumed(client, plat.url("reporting"), "reporting."),
                    pids=lambda: service_pids(plat),
                    movements=INGEST_MOVEMENTS,
                    stalls=STALLS,
                    ceiling_key="broker_ceiling_msgs_per_s",
                )
            meter = CpuMeter(service_pids(plat))
            meter.start()
            await stock_reads(client, plat, admin, coops, results)
            results["http_stock_cpu"] = meter.stop(max(1, results["http_stock_requests"]))
            floor = await http_floor(connections=64, seconds=10)
            results["http_floor_rps"] = floor["rps"]
            results["http_floor_p99_ms"] = floor["p99_ms"]
        results["rss_mb"] = {n: rss_mb(s.proc.pid) for n, s in plat.services.items() if s.proc}


async def stock_reads(
    client: httpx.AsyncClient,
    plat: Platform,
    admin: dict[str, str],
    coops: list[str],
    results: dict[str, Any],
) -> None:
    """64 keep-alive connections in a closed loop on GET /cooperatives/{id}/stock. The load generator
    is a bare asyncio HTTP/1.1 client (about 0.4 ms of CPU a request): 64 httpx clients cost 8 ms a
    request and were the bottleneck of the first measurement."""
    token = admin["Authorization"].removeprefix("Bearer ")
    figures = await stock_reads_measure(plat.url("inventory"), token, coops, connections=64, seconds=10)
    if set(figures["statuses"]) != {"200"}:
        raise RuntimeError(f"stock reads answered {figures['statuses']}")
    results["http_stock_rps"] = figures["rps"]
    # All requests of the run, warm-up included, as the CPU meter spans the whole run.
    results["http_stock_requests"] = figures["requests_all"]
    results["http_stock_p99_ms"] = figures["p99_ms"]
    results["http_stock_p50_ms"] = figures["p50_ms"]
    results["http_stock_client_cpu_share"] = figures["client_cpu_share"]


async def main(only: str | None) -> None:
    out = ROOT / "bench" / "results.json"
    results: dict[str, Any] = {"machine": machine(), "measured_at": datetime.now(UTC).isoformat()}
    if only is not None and out.exists():
        # One part measured again: the other part's figures stay as they were (and say when).
        previous = json.loads(out.read_text())

        def other_part(key: str) -> bool:
            return key.startswith("cluster_") != (only == "cluster")

        results = {**{k: v for k, v in previous.items() if other_part(k)}, **results}
        if only == "cluster" and "measured_at" in previous:
            results["measured_at"] = previous["measured_at"]  # when the single-node figures were measured
    if only in (None, "single"):
        await platform_figures(results)
        for module_name in ("inventory_bench", "reporting_bench"):
            try:
                module = __import__(module_name)
            except ImportError as exc:
                results[f"{module_name}_error"] = str(exc)
                continue
            await module.run(results)
    if only in (None, "cluster"):
        results["cluster_measured_at"] = datetime.now(UTC).isoformat()
        await cluster_figures(results)
    out.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    print_side_by_side(results)
    print(f"\nwritten: {out}")


# Single-node figure → the cluster run's figure of the same measurement.
SIDE_BY_SIDE = (
    (
        "broker ceiling msg/s (classic | quorum)",
        "broker_ceiling_msgs_per_s",
        "cluster_quorum_ceiling_msgs_per_s",
    ),
    ("ingest mov/s", "ingest_movements_per_s", "cluster_ingest_movements_per_s"),
    ("ingest ratio", "ingest_ratio", "cluster_ingest_ratio"),
    ("alert p50 ms", "alert_latency_p50_ms", "cluster_alert_latency_p50_ms"),
    ("alert p99 ms", "alert_latency_p99_ms", "cluster_alert_latency_p99_ms"),
    ("alert inbox p99 ms", "alert_latency_inbox_p99_ms", "cluster_alert_latency_inbox_p99_ms"),
    ("alert webhook p99 ms", "alert_latency_webhook_p99_ms", "cluster_alert_latency_webhook_p99_ms"),
    ("consumer resume after node kill s", None, "cluster_consumer_resume_s"),
)


def print_side_by_side(results: dict[str, Any]) -> None:
    """One node and one replica each | 3-node cluster and two replicas each, figure by figure."""
    if not any(k.startswith("cluster_") for k in results):
        return
    print(f"\n{'figure':<40} {'single node':>12} {'cluster x2':>12}")
    for label, single, cluster in SIDE_BY_SIDE:
        left = results.get(single, "-") if single else "-"
        right = results.get(cluster, "-")
        left, right = ("MISSED" if v is None else v for v in (left, right))
        print(f"{label:<40} {left!s:>12} {right!s:>12}")
    for key, unit in (("cluster_quorum_ceiling_cpu", "message"), ("cluster_ingest_cpu", "movement")):
        if key in results:
            cpu = results[key]
            print(
                f"{key:<40} {cpu['ms_per_unit_total']:>9} ms CPU per {unit}, "
                f"{cpu['cores_busy']} cores busy, machine {cpu['machine_cores_busy']}"
            )
    if "cluster_resume" in results:
        print(f"{'cluster_resume':<40} {json.dumps(results['cluster_resume'])}")


def print_table(results: dict[str, Any]) -> None:
    """A figure that could not be measured (None, or NaN) prints MISSED, whatever its target."""
    print(f"\nKKMP benchmark on {results['machine']['cores']} cores, {results['machine']['memory_gb']} GB")
    print(f"{'figure':<32} {'value':>12}  target")
    for key, value in results.items():
        if key in ("machine", "measured_at", "cluster_measured_at") or isinstance(value, dict):
            continue
        op, limit = TARGETS.get(key, ("", ""))
        verdict = ""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            print(f"{key:<32} {'MISSED':>12}  {f'{op} {limit}  MISSED' if op else 'MISSED'}")
            continue
        if op and isinstance(value, (int, float)):
            ok = value >= limit if op == ">=" else value < limit
            verdict = f"{op} {limit}  {'ok' if ok else 'MISSED'}"
        print(f"{key:<32} {value!s:>12}  {verdict}")
    for key, unit in (
        ("broker_ceiling_cpu", "message"),
        ("ingest_cpu", "movement"),
        ("alert_window_cpu", "stall"),
        ("http_stock_cpu", "request"),
    ):
        if key in results:
            cpu = results[key]
            parts = ", ".join(f"{name} {ms}" for name, ms in cpu["ms_per_unit"].items() if ms >= 0.005)
            print(
                f"{key:<32} {cpu['ms_per_unit_total']:>9} ms CPU per {unit}, "
                f"{cpu['cores_busy']} cores busy, machine {cpu['machine_cores_busy']} ({parts})"
            )
    for key in ("rss_mb_idle", "rss_mb"):
        if key in results:
            worst = max(results[key].values()) if results[key] else 0
            print(f"{key:<32} {json.dumps(results[key])}  (< 150 each: {'ok' if worst < 150 else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="make bench: the platform's figures beside their targets")
    parser.add_argument(
        "--only",
        choices=("single", "cluster"),
        help="measure one part (one node, or the 3-node cluster with two replicas each); the other part's "
        "figures are kept from bench/results.json",
    )
    asyncio.run(main(parser.parse_args().only))
