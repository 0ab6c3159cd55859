"""Operator tools for dead-letter queues: what failed, why, and sending it back once fixed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx
from kkmp_shared.messaging.broker import copy_for_republish
from rich.console import Console
from rich.table import Table

from kkmp_cli.services import SERVICES

console = Console()


def _text(value: object) -> str:
    """A header value as text (AMQP hands back long strings as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _vhost(url: str) -> str:
    """The vhost of an AMQP URL ("/" when the path is empty), as rabbitmqctl's `-p` wants it."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def known_dlqs(url: str, node: str | None = None) -> list[str]:
    """Every `<queue>.dlq` of the URL's vhost: from `rabbitmqctl list_queues` (of ``node`` when given,
    else the machine's default node) when it is here, else from the services' AsyncAPI documents."""
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        result = subprocess.run(
            [
                ctl,
                *(["-n", node] if node else []),
                "list_queues",
                "-p",
                _vhost(url),
                "-q",
                "--formatter",
                "json",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode == 0:
            try:
                return sorted(q["name"] for q in json.loads(result.stdout) if q["name"].endswith(".dlq"))
            except (ValueError, KeyError):
                pass
    names = set()
    for spec in SERVICES:
        # `<SERVICE>_URL` (as `kkmp run` and the services use) wins over the default port.
        base = os.environ.get(f"{spec.name.upper()}_URL", spec.url).rstrip("/")
        try:
            doc = httpx.get(f"{base}/asyncapi.json", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            continue
        for channel in doc.get("channels", {}).values():
            if "x-queue" in channel:
                names.add(f"{channel['x-queue']}.dlq")
    return sorted(names)


async def _counts(url: str, names: list[str]) -> list[tuple[str, int]]:
    connection = await aio_pika.connect(url)
    out = []
    async with connection:
        for name in names:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                out.append((name, queue.declaration_result.message_count or 0))
            except aio_pika.exceptions.ChannelClosed:
                out.append((name, -1))
    return out


def list_dlqs(url: str, node: str | None = None) -> None:
    table = Table("dead-letter queue", "messages")
    for name, count in asyncio.run(_counts(url, known_dlqs(url, node))):
        table.add_row(name, "missing" if count < 0 else str(count))
    console.print(table)


def dead_letter_reason(headers: dict) -> str:
    """Why a message is in a dead-letter queue: the consumer's `x-kkmp-error`, else the broker's own
    dead-lettering (`x-death`), e.g. the delivery limit of a message whose consumer kept dying on it."""
    if headers.get("x-kkmp-error"):
        return _text(headers["x-kkmp-error"])
    deaths = headers.get("x-death") or []
    if deaths:
        death = deaths[0]
        if death.get("reason") == "delivery_limit":
            return f"delivery limit of {death.get('queue')} reached (redelivered without an ack each time)"
        return f"dead-lettered by the broker from {death.get('queue')}: {death.get('reason')}"
    return "unknown"


async def _show(url: str, name: str, limit: int) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        for _ in range(limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = message.headers or {}
            console.rule(f"{message.message_id or '?'}  {message.type or ''}")
            queue_name, at = (_text(headers.get(k)) for k in ("x-kkmp-queue", "x-kkmp-dead-lettered-at"))
            console.print(f"error: {dead_letter_reason(headers)}")
            console.print(f"from queue: {queue_name}  at: {at}")
            console.print(message.body.decode(errors="replace")[:2000])
        # Closing without acking returns every message to the queue: showing changes nothing.


def show(url: str, name: str, limit: int) -> None:
    asyncio.run(_show(url, name, limit))


async def _replay(url: str, name: str, limit: int) -> int:
    connection = await aio_pika.connect(url)
    moved = 0
    async with connection:
        # A copy no queue takes (a mistyped or deleted work queue) is returned and raises, so the
        # original is not acked and stays in the dead-letter queue.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(name, passive=True)
        # Only what is there now: a message that fails again comes back to this queue while we replay,
        # and must not be replayed over and over until the limit.
        waiting = queue.declaration_result.message_count or 0
        for _ in range(min(limit, waiting)):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = dict(message.headers or {})
            target = str(headers.get("x-kkmp-queue") or name.removesuffix(".dlq"))
            for key in (
                "x-kkmp-attempt",
                "x-kkmp-error",
                "x-kkmp-dead-lettered-at",
                "x-death",
                "x-delivery-count",
                "x-first-death-exchange",
                "x-first-death-queue",
                "x-first-death-reason",
            ):
                headers.pop(key, None)
            try:
                await channel.default_exchange.publish(
                    copy_for_republish(message, headers),
                    routing_key=target,
                    mandatory=True,
                )
            except aio_pika.exceptions.DeliveryError:
                console.print(f"[red]No queue {target!r} took message {message.message_id}: left in {name}.")
                break
            await message.ack()  # only after the broker confirmed the copy: nothing is lost in between
            moved += 1
    return moved


def replay(url: str, name: str, limit: int) -> None:
    console.print(f"Replayed {asyncio.run(_replay(url, name, limit))} message(s) from {name}.")


async def _purge(url: str, name: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        await queue.purge()


def purge(url: str, name: str) -> None:
    asyncio.run(_purge(url, name))
    console.print(f"Purged {name}.")
