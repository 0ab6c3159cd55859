"""The webhook sender (aiohttp) against real local HTTP servers: what one attempt does with a
redirect, an error answer, a receiver that drips its answer, and a kept-alive connection.

The flow tests (test_notifications_channels.py) cover signing, retries and the address check
through the whole service; these pin the sender's own promises, each of which a change of HTTP
client could break silently."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from notifications.adapters.channels import AttemptResult, WebhookSender
from notifications.settings import NotificationsSettings

Answer = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def receiver(answer: Answer) -> AsyncIterator[dict[str, Any]]:
    """An HTTP/1.1 server on loopback that reads each request whole (keep-alive) and lets `answer`
    write the reply; `seen` lists the request lines, `connections` counts accepted connections."""
    state: dict[str, Any] = {"seen": [], "connections": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                state["seen"].append(head.split(b"\r\n", 1)[0].decode())
                await answer(head, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state["url"] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def reply(status: str, body: bytes = b"", extra: str = "") -> Answer:
    async def answer(_head: bytes, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    return answer


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    made = WebhookSender(
        NotificationsSettings(demo=True, allow_internal_webhooks=True, webhook_timeout_s=1.0)
    )
    try:
        yield made
    finally:
        await made.close()


async def post(sender: WebhookSender, url: str, delivery_id: str = "d-1") -> AttemptResult:
    return await sender.send(
        url=url, body=b"{}", secret="s3cret", delivery_id=delivery_id, event_id="e-1", event_type="x.v1"
    )


async def test_a_redirect_is_not_followed(sender: WebhookSender) -> None:
    """A receiver could bounce the request to an internal host: the 302 is the attempt's answer."""
    async with receiver(reply("302 Found", extra="Location: /elsewhere\r\n")) as server:
        result = await post(sender, f"{server['url']}/hook")
    assert (result.ok, result.outcome, result.status_code) == (False, "error", 302)
    assert server["seen"] == ["POST /hook HTTP/1.1"]


async def test_an_error_answer_keeps_its_start_and_says_whether_to_retry(sender: WebhookSender) -> None:
    async with receiver(reply("503 Service Unavailable", b"x" * 300)) as server:
        busy = await post(sender, f"{server['url']}/hook")
    assert (busy.ok, busy.retryable, busy.status_code) == (False, True, 503)
    assert busy.error == "HTTP 503: " + "x" * 200
    async with receiver(reply("410 Gone", b"gone")) as server:
        gone = await post(sender, f"{server['url']}/hook")
    assert (gone.ok, gone.retryable, gone.error) == (False, False, "HTTP 410: gone")


async def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_timeout(sender: WebhookSender) -> None:
    """Each byte comes well within any per-read timeout, but the whole answer never ends: the
    attempt's total bound (1 s here) ends it."""

    async def drip(_head: bytes, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with receiver(drip) as server:
        started = time.monotonic()
        result = await post(sender, f"{server['url']}/hook")
        took = time.monotonic() - started
    assert (result.ok, result.retryable, result.outcome) == (False, True, "timeout")
    assert 0.9 < took < 3.0


async def test_a_refused_connection_is_a_retryable_error(sender: WebhookSender) -> None:
    async with receiver(reply("200 OK")) as server:
        url = server["url"]
    result = await post(sender, f"{url}/hook")  # the server is gone: nothing listens there now
    assert (result.ok, result.retryable, result.outcome, result.status_code) == (False, True, "error", None)
    assert result.error and "connect" in result.error.lower()


async def test_attempts_to_one_receiver_share_a_kept_alive_connection(sender: WebhookSender) -> None:
    """A burst to one receiver goes over the connections already open, not one per attempt."""
    async with receiver(reply("204 No Content")) as server:
        results = [await post(sender, f"{server['url']}/hook", f"d-{i}") for i in range(5)]
        assert all(r.ok and r.status_code == 204 for r in results)
        assert len(server["seen"]) == 5
        assert server["connections"] == 1
