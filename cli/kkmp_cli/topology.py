"""`kkmp topology migrate`: turn an existing deployment's classic queues into quorum queues."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlsplit

from kkmp_shared.messaging.migrate import BrokerState, migrate
from kkmp_shared.settings import split_urls
from kkmp_testkit.rabbit import rabbitmqctl
from rich.console import Console

console = Console()


def vhost_of(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def migrate_topology(amqp_url: str, *, node: str | None, exchange: str, delivery_limit: int) -> int:
    """Migrate the vhost of `amqp_url` (the first address of a list); returns the messages moved."""
    url = split_urls(amqp_url)[0]
    state = BrokerState.from_rabbitmqctl(vhost_of(url), lambda *args: rabbitmqctl(*args, node=node))
    steps, report = asyncio.run(migrate(url, state, exchange=exchange, delivery_limit=delivery_limit))
    for name in report.migrated:
        console.print(f"{name}: now a quorum queue ({report.moved.get(name, 0)} message(s) carried over)")
    if report.unchanged:
        console.print(f"{len(report.unchanged)} queue(s) already quorum queues: unchanged")
    if not steps:
        console.print(f"No consumer queue bound to {exchange} in vhost {vhost_of(url)!r}.")
    return sum(report.moved.values())
