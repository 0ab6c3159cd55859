"""Alert latency: from a `stock.stalled.v1` on the exchange to a whole-city officer's inbox and to a webhook.

`make bench` (bench/run.py) measures it under its 20,000-movement ingest with the pieces here; run alone,
this module is the focused measurement of the same path:

    .venv/bin/python bench/alert_latency.py [--stalls 48] [--movements 10000] [--services ...]

starts registry, inventory and notifications as processes (`Platform`) on throwaway PostgreSQL
databases and a private vhost, makes cooperatives with stock received 20 days ago and never sold,
runs a detection (optionally while movements are ingested on other cooperatives) and prints p50/p99.

What is measured, per stalled event (the probe's arrival on the exchange is the start):

- `inbox`: the first time the officer's own inbox (`GET /me/notifications`, the officer's token)
  lists the notification. The inbox's `created_at` cannot serve: it is the event's time (when the
  stall was detected, before its publication), by design of the inbox. So the watcher polls the
  officer's unread count (`/me/notifications/summary`, one query) every INBOX_POLL_S and lists the
  inbox when it grows: an upper bound, within one poll and one request of the commit.
- `routed`: `delivered_at` of the officer's inbox `notification.delivered.v1` (the time notifications
  stamped when it routed the event, inside the transaction that writes the row): where the consumer
  side of the latency ends and the commit and delivery side begins.
- `webhook`: the arrival of the POST at a local receiver subscribed to `stock.stalled.v1`.

Every stall is accounted for: a channel that did not get all of them is reported with its count, and
a channel with none reports MISSED (None), never a silent NaN.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from kkmp_testkit.ports import free_port
from kkmp_testkit.processes import Platform

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu import CpuMeter
from figures import percentile_ms
from ingest_load import run_ingest
from stack import running_platform

HERE = Path(__file__).resolve().parent

STALLED = "stock.stalled.v1"
DELIVERED = "notification.delivered.v1"
STALL_ITEMS = ("gula", "telur", "tepung_terigu", "minyakita")
INBOX_POLL_S = 0.05


class Receiver:
    """The webhook receiver (bench/webhook_receiver.py) as a process of its own; `arrivals` holds
    the stamps of each stalled event's arrival as of the last `refresh`."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> Receiver:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "webhook_receiver:app",
            "--app-dir",
            str(HERE),
            "--lifespan",
            "off",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        )
        self.client = httpx.AsyncClient(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                await self.refresh()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.returncode is not None:
                    raise RuntimeError("the webhook receiver did not start") from None
                await asyncio.sleep(0.1)

    async def refresh(self) -> dict[str, float]:
        response = await self.client.get(f"http://127.0.0.1:{self.port}/arrivals")
        response.raise_for_status()
        self.arrivals = response.json()
        return self.arrivals

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.aclose()
        self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), timeout=10)


async def city_officer(client: httpx.AsyncClient, plat: Platform, admin: dict[str, str]) -> dict[str, str]:
    """A Dinkopdag officer with no kecamatan (the whole city), created through the registry as the
    admin; returns the officer's own auth headers once notifications knows them as a recipient.

    `stock.stalled.v1` reaches the cooperative's managers and the officers whose scope covers its
    kecamatan (built-in routing rules); an officer without kecamatan covers every one. The admin is
    in neither audience, which is why the admin's inbox had nothing to measure."""
    username = f"bench-officer-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    response = await client.post(
        f"{plat.url('registry')}/users",
        headers=admin,
        json={
            "username": username,
            "password": password,
            "role": "officer",
            "kecamatan_codes": [],
            "full_name": "Petugas Dinkopdag (bench)",
        },
    )
    response.raise_for_status()
    login = await client.post(
        f"{plat.url('registry')}/auth/token", data={"username": username, "password": password}
    )
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    # The first read makes notifications learn the officer from the token if `user.created.v1` is
    # still on its way; the event then confirms the same scope.
    (await client.get(f"{plat.url('notifications')}/me/notifications", headers=headers)).raise_for_status()
    return headers


@dataclass
class InboxWatcher:
    """Polls one user's inbox and keeps the first time each stalled event's notification was listed."""

    client: httpx.AsyncClient
    url: str  # the notifications service
    headers: dict[str, str]
    interval_s: float = INBOX_POLL_S
    seen: dict[str, float] = field(default_factory=dict)
    polls: int = 0

    async def run(self) -> None:
        known: int | None = None
        while True:
            try:
                summary = await self.client.get(f"{self.url}/me/notifications/summary", headers=self.headers)
                self.polls += 1
                total = int(summary.json()["total"])
                if known is None:
                    await self.list(time.time(), None)
                elif total > known:
                    await self.list(time.time(), total - known)
                known = total
            except httpx.HTTPError:
                pass
            await asyncio.sleep(self.interval_s)

    async def list(self, at: float, grown: int | None) -> None:
        """Stamp the notifications not seen before with `at`. After a growth of `grown`, only the
        newest few are listed (stalls are routed in the order they happened, which is the inbox's
        order), so the watcher does not make notifications render the whole inbox every poll; when
        they do not hold all the new ones, the whole inbox is listed."""
        if grown is not None:
            new, _ = await self._page(at, min(500, grown + 20), 0)
            if new >= grown:
                return
        offset = 0
        while True:
            _, full = await self._page(at, 500, offset)
            if not full:
                return
            offset += 500

    async def _page(self, at: float, limit: int, offset: int) -> tuple[int, bool]:
        """How many ids this page had that were not seen before, and whether the page was full."""
        page = await self.client.get(
            f"{self.url}/me/notifications",
            headers=self.headers,
            params={"event_type": STALLED, "limit": limit, "offset": offset},
        )
        page.raise_for_status()
        items = page.json()
        new = [item["event_id"] for item in items if item["event_id"] not in self.seen]
        for event_id in new:
            self.seen[event_id] = at
        return len(new), len(items) == limit


@dataclass
class AlertProbe:
    """Watches the exchange: when each stalled event was published, and when notifications routed it
    to the officer's inbox (`notification.delivered.v1`, channel inbox)."""

    amqp_url: str
    officer_id: str | None = None
    published: dict[str, float] = field(default_factory=dict)
    routed: dict[str, float] = field(default_factory=dict)

    async def __aenter__(self) -> AlertProbe:
        self.connection = await aio_pika.connect(self.amqp_url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange("kkmp.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, STALLED)
        await queue.bind(exchange, DELIVERED)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        at = time.time()
        event = json.loads(message.body)
        if event["type"] == STALLED:
            self.published.setdefault(event["id"], at)
            return
        data = event["data"]
        if (
            data.get("channel") == "inbox"
            and data.get("source_event_type") == STALLED
            and data.get("recipient") == self.officer_id
        ):
            moment = datetime.fromisoformat(data["delivered_at"]).timestamp()
            self.routed.setdefault(data["source_event_id"], moment)


def officer_id_of(headers: dict[str, str]) -> str:
    """The `sub` of a bearer token (read, not verified: the bench made the token itself)."""
    import base64

    payload = headers["Authorization"].split(" ", 1)[1].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


async def wait_all(
    probe: AlertProbe, watcher: InboxWatcher, receiver: Receiver, expected: int, timeout: float
) -> None:
    """Until every announced stall reached both channels and was seen routed (or the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = set(probe.published)
        ends = (watcher.seen, await receiver.refresh(), probe.routed)
        if len(ids) >= expected and all(ids <= set(end) for end in ends):
            return
        await asyncio.sleep(0.1)


def alert_figures(
    probe: AlertProbe, watcher: InboxWatcher, receiver: Receiver, expected: int
) -> dict[str, Any]:
    """p50/p99 per channel (ms from publication) and how many of the announced stalls each got."""
    published = probe.published

    def latencies(ends: dict[str, float]) -> list[float]:
        return [(ends[i] - t) * 1000 for i, t in published.items() if i in ends]

    out: dict[str, Any] = {"stalls_expected": expected, "stalls_announced": len(published)}
    channels = {"inbox": watcher.seen, "webhook": receiver.arrivals, "routed": probe.routed}
    lists = {name: latencies(ends) for name, ends in channels.items()}
    for name, values in lists.items():
        out[f"alert_{name}_matched"] = f"{len(values)}/{len(published)}"
        out[f"alert_latency_{name}_p50_ms"] = percentile_ms(values, 50, 1)
        out[f"alert_latency_{name}_p99_ms"] = percentile_ms(values, 99, 1)
    complete = len(published) >= expected and all(
        len(lists[name]) == len(published) for name in ("inbox", "webhook")
    )
    both = lists["inbox"] + lists["webhook"]
    # The target's figure holds only if every stall reached both channels; otherwise it is MISSED.
    out["alert_latency_p50_ms"] = percentile_ms(both, 50, 1) if complete else None
    out["alert_latency_p99_ms"] = percentile_ms(both, 99, 1) if complete else None
    return out


async def ingest_and_alerts(
    client: httpx.AsyncClient,
    plat: Any,
    admin: dict[str, str],
    officer: dict[str, str],
    coops: list[str],
    receiver: Receiver,
    results: dict[str, Any],
    *,
    amqp_url: str,
    inventory_urls: list[str],
    processed: Callable[[], Awaitable[float]],
    pids: Callable[[], dict[str, int]],
    movements: int,
    stalls: int,
    ceiling_key: str,
    prefix: str = "",
) -> None:
    """`make bench`'s ingest with the alert latency under it, for the single-node run and the cluster
    run (``plat`` a Platform or a ReplicatedPlatform). ``movements`` in 1,000-movement batches, dealt
    out over ``inventory_urls``, a detection a second in; the ingest lasts until reporting has
    ``processed`` them all. The figures go into ``results`` under ``prefix`` as they are measured
    (a later failure keeps them): ingest CPU, movements/s and its ratio to ``results[ceiling_key]``,
    the alert figures and the CPU of the alert window."""
    # Four items stall on each of these cooperatives; the ingest goes to the others.
    stall_coops = coops[: min(len(coops), -(-stalls // len(STALL_ITEMS)))]
    expected = await seed_stalls(client, plat, admin, stall_coops, stalls)
    before = await processed()
    load = coops[len(stall_coops) :]
    spec = [(load[b % len(load)], 1000) for b in range(movements // 1000)]
    token = admin["Authorization"].removeprefix("Bearer ")
    watcher = InboxWatcher(client, plat.url("notifications"), officer)
    async with AlertProbe(amqp_url, officer_id_of(officer)) as probe:
        watching = asyncio.create_task(watcher.run())
        try:
            meter = CpuMeter(pids())
            meter.start()
            started = time.perf_counter()
            # Posted from a process of its own per inventory address, so their CPU does not delay this
            # process's clocks.
            ingest = [
                asyncio.create_task(run_ingest(url, token, spec[turn :: len(inventory_urls)]))
                for turn, url in enumerate(inventory_urls)
            ]
            try:
                await asyncio.sleep(1.0)  # detection under load
                alert_meter = CpuMeter(pids(), with_children=False)
                alert_meter.start()
                detection = await client.post(
                    f"{plat.url('inventory')}/detections/run", headers=admin, json={}
                )
                detection.raise_for_status()
            finally:
                await asyncio.gather(*ingest)
            target = before + movements
            deadline = time.monotonic() + 600
            while await processed() < target and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
            results[f"{prefix}ingest_cpu"] = meter.stop(movements)
            results[f"{prefix}ingest_movements_per_s"] = round(movements / elapsed)
            results[f"{prefix}ingest_ratio"] = round(
                results[f"{prefix}ingest_movements_per_s"] / results[ceiling_key], 3
            )

            # Alert latency: from the stalled event's publication (seen on the exchange) to the
            # whole-city officer's inbox and to the webhook; every announced stall is matched in each
            # channel or counted as missing.
            await wait_all(probe, watcher, receiver, expected, timeout=60)
            figures = alert_figures(probe, watcher, receiver, expected)
            results.update({f"{prefix}{k}": v for k, v in figures.items()})
            # From the detection until the last stall was seen everywhere: the ingest's share too.
            results[f"{prefix}alert_window_cpu"] = alert_meter.stop(expected)
        finally:
            watching.cancel()


# --- the focused measurement -----------------------------------------------------------------------


async def _focused(
    stalls: int, movements: int, services: tuple[str, ...], env: dict[str, str], dump: Path | None
) -> dict[str, Any]:
    async with running_platform("alerts", services, env) as (plat, amqp_url):
        async with httpx.AsyncClient(timeout=120) as client, Receiver() as receiver:
            admin = {"Authorization": f"Bearer {await asyncio.to_thread(plat.admin_token)}"}
            stall_coops = (stalls + len(STALL_ITEMS) - 1) // len(STALL_ITEMS)
            load_coops = 8 if movements else 0
            coops = await make_cooperatives(client, plat, admin, stall_coops + load_coops)
            officer = await city_officer(client, plat, admin)
            (
                await client.post(
                    f"{plat.url('notifications')}/subscriptions",
                    headers=admin,
                    json={"channel": "webhook", "target": receiver.url, "event_types": [STALLED]},
                )
            ).raise_for_status()
            await _sink(amqp_url)
            announced = await seed_stalls(client, plat, admin, coops[:stall_coops], stalls)
            watcher = InboxWatcher(client, plat.url("notifications"), officer)
            async with AlertProbe(amqp_url, officer_id_of(officer)) as probe:
                watching = asyncio.create_task(watcher.run())
                ingest = asyncio.create_task(_ingest(client, plat, admin, coops[stall_coops:], movements))
                await asyncio.sleep(1.0 if movements else 0)  # the detection runs under the load
                meter = CpuMeter(
                    {n: srv.proc.pid for n, srv in plat.services.items() if srv.proc}, with_children=False
                )
                meter.start()
                (
                    await client.post(f"{plat.url('inventory')}/detections/run", headers=admin, json={})
                ).raise_for_status()
                await ingest
                await wait_all(probe, watcher, receiver, announced, timeout=60)
                cpu = meter.stop(announced)
                watching.cancel()
                figures = alert_figures(probe, watcher, receiver, announced)
                # What each process spent per stall, from the detection until every stall was seen
                # in both channels (with the ingest's share when there is a load).
                figures["cpu_ms_per_stall"] = cpu["ms_per_unit"]
                figures["cpu_cores_busy"] = cpu["cores_busy"]
                figures["machine_cores_busy"] = cpu["machine_cores_busy"]
                if dump is not None:
                    timeline = {
                        "published": probe.published,
                        "routed": probe.routed,
                        "inbox": watcher.seen,
                        "webhook": receiver.arrivals,
                    }
                    await asyncio.to_thread(dump.write_text, json.dumps(timeline))
                figures["inbox_polls"] = watcher.polls
                figures.update(await notifications_metrics(client, plat.url("notifications")))
    return figures


async def seed_stalls(
    client: httpx.AsyncClient, plat: Platform, admin: dict[str, str], coops: list[str], stalls: int
) -> int:
    """Stock that the next detection finds stalled: a receipt 40 days ago, never sold, of each of
    STALL_ITEMS (their stall thresholds are 7 to 30 days) on these cooperatives in turn, `stalls`
    items in all; returns how many, the stalls the detection will announce."""
    at = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    seeded = 0
    for i, coop in enumerate(coops):
        items = STALL_ITEMS[: max(0, min(len(STALL_ITEMS), stalls - i * len(STALL_ITEMS)))]
        if not items:
            break
        receipts = [
            {
                "commodity": c,
                "kind": "receipt",
                "quantity": "40",
                "unit_price": 10000,
                "occurred_at": at,
            }
            for c in items
        ]
        (
            await client.post(
                f"{plat.url('inventory')}/cooperatives/{coop}/movements/batch",
                headers=admin,
                json={"movements": receipts},
            )
        ).raise_for_status()
        seeded += len(items)
    return seeded


async def make_cooperatives(
    client: httpx.AsyncClient, plat: Platform, admin: dict[str, str], n: int
) -> list[str]:
    kelurahan = (await client.get(f"{plat.url('registry')}/regions/kelurahan")).json()[:n]
    ids = []
    for kel in kelurahan:
        response = await client.post(
            f"{plat.url('registry')}/cooperatives",
            headers=admin,
            json={"name": f"KKMP {kel['name']}", "kelurahan_code": kel["code"], "formation": "new"},
        )
        response.raise_for_status()
        ids.append(response.json()["id"])
    # Inventory learns cooperatives from registry events: wait until it knows the last one.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = await client.get(f"{plat.url('inventory')}/cooperatives/{ids[-1]}/stock", headers=admin)
        if r.status_code == 200:
            return ids
        await asyncio.sleep(0.2)
    raise RuntimeError("inventory never learned the cooperatives")


async def _sink(amqp_url: str) -> None:
    """Without reporting, nothing consumes `stock.moved.v1`: a queue that keeps only the newest
    message makes the relay's mandatory publishes routable without anyone paying to consume them."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange("kkmp.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            "alerts-bench.sink", durable=False, arguments={"x-max-length": 1, "x-overflow": "drop-head"}
        )
        await queue.bind(exchange, "stock.moved.v1")


async def _ingest(
    client: httpx.AsyncClient, plat: Platform, admin: dict[str, str], coops: list[str], movements: int
) -> None:
    if not movements or not coops:
        return
    per_batch = 1000
    sizes = [min(per_batch, movements - s) for s in range(0, movements, per_batch)]
    spec = [(coops[i % len(coops)], n) for i, n in enumerate(sizes)]
    await run_ingest(plat.url("inventory"), admin["Authorization"].removeprefix("Bearer "), spec)


async def notifications_metrics(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """What notifications itself counted: events handled on the alerts queue (and the mean time per
    event), delivery attempts by outcome (a retry or a failure shows up here), and the events it
    published."""
    text = (await client.get(f"{url}/metrics")).text
    out: dict[str, Any] = {}
    handle: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("kkmp_events_consumed_total{") and 'queue="notifications.alerts"' in name:
            outcome = name.split('outcome="', 1)[1].split('"', 1)[0]
            out[f"notif_alerts_{outcome}"] = int(float(value))
        elif name.startswith("kkmp_event_handle_seconds_") and 'queue="notifications.alerts"' in name:
            handle[name.split("{", 1)[0].rsplit("_", 1)[1]] = float(value)
        elif name.startswith("kkmp_outbox_published_total{"):
            # Events notifications itself published (notification.delivered/failed, one per delivery).
            out["notif_events_published"] = int(float(value))
        elif name.startswith("kkmp_notification_delivery_attempts_total{"):
            outcome = name.split('outcome="', 1)[1].split('"', 1)[0]
            out[f"notif_attempts_{outcome}"] = int(float(value))
    if handle.get("count"):
        out["notif_alerts_handle_mean_ms"] = round(handle["sum"] / handle["count"] * 1000, 1)
    return out


def print_figures(figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        shown = "MISSED" if value is None else value
        print(f"{key:<34} {shown!s:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stalls", type=int, default=48)
    parser.add_argument("--movements", type=int, default=10000, help="ingest load during detection")
    parser.add_argument(
        "--services",
        default="registry,inventory,notifications",
        help="comma-separated; add reporting,sourcing for the whole platform's load",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment of the services"
    )
    parser.add_argument("--dump", type=Path, help="write each stall's times (epoch s) to this JSON file")
    args = parser.parse_args()
    services = tuple(s for s in args.services.split(",") if s)
    env = dict(pair.split("=", 1) for pair in args.env)
    figures = asyncio.run(_focused(args.stalls, args.movements, services, env, args.dump))
    print_figures(figures)
    if any(v is None for k, v in figures.items() if k.startswith("alert_latency")):
        sys.exit(1)


if __name__ == "__main__":
    main()
