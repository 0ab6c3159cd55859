"""What the HTTP API asks of the use cases, as plain values (the routes build them from the
request models; the use cases never see those)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ChangePreferences:
    """Fields left None keep their current value."""

    muted_event_types: Sequence[str] | None = None
    digest: str | None = None  # "off" | "daily"
    email: bool | None = None


@dataclass(frozen=True)
class AddRoutingRule:
    event_type: str
    audience: str
    match_field: str | None = None
    when: Mapping[str, Sequence[str]] = field(default_factory=dict)
    enabled: bool = True


@dataclass(frozen=True)
class Subscribe:
    channel: str  # "webhook" | "email"
    target: str
    event_types: Sequence[str]
    kecamatan_codes: Sequence[str] | None = None
    description: str | None = None


@dataclass(frozen=True)
class Announce:
    title: str
    body: str
    roles: Sequence[str]
    kecamatan_codes: Sequence[str] | None = None
    cooperative_ids: Sequence[str] | None = None
    link: str | None = None  # a portal path
    created_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    channel: str | None = None
    subscription_id: str | None = None
    event_id: str | None = None
