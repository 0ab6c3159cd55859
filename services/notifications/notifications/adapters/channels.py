"""The push channels: webhooks over HTTP(S) and email over SMTP. Each send is one attempt.

A sender never raises for a delivery problem: it answers an `AttemptResult` saying what happened and
whether trying again could help. Every attempt is bounded by a total timeout, so a receiver that
accepts the connection and then never answers costs one worker slot for that long, no more.

WhatsApp and SMS are not channels of their own: a gateway is a webhook subscription whose adapter
verifies the signature and forwards the `kkmpmessage` text (see the service's README.md).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiohttp
import aiosmtplib
import certifi
from yarl import URL

from notifications.domain.delivery import (
    SIGNATURE_HEADER,
    TargetRejected,
    WebhookTarget,
    check_addresses,
    http_status_retryable,
    parse_webhook_url,
    sign,
)
from notifications.settings import NotificationsSettings

USER_AGENT = "KKMP-Notifications/1.0"
# What is read of a receiver's answer: enough for the error text, and a small answer read whole.
ANSWER_READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    retryable: bool
    outcome: str  # delivered | error | timeout | refused
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0


async def resolve_host(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        # A resolver that never answers must not hold a request or a worker slot for long.
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5)
    except (TimeoutError, OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def check_webhook_target(url: str, *, allow_internal: bool) -> str:
    """Validate a webhook URL (scheme, host, and where it resolves); raises TargetRejected."""
    return (await checked_address(url, allow_internal=allow_internal))[0].url


async def checked_address(url: str, *, allow_internal: bool) -> tuple[WebhookTarget, str | None]:
    """The parsed target and, unless internal targets are allowed, the checked address to connect
    to; raises TargetRejected."""
    target = parse_webhook_url(url)
    if allow_internal:
        return target, None
    addresses = await resolve_host(target.host, target.port)
    check_addresses(target, addresses)
    return target, addresses[0]


class WebhookSender:
    """POSTs webhooks with aiohttp: one pooled session, no redirects, no proxies from the
    environment, and every attempt bounded by `webhook_timeout_s` in total.

    aiohttp, not httpx (the platform's usual client): in a burst of alerts the webhook POSTs are this
    service's largest cost, and aiohttp's is a few times lower (figures in bench/README.md)."""

    def __init__(self, settings: NotificationsSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.timeout = settings.webhook_timeout_s
        # The same trust roots as before (certifi's), unless a test or an operator gives others.
        self.ssl_context = ssl_context or ssl.create_default_context(cafile=certifi.where())
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=self.ssl_context, limit=self.settings.delivery_concurrency
                ),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
        return self._session

    async def send(
        self, *, url: str, body: bytes, secret: str | None, delivery_id: str, event_id: str, event_type: str
    ) -> AttemptResult:
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            # Checked again at send time: a name may resolve elsewhere now than at subscription time.
            target, address = await checked_address(url, allow_internal=self.settings.allow_internal_webhooks)
        except TargetRejected as exc:
            return AttemptResult(False, False, "refused", error=str(exc), duration_ms=elapsed())
        headers = {
            "Content-Type": "application/cloudevents+json",
            "X-KKMP-Delivery": delivery_id,
            "X-KKMP-Event-Id": event_id,
            "X-KKMP-Event-Type": event_type,
        }
        request_url = URL(url)
        server_hostname: str | None = None
        if address is not None and address != target.host:
            # Connect to the address just checked, not to whatever the name resolves to a moment
            # later (DNS rebinding would turn the check into a way in to internal hosts). The
            # receiver still sees its own name: in Host, and for https in SNI and the certificate check.
            headers["Host"] = request_url.raw_authority.rpartition("@")[2]
            if target.scheme == "https":
                server_hostname = target.host
            request_url = request_url.with_host(address)
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        try:
            # The session's total timeout bounds the attempt; wait_for also stops a receiver that drips
            # bytes forever, whatever aiohttp does with its own timeout.
            status, text = await asyncio.wait_for(
                self._post(request_url, body, headers, server_hostname), timeout=self.timeout
            )
        except TimeoutError:
            return AttemptResult(
                False, True, "timeout", error=f"no answer within {self.timeout:g} s", duration_ms=elapsed()
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return AttemptResult(
                False, True, "error", error=f"{type(exc).__name__}: {exc}"[:500], duration_ms=elapsed()
            )
        if 200 <= status < 300:
            return AttemptResult(True, False, "delivered", status, duration_ms=elapsed())
        return AttemptResult(
            False, http_status_retryable(status), "error", status, f"HTTP {status}: {text[:200]}", elapsed()
        )

    async def _post(
        self, url: URL, body: bytes, headers: dict[str, str], server_hostname: str | None
    ) -> tuple[int, str]:
        """The status and the start of the answer; at most `ANSWER_READ_LIMIT` bytes of it are read
        (a small answer read whole leaves the connection to be kept alive)."""
        async with self._client().post(
            url, data=body, headers=headers, allow_redirects=False, server_hostname=server_hostname
        ) as response:
            answer = b""
            while len(answer) < ANSWER_READ_LIMIT:
                chunk = await response.content.read(ANSWER_READ_LIMIT - len(answer))
                if not chunk:
                    break
                answer += chunk
            return response.status, answer.decode("utf-8", errors="replace")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class EmailSender:
    def __init__(self, settings: NotificationsSettings) -> None:
        self.settings = settings

    def build(self, *, to: str, subject: str, text: str, delivery_id: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(idstring=delivery_id.replace("-", ""), domain="kkmp.local")
        message["X-KKMP-Delivery"] = delivery_id
        message.set_content(text, charset="utf-8")
        return message

    async def send(self, *, to: str, subject: str, text: str, delivery_id: str) -> AttemptResult:
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        s = self.settings
        if not s.smtp_host:
            return AttemptResult(
                False, False, "refused", error="SMTP is not configured (SMTP_HOST)", duration_ms=0
            )
        message = self.build(to=to, subject=subject, text=text, delivery_id=delivery_id)
        try:
            await asyncio.wait_for(
                aiosmtplib.send(
                    message,
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    username=s.smtp_username,
                    password=s.smtp_password,
                    start_tls=s.smtp_starttls,
                    use_tls=s.smtp_use_tls,
                    timeout=s.smtp_timeout_s,
                ),
                timeout=s.smtp_timeout_s * 2,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return AttemptResult(
                False, False, "error", error=f"recipient refused: {exc}"[:500], duration_ms=elapsed()
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is a temporary refusal (greylisting, full mailbox); 5xx is final.
            return AttemptResult(
                False,
                400 <= exc.code < 500,
                "error",
                exc.code,
                f"SMTP {exc.code}: {exc.message}"[:500],
                elapsed(),
            )
        except (TimeoutError, aiosmtplib.SMTPTimeoutError):
            return AttemptResult(
                False, True, "timeout", error="SMTP server did not answer in time", duration_ms=elapsed()
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            return AttemptResult(
                False, True, "error", error=f"{type(exc).__name__}: {exc}"[:500], duration_ms=elapsed()
            )
        return AttemptResult(True, False, "delivered", 250, duration_ms=elapsed())
