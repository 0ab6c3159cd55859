"""The broker's memory and disk alarms (publishers blocked), and poison messages with the operator's
dead-letter CLI (`kkmp dlq list|show|replay|purge`), on a RabbitMQ node of the module's own.

- Alarm: while the node blocks publishers, the APIs keep answering quickly, committed events wait in
  the outboxes (`kkmp_outbox_backlog`), and once the alarm clears they drain: reporting's figures
  equal the ledger.
- Poison: an undecodable message goes to the dead-letter queue at once; a message whose handler keeps
  failing (a delivery of a commodity inventory does not know) goes there after its retries (the
  delivery limit: 1 + RETRY_DELAYS_MS attempts); the messages around them keep flowing. The operator
  sees them with `kkmp dlq list` and `show`, fixes the cause (adds the commodity), `replay`s them
  (the fixed one is booked once, the undecodable one comes back) and `purge`s the rest.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kkmp_testkit.wait import eventually, holds

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

KKMP = Path(sys.executable).with_name("kkmp")
UNKNOWN = "kopi_luwak"


@pytest.fixture(scope="module")
async def stack(kit: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    with kit.stack_up(tmp_path_factory.mktemp("alarm-dlq"), name="kkmpdlq") as running:
        yield running
        await running.aclose()


@pytest.fixture(scope="module")
def town(kit: Any, stack: Any) -> Any:
    return kit.Town(stack)


async def backlog_metric(stack: Any, service: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{stack.url(service)}/metrics")).text
    match = re.search(rf'^kkmp_outbox_backlog\{{service="{service}"\}} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("resource", "kecamatan"), [("memory", "35.78.14"), ("disk", "35.78.15")])
async def test_resource_alarm_blocks_publishers_apis_answer_outbox_drains(
    stack: Any, kit: Any, town: Any, resource: str, kecamatan: str
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await town.admin_headers(client)
        cohort = await kit.build_cohort(
            stack, town, client, {kecamatan: 2}, movements_per_coop=200, seed=21, stalled=False
        )
        await asyncio.to_thread(stack.rabbit.set_alarm, resource, True)
        try:
            started = time.monotonic()
            await kit.post_ledgers(stack, cohort, client, batch_size=50, concurrency=1)
            posting_s = time.monotonic() - started
            batches = sum(cohort.posted.values())
            # The API answered every batch, each well within a client's patience.
            assert posting_s / batches < 2.0, f"{batches} batches took {posting_s:.1f}s under the alarm"
            coop = cohort.coops[0]
            response = await client.get(
                f"{stack.url('inventory')}/cooperatives/{coop.id}/stock", headers=admin
            )
            assert response.status_code == 200
            # The registry too: a cooperative and its manager are registered under the alarm.
            registered_at = time.monotonic()
            [newcomer] = await town.cooperatives(client, kecamatan, 1)
            assert time.monotonic() - registered_at < 10
            # Nothing could be confirmed: every event waits in inventory's outbox, and says so on /metrics.
            assert await stack.outbox_pending("inventory") >= cohort.movement_count

            async def backlog_seen() -> bool:
                return await backlog_metric(stack, "inventory") >= cohort.movement_count

            await eventually(backlog_seen, timeout=60, interval=0.5, message="kkmp_outbox_backlog")

            async def still_pending() -> bool:
                return await stack.outbox_pending("inventory") >= cohort.movement_count

            await holds(still_pending)  # nothing is published under the alarm
        finally:
            await asyncio.to_thread(stack.rabbit.set_alarm, resource, False)
        await eventually(lambda: kit.settled(stack), timeout=240, interval=0.5)
        print(f"{batches} batches in {posting_s:.1f}s under the {resource} alarm; then drained")
        # Its registration, held in the registry's outbox, reached every service once the alarm cleared.
        await town.known_everywhere([newcomer], [], timeout=30)
        await kit.compare_read_models(stack, cohort, client, admin)


def kkmp(stack: Any, *args: str) -> str:
    """Run the operator's CLI against this module's node."""
    env = {
        **os.environ,
        "AMQP_URL": stack.rabbit.url,
        "KKMP_RABBITMQ_NODE": stack.rabbit.node,
        "COLUMNS": "200",
    }
    done = subprocess.run([str(KKMP), *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kkmp {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def dlq_counts(listing: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"│?\s*(\S+\.dlq)\s*│\s*(\d+)", listing)}


@pytest.mark.timeout(300)
async def test_poison_messages_reach_the_dead_letter_queue_and_the_cli_replays_them(
    stack: Any, kit: Any, town: Any
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await town.admin_headers(client)
        cohort = await kit.build_cohort(
            stack, town, client, {"35.78.27": 2}, movements_per_coop=100, seed=22, stalled=False
        )
        # The poisoned delivery goes to a cooperative of its own, so that the cohort's figures stay exact.
        [coop] = await town.cooperatives(client, "35.78.27", 1)
        await town.known_everywhere([coop], [])
        publisher = kit.ResilientPublisher(stack.rabbit.url)
        failed_before = await stack.outcome("inventory", "failed", "inventory.orders")

        # Poison in the middle of good deliveries and movements.
        posting = asyncio.create_task(kit.post_ledgers(stack, cohort, client))
        await kit.send_deliveries(cohort, publisher, per_coop=5)
        await publisher.publish(b"\x00 this is not a CloudEvent {", "order.delivered.v1", "garbage-1")
        for number, headers in ((1, None), (2, {"x-kkmp-attempt": "garbled"})):
            # A delivery of a commodity inventory does not know: its handler fails every time. The
            # second also carries a retry counter that is not a number (headers are outside input).
            body, bad_id = kit.delivery_event(coop, number)
            body = body.replace(
                f'"commodity":"{kit.DELIVERED}"'.encode(), f'"commodity":"{UNKNOWN}"'.encode()
            )
            assert UNKNOWN.encode() in body
            await publisher.publish(body, "order.delivered.v1", bad_id, headers=headers)
        await kit.send_deliveries(cohort, publisher, per_coop=5)
        await posting
        await publisher.close()

        # The good ones flow around the poison (booked while it is still being retried); the poison
        # ends in inventory's dead-letter queue.
        good = sum(len(d) for d in cohort.deliveries.values())
        ids = [c.id for c in cohort.coops]
        first_seen: dict[str, float] = {}

        async def progress() -> bool:
            booked = await stack.fetchval(
                "inventory",
                "SELECT count(*) FROM movements WHERE commodity = $1 AND cooperative_id = ANY($2::text[])",
                kit.DELIVERED,
                ids,
            )
            if booked == good:
                first_seen.setdefault("good deliveries booked", time.monotonic())
            if (await stack.ready_messages()).get("inventory.orders.dlq") == 3:
                first_seen.setdefault("poison dead-lettered", time.monotonic())
            return len(first_seen) == 2

        await eventually(
            progress, timeout=60, interval=0.2, message="deliveries booked, poison dead-lettered"
        )
        assert first_seen["good deliveries booked"] < first_seen["poison dead-lettered"], first_seen
        await eventually(lambda: kit.settled(stack), timeout=180, interval=0.5)
        await kit.compare_read_models(stack, cohort, client, admin)
        # Four attempts each (the first and three retries) before the handler's failure was given up.
        assert await stack.outcome("inventory", "failed", "inventory.orders") - failed_before == 8
        assert await stack.outcome("inventory", "dead_lettered", "inventory.orders") >= 3
        queues = await kit.broker_queues(stack)
        # The undecodable message reached every queue bound to the type; the others took the delivery.
        assert queues["reporting.sourcing.dlq"] == 1 and queues["notifications.alerts.dlq"] == 1

        # The operator's view.
        listing = await asyncio.to_thread(kkmp, stack, "dlq", "list")
        counts = dlq_counts(listing)
        assert counts["inventory.orders.dlq"] == 3, listing
        assert counts["reporting.sourcing.dlq"] == 1 and counts["inventory.directory.dlq"] == 0, listing
        shown = await asyncio.to_thread(kkmp, stack, "dlq", "show", "inventory.orders.dlq")
        assert UNKNOWN in shown and "failed after 4 attempts" in shown, shown
        assert "not a CloudEvent" in shown, shown
        assert (await kit.broker_queues(stack))["inventory.orders.dlq"] == 3, "show must not consume"

        # The fix: the commodity exists now. Replay: the delivery is booked once; garbage comes back.
        response = await client.post(
            f"{stack.url('inventory')}/commodities",
            headers=admin,
            json={"code": UNKNOWN, "name": "Kopi luwak", "unit": "kg"},
        )
        assert response.status_code == 201, response.text
        replayed = await asyncio.to_thread(kkmp, stack, "dlq", "replay", "inventory.orders.dlq")
        assert "Replayed 3 message(s)" in replayed, replayed

        async def booked() -> list[Any]:
            rows = await kit.get_all(
                client, f"{stack.url('inventory')}/cooperatives/{coop.id}/movements", admin, commodity=UNKNOWN
            )
            return rows

        async def both_booked() -> list[Any]:
            rows = await booked()
            return rows if len(rows) == 2 else []

        receipts = await eventually(
            both_booked, timeout=30, interval=0.5, message="replayed deliveries booked"
        )
        assert {r["kind"] for r in receipts} == {"receipt"}
        assert sorted(r["reference"] for r in receipts) == [f"delivery-{coop.id[:8]}-{n}" for n in (1, 2)]
        await eventually(
            _count_is(kit, stack, "inventory.orders.dlq", 1),
            timeout=30,
            message="the undecodable one is back",
        )
        for queue in ("inventory.orders.dlq", "reporting.sourcing.dlq", "notifications.alerts.dlq"):
            await asyncio.to_thread(kkmp, stack, "dlq", "purge", queue, "--yes")
        after = dlq_counts(await asyncio.to_thread(kkmp, stack, "dlq", "list"))
        assert after and not any(after.values()), after

        async def booked_once() -> bool:
            return len(await booked()) == 2

        await eventually(booked_once, timeout=10)
        await holds(booked_once)  # each replayed delivery was booked once, and only once


def _count_is(kit: Any, stack: Any, queue: str, count: int) -> Any:
    async def check() -> bool:
        return (await kit.broker_queues(stack)).get(queue) == count

    return check
