"""Delivery policy for the push channels (email, webhook): retries, signatures, webhook targets.

- Retries back off exponentially with jitter (half fixed, half random), capped, so a receiver that
  comes back is not hit by every queued delivery in the same second.
- A webhook body is signed with HMAC-SHA256 of the exact bytes sent, keyed by the subscription's
  secret: `X-KKMP-Signature: sha256=<hex>`.
- Webhook targets must be http(s) and, unless the operator allows it, must not point into the
  service's own network (loopback, private, link-local, ...): a subscription must not become a way to
  make this service call internal systems (SSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-KKMP-Signature"

Outcome = Literal["delivered", "retry", "failed"]


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rand: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based); `rand` is uniform in [0, 1)."""
    ceiling = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return ceiling * (0.5 + 0.5 * rand)


def next_outcome(*, succeeded: bool, retryable: bool, attempts: int, max_attempts: int) -> Outcome:
    """After an attempt: delivered, another try later, or given up."""
    if succeeded:
        return "delivered"
    if retryable and attempts < max_attempts:
        return "retry"
    return "failed"


def http_status_retryable(status: int) -> bool:
    """Server trouble and throttling are worth another try; other 4xx and redirects are not (the
    request will not change; redirects are not followed so a target cannot bounce us elsewhere)."""
    return status >= 500 or status in (408, 425, 429)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


class TargetRejected(ValueError):
    """A webhook or email target this service refuses to deliver to."""


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    scheme: str
    host: str
    port: int


def parse_webhook_url(url: str) -> WebhookTarget:
    """http(s), a host, no credentials in the URL (they would be logged and shown back)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise TargetRejected(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise TargetRejected("a webhook target must be an http or https URL")
    if not parts.hostname:
        raise TargetRejected("a webhook target needs a host")
    if parts.username or parts.password:
        raise TargetRejected("credentials in the URL are not accepted; authenticate with the signature")
    return WebhookTarget(
        url=url.strip(),
        scheme=parts.scheme,
        host=parts.hostname.lower(),
        port=port or (443 if parts.scheme == "https" else 80),
    )


def is_internal_address(address: str) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast or unspecified: anything not global."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_private


INTERNAL_HOSTNAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def check_addresses(target: WebhookTarget, addresses: list[str]) -> None:
    """Refuse a target whose name is local or any of whose addresses is internal."""
    if target.host in INTERNAL_HOSTNAMES or target.host.endswith(".localhost"):
        raise TargetRejected(f"{target.host} is a local name")
    if not addresses:
        raise TargetRejected(f"{target.host} does not resolve")
    internal = sorted({a for a in addresses if is_internal_address(a)})
    if internal:
        raise TargetRejected(f"{target.host} resolves to an internal address ({', '.join(internal)})")


_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def check_email(address: str) -> str:
    address = address.strip()
    if len(address) > 254 or not _EMAIL.match(address):
        raise TargetRejected("not a valid email address")
    return address
