"""Crashes while the city's movements flow: the broker SIGKILLed and restarted (at least three times, at
random moments), and consumer processes SIGKILLed mid-stream and restarted.

Afterwards every read model equals the ledger the test sent: inventory's movements and stock on hand,
reporting's stock, sales (count, quantity, value) and price violations, sourcing's stalled items and
proposals, notifications' inboxes. Nothing lost, nothing applied twice. Each test also shows that
duplicate deliveries did reach every consumer (counted by `kkmp_events_consumed_total{outcome=
"duplicates"}`): some come from the crashes themselves, and a relay's publish-again-after-a-crash is
replayed on purpose (events already published, sent again under their own ids), so a broken inbox
would fail the comparison on every run, not only on the runs where a crash happened to land between
a commit and an ack.

The random moments come from `KKMP_FAULT_SEED` (printed; set it to replay a failing run).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from kkmp_shared.testing.wait import eventually

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

SEED = int(os.environ.get("KKMP_FAULT_SEED", random.randrange(1_000_000)))
# Queues that must have seen duplicates: one per consuming service.
DUPLICATE_QUEUES = {
    "inventory": "inventory.orders",
    "reporting": "reporting.stock",
    "sourcing": "sourcing.stock",
    "notifications": "notifications.alerts",
}
ALERTS = ["stock.stalled.v1", "stock.low.v1", "stock.recovered.v1", "price.ceiling_exceeded.v1"]


@pytest.fixture(scope="module")
def stack(kit: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with kit.stack_up(tmp_path_factory.mktemp("broker-crash"), name="kkmpcrash") as running:
        yield running


async def consumed_stock_events(stack: Any) -> int:
    """How many inventory events reporting has taken in (its inbox on the stock queue)."""
    return int(
        await stack.fetchval("reporting", "SELECT count(*) FROM inbox WHERE consumer = 'reporting.stock'")
    )


async def detect_until(stop: asyncio.Event, client: httpx.AsyncClient, url: str, admin: dict[str, str]) -> int:
    """Run detection every few seconds while the flow lasts (episodes start while the broker is down)."""
    runs = 0
    while not stop.is_set():
        response = await client.post(f"{url}/detections/run", headers=admin, json={})
        assert response.status_code == 200, response.text
        runs += 1
        try:
            await asyncio.wait_for(stop.wait(), timeout=4)
        except TimeoutError:
            pass
    return runs


async def inject_duplicates(stack: Any, kit: Any, cohort: Any, publisher: Any, seed: int) -> Counter[str]:
    """Publish again events that were already published: inventory's (as its relay would after dying
    between publishing and marking sent) and this test's deliveries."""
    counts: Counter[str] = Counter(
        await kit.republish_from_outbox(
            stack, publisher, "inventory", ["stock.moved.v1", *ALERTS], per_type=60, seed=seed
        )
    )
    rng = random.Random(seed)
    sent = [d for deliveries in cohort.deliveries.values() for d in deliveries]
    for body, event_id in rng.sample(sent, min(20, len(sent))):
        await publisher.publish(body, "order.delivered.v1", event_id)
        counts["order.delivered.v1"] += 1
    return counts


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    await eventually(condition, timeout=timeout, interval=0.25)


@pytest.mark.timeout(1200)
async def test_broker_sigkilled_three_times_while_10000_movements_flow(stack: Any, kit: Any) -> None:
    print(f"KKMP_FAULT_SEED={SEED}")
    rng = random.Random(SEED)
    town = kit.Town(stack)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await town.admin_headers(client)
        cohort = await kit.build_cohort(
            stack, town, client, {"35.78.09": 5, "35.78.26": 5}, movements_per_coop=1000, seed=SEED
        )
        total = cohort.movement_count
        assert total == 10_000
        publisher = kit.ResilientPublisher(stack.rabbit.url)
        stop_detection = asyncio.Event()
        posting = asyncio.create_task(kit.post_ledgers(stack, cohort, client))
        delivering = asyncio.create_task(kit.send_deliveries(cohort, publisher, per_coop=20))
        detecting = asyncio.create_task(
            detect_until(stop_detection, client, stack.url("inventory"), admin)
        )
        # Kill when reporting has taken in a random share of the flow: the first lands while the API
        # is still taking batches, the others while relays and consumers work through the backlog.
        moments = sorted(rng.uniform(low, high) for low, high in ((0.03, 0.2), (0.3, 0.55), (0.6, 0.85)))
        injected: Counter[str] = Counter()
        outages: list[dict[str, Any]] = []
        for number, share in enumerate(moments):

            async def reached(share: float = share) -> bool:
                return await consumed_stock_events(stack) >= share * total

            await wait_for(reached, timeout=600)
            await asyncio.sleep(rng.uniform(0, 1.5))
            at = await consumed_stock_events(stack)
            await asyncio.to_thread(stack.rabbit.kill)
            down_since = time.monotonic()

            # While the broker is down: readiness says so, and the API still takes changes.
            async def not_ready() -> bool:
                response = await stack.ready("inventory")
                return response.status_code == 503 and response.json()["checks"]["broker"] != "ok"

            await wait_for(not_ready, timeout=30)
            answered = await client.get(f"{stack.url('inventory')}/commodities", headers=admin)
            assert answered.status_code == 200
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            await asyncio.to_thread(stack.rabbit.start)
            outages.append(
                {"kill": number + 1, "at_consumed": at, "posted_batches": sum(cohort.posted.values()),
                 "down_s": round(time.monotonic() - down_since, 1)}
            )
            await stack.wait_ready(timeout=90)
            injected += await inject_duplicates(stack, kit, cohort, publisher, SEED + number)

        await posting
        await delivering
        stop_detection.set()
        runs = await detecting
        # One more scan once every ledger is in: each cooperative's kedelai is stalled exactly once.
        response = await client.post(f"{stack.url('inventory')}/detections/run", headers=admin, json={})
        assert response.status_code == 200, response.text
        await wait_for(lambda: kit.settled(stack), timeout=600)
        # The last scan's stalled events were announced after the last injection: replay them too.
        injected += await inject_duplicates(stack, kit, cohort, publisher, SEED + 99)
        await publisher.close()
        await wait_for(lambda: kit.settled(stack), timeout=300)

        summary = await kit.compare_read_models(stack, cohort, client, admin)
        dead = {q: n for q, n in (await kit.broker_queues(stack)).items() if q.endswith(".dlq") and n}
        assert dead == {}, f"messages were dead-lettered: {dead}"
        duplicates = {
            service: await stack.outcome(service, "duplicates", queue)
            for service, queue in DUPLICATE_QUEUES.items()
        }
        print(
            f"broker kills: {outages}; detection runs: {runs}; injected again: {dict(injected)}; "
            f"duplicates absorbed: {duplicates}; publisher attempts {publisher.attempts} for "
            f"{publisher.confirmed} confirms; {summary}; {time.monotonic() - started:.0f}s"
        )
        assert len(outages) >= 3
        for service, count in duplicates.items():
            assert count > 0, f"{service} saw no duplicate delivery: the test could not catch a broken inbox"
        natural = duplicates["reporting"] - injected["stock.moved.v1"] - sum(injected[t] for t in ALERTS)
        print(f"duplicates on reporting.stock beyond the injected ones: {natural:.0f}")
