"""Helpers of the notifications tests: a real SMTP server's mailbox, a local HTTP receiver for
webhooks, and `Env`, the running service with the means to feed it events and read its state."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from kkmp_shared import clock
from kkmp_shared.events.contracts import CooperativeRegistered, EventData, UserCreated
from kkmp_testkit.harness import EventProbe
from kkmp_testkit.tokens import TokenFactory
from kkmp_testkit.wait import eventually
from notifications.adapters import orm
from notifications.settings import NotificationsSettings
from sqlalchemy import select

# --- SMTP ------------------------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox


# --- HTTP receiver ---------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: what a path answers is set per test (`modes[path]`):
    an int status, "hang" (accept, then never answer)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    modes: dict[str, int | str] = field(default_factory=dict)
    # Connections open per path right now, and the most there ever were at once.
    open_now: dict[str, int] = field(default_factory=dict)
    open_peak: dict[str, int] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, path, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(path, headers, body, asyncio.get_running_loop().time()))
            mode = self.modes.get(path, 200)
            if mode == "hang":
                # Never answer; hold the connection until the client gives up and closes it.
                self.open_now[path] = self.open_now.get(path, 0) + 1
                self.open_peak[path] = max(self.open_peak.get(path, 0), self.open_now[path])
                try:
                    while await reader.read(1024):
                        pass
                finally:
                    self.open_now[path] -= 1
                return
            status = int(mode)
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


# --- the running service ------------------------------------------------------------------------------------


@dataclass
class Env:
    app: FastAPI
    client: httpx.AsyncClient
    probe: EventProbe
    tokens: TokenFactory
    smtp: SmtpServer
    receiver: Receiver
    amqp_url: str
    # Whole-city officers hear about everything: tests that count recipients leave them out.
    city_wide: set[str] = field(default_factory=set)

    async def publish(self, data: EventData, **kwargs: Any) -> Any:
        return await self.probe.publish(data, **kwargs)

    async def rows(self, query: Any) -> list[Any]:
        async with self.app.state.db.session() as session:
            return list((await session.execute(query)).all())

    async def add_cooperative(self, name: str, kecamatan_code: str, kelurahan_code: str | None = None) -> str:
        cooperative_id = str(uuid.uuid4())
        await self.publish(
            CooperativeRegistered(
                cooperative_id=cooperative_id,
                kelurahan_code=kelurahan_code or f"{kecamatan_code}.{uuid.uuid4().int % 9000 + 1000}",
                kecamatan_code=kecamatan_code,
                name=name,
                formation="new",
                status="operating",
                registered_at=clock.now(),
            )
        )
        t = orm.known_cooperatives
        await eventually(lambda: self.rows(select(t.c.id).where(t.c.id == cooperative_id)), timeout=15)
        return cooperative_id

    async def add_user(
        self,
        role: str,
        *,
        cooperative_id: str | None = None,
        kecamatan_codes: list[str] | None = None,
        email: str | None = None,
        supervisor: bool = False,
        supplier_id: str | None = None,
    ) -> str:
        user_id = str(uuid.uuid4())
        await self.publish(
            UserCreated(
                user_id=user_id,
                username=f"u{user_id[:8]}",
                full_name=f"Pengguna {user_id[:4]}",
                email=email,
                role=role,  # type: ignore[arg-type]
                cooperative_id=cooperative_id,
                supplier_id=supplier_id,
                kecamatan_codes=kecamatan_codes or [],
                supervisor=supervisor,
            )
        )
        r = orm.recipients
        await eventually(lambda: self.rows(select(r.c.user_id).where(r.c.user_id == user_id)), timeout=15)
        if role == "officer" and not kecamatan_codes:
            self.city_wide.add(user_id)
        return user_id

    def headers_for(self, user_id: str, role: str, **claims: Any) -> dict[str, str]:
        return self.tokens.headers(role, sub=user_id, **claims)

    async def inbox(self, user_id: str, role: str = "coop_manager", **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/me/notifications", headers=self.headers_for(user_id, role), params=params
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def recipients_of(self, event_id: str) -> set[str]:
        n = orm.notifications
        return {r.user_id for r in await self.rows(select(n.c.user_id).where(n.c.event_id == event_id))}

    async def local_recipients(self, event_id: str) -> set[str]:
        """Recipients other than the whole-city officers."""
        return await self.recipients_of(event_id) - self.city_wide

    async def processed(self, event_id: str, queue: str = "notifications.alerts") -> bool:
        i = orm.messaging.inbox
        return bool(
            await self.rows(select(i.c.event_id).where(i.c.event_id == event_id, i.c.consumer == queue))
        )


def settings_for(amqp_url: str, smtp_port: int, data_dir: Path) -> NotificationsSettings:
    return NotificationsSettings(
        amqp_url=amqp_url,
        demo=True,
        data_dir=data_dir,
        log_json=False,
        log_level="WARNING",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_starttls=False,
        allow_internal_webhooks=True,
        webhook_timeout_s=3.0,
        # Small, so that the hanging-receiver test sees the per-target bound reached.
        delivery_per_target=2,
        delivery_max_attempts=3,
        delivery_backoff_base_s=0.3,
        delivery_backoff_max_s=1.0,
        delivery_poll_interval_s=0.2,
        retry_delays_ms=[200, 500],
        relay_poll_interval_s=0.1,
        scheduler_interval_s=0.5,
    )
