"""A real 3-node RabbitMQ cluster on this machine: quorum queues survive losing a node, and a service
given the nodes' addresses fails over to another node and resumes publishing and consuming.

One cluster for the module (it takes about 25 s to start on 2 cores); each test leaves all three
nodes running.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest
from kkmp_testkit.harness import running_app, wait_ready
from kkmp_testkit.rabbit import RabbitCluster, vhost_url
from kkmp_testkit.wait import eventually

pytestmark = [pytest.mark.fault, pytest.mark.cluster]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    with RabbitCluster() as started:
        print(f"\n3-node RabbitMQ cluster started in {started.last_start_seconds:.1f}s")
        yield started


@pytest.fixture
def vhost_urls(cluster: RabbitCluster) -> list[str]:
    """A fresh vhost (cluster-wide), as one URL per node."""
    name = f"cluster-{uuid.uuid4().hex[:10]}"
    cluster.nodes[0].create_vhost(name)
    return [vhost_url(url, name) for url in cluster.urls]


def queue_members(cluster: RabbitCluster, url: str, queue: str, via: int) -> dict[str, Any]:
    vhost = unquote(urlsplit(url).path[1:])
    out = cluster.nodes[via].ctl(
        "list_queues", "-p", vhost, "-q", "--formatter", "json", "name", "type", "leader", "members", "online"
    )
    return next(q for q in json.loads(out) if q["name"] == queue)


def test_the_cluster_runs_three_nodes_joined_as_one(cluster: RabbitCluster) -> None:
    running = cluster.running_nodes()
    assert running == sorted(cluster.node_names)
    assert len(set(cluster.urls)) == 3


async def test_a_quorum_queue_keeps_accepting_and_delivering_when_its_leader_node_is_killed(
    cluster: RabbitCluster, vhost_urls: list[str]
) -> None:
    queue_name = "orders.quorum"
    sent: set[bytes] = set()
    # Refused (nacked) while the queue elects a new leader: a publisher tries again, as the relay
    # does. A refused message may still have been enqueued, so it may be received but need not be.
    refused: set[bytes] = set()

    async def publish(url: str, count: int, tag: str) -> None:
        connection = await aio_pika.connect(url, timeout=5)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            for i in range(count):
                attempt = 0
                while True:
                    body = f"{tag}-{i}-{attempt}".encode()
                    try:
                        await channel.default_exchange.publish(
                            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key=queue_name,
                            mandatory=True,
                            timeout=10,
                        )
                    except aio_pika.exceptions.DeliveryError:
                        refused.add(body)
                        attempt += 1
                        assert attempt < 200, "the queue never took the message again"
                        # On 3.10 a channel that got a nack goes on nacking: a new one, as the relay.
                        channel = await connection.channel(publisher_confirms=True)
                        await asyncio.sleep(0.05)
                        continue
                    sent.add(body)  # only once the broker confirmed it
                    break

    connection = await aio_pika.connect(vhost_urls[0])
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
    await publish(vhost_urls[0], 100, "before")
    info = queue_members(cluster, vhost_urls[0], queue_name, via=0)
    assert info["type"] == "quorum" and len(info["members"]) == 3
    leader = cluster.node_names.index(info["leader"])
    survivor = (leader + 1) % 3

    killed_at = time.monotonic()
    cluster.kill(leader)
    # The other two are a majority: a new leader is elected and publishing goes on.
    await publish(vhost_urls[survivor], 1, "first-after-kill")
    accepting_after = time.monotonic() - killed_at
    await publish(vhost_urls[survivor], 99, "after")
    print(
        f"\nqueue accepted a confirmed publish {accepting_after:.2f}s after its leader node was killed "
        f"({len(refused)} publishes refused meanwhile)"
    )

    received: list[bytes] = []
    connection = await aio_pika.connect(vhost_urls[survivor])
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            received.append(message.body)
    assert len(received) == len(set(received)), "no message twice"
    assert sent <= set(received) and len(sent) == 200, "every confirmed message"
    assert set(received) <= sent | refused

    rejoined = cluster.restart(leader)
    print(f"killed node restarted and rejoined in {rejoined:.1f}s")
    assert cluster.running_nodes() == sorted(cluster.node_names)

    def all_members_online() -> bool:
        info = queue_members(cluster, vhost_urls[0], queue_name, via=survivor)
        return sorted(info["online"]) == sorted(cluster.node_names)

    await eventually(all_members_online, timeout=30, interval=0.5, message="all 3 queue members online")


async def test_a_service_fails_over_to_the_next_broker_and_resumes_publishing_and_consuming(
    cluster: RabbitCluster, vhost_urls: list[str], tmp_path: Path, toy_app: Any
) -> None:
    app = toy_app(",".join(vhost_urls), f"sqlite+aiosqlite:///{tmp_path / 'toy.db'}")
    async with running_app(app) as client:
        await wait_ready(client)
        broker = app.state.broker
        assert urlsplit(broker.url).port == urlsplit(vhost_urls[0]).port, "the first address answered"
        before = (await client.post("/items/beras")).json()["member_id"]
        await eventually(lambda: app.state.effect_count(before), timeout=15)
        reconnects = broker.reconnects

        killed_at = time.monotonic()
        cluster.kill(0)

        async def ready_again() -> bool:
            return broker.reconnects > reconnects and (await client.get("/health/ready")).status_code == 200

        await eventually(ready_again, timeout=30, interval=0.1, message="ready again on another node")
        ready_after = time.monotonic() - killed_at
        assert urlsplit(broker.url).port == urlsplit(vhost_urls[1]).port, "the next address in the list"
        after = (await client.post("/items/gula")).json()["member_id"]
        await eventually(lambda: app.state.effect_count(after), timeout=30, interval=0.1)
        resumed_after = time.monotonic() - killed_at
        print(
            f"\nservice ready on the second node {ready_after:.2f}s after the first was killed; "
            f"a new event published and consumed {resumed_after:.2f}s after the kill"
        )
        assert await app.state.effect_count(before) == 1
        assert await app.state.relay.backlog() == 0
    await asyncio.to_thread(cluster.restart, 0)
