"""Request and response models of the notifications API.

Request models forbid unknown fields (422 rather than silently ignoring, say, an `owner_id`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from kkmp_shared.http import KecamatanCode as KecamatanCode
from kkmp_shared.validation import COMMON_ERRORS as COMMON_ERRORS
from kkmp_shared.validation import NO_CONTROL as NO_CONTROL
from kkmp_shared.validation import TRIMMED, Strict
from kkmp_shared.validation import ErrorOut as ErrorOut
from kkmp_shared.validation import error_responses as error_responses
from pydantic import BaseModel, Field, StringConstraints, field_validator

from notifications.domain.events import MUTABLE_EVENT_TYPES, ROUTABLE_EVENT_TYPES, routable_model
from notifications.domain.routing import Audience

FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,59}$")]


# --- inbox ---------------------------------------------------------------------------------------------


class NotificationOut(BaseModel):
    id: str
    event_type: str
    # The CloudEvent id it came from (made up for escalations, digests and announcements).
    event_id: str
    title: str
    body: str
    link: str | None = None
    cooperative_id: str | None = None
    commodity: str | None = None
    created_at: datetime
    read_at: datetime | None = None


class InboxSummary(BaseModel):
    total: int
    unread: int


class MarkedOut(BaseModel):
    marked: int


# --- preferences -----------------------------------------------------------------------------------------

MutableType = Literal[MUTABLE_EVENT_TYPES]  # type: ignore[valid-type]


class PreferencesIn(Strict):
    """Fields left out keep their current value."""

    muted_event_types: list[MutableType] | None = Field(default=None, max_length=len(MUTABLE_EVENT_TYPES))
    digest: Literal["off", "daily"] | None = None
    email: bool | None = None


class PreferencesOut(BaseModel):
    user_id: str
    muted_event_types: list[str]
    digest: Literal["off", "daily"]
    email: bool
    email_address: str | None = None
    digest_hour_wib: int
    held_for_digest: int
    updated_at: datetime | None = None


class EventTypeOut(BaseModel):
    event_type: str
    label: str
    routable: bool


# --- routing rules ----------------------------------------------------------------------------------------


class RoutingRuleIn(Strict):
    event_type: Annotated[str, StringConstraints(max_length=100), TRIMMED]
    audience: Audience
    # The data field naming who: a cooperative id, a kecamatan code or a supplier id (per audience).
    match_field: FieldName | None = None
    # Only when these data fields have one of these values, e.g. {"new_level": ["tidak_aktif"]}.
    when: dict[FieldName, list[Annotated[str, StringConstraints(max_length=100)]]] = Field(
        default_factory=dict, max_length=10
    )
    enabled: bool = True

    @field_validator("event_type")
    @classmethod
    def _routable(cls, value: str) -> str:
        if routable_model(value) is None:
            raise ValueError(f"{value!r} is not an event type this service routes")
        return value

    @field_validator("when")
    @classmethod
    def _values(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, allowed in value.items():
            if not allowed or len(allowed) > 20:
                raise ValueError(f"condition {name!r} needs between 1 and 20 values")
        return value


class RoutingRulePatch(Strict):
    enabled: bool


class RoutingRuleOut(BaseModel):
    id: str
    event_type: str
    audience: str
    match_field: str | None
    when: dict[str, list[str]]
    enabled: bool
    builtin: bool
    created_at: datetime


# --- subscriptions ------------------------------------------------------------------------------------------

SubscribableType = Literal[ROUTABLE_EVENT_TYPES]  # type: ignore[valid-type]


class SubscriptionIn(Strict):
    channel: Literal["webhook", "email"]
    target: Annotated[str, StringConstraints(min_length=3, max_length=2000), TRIMMED]
    event_types: list[SubscribableType] = Field(min_length=1, max_length=len(ROUTABLE_EVENT_TYPES))
    kecamatan_codes: list[KecamatanCode] | None = Field(default=None, max_length=31)
    description: Annotated[str, StringConstraints(max_length=300), TRIMMED] | None = None


class SubscriptionOut(BaseModel):
    id: str
    channel: str
    target: str
    event_types: list[str]
    kecamatan_codes: list[str] | None
    description: str | None = None
    owner_id: str
    active: bool
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str | None = Field(
        default=None, description="HMAC-SHA256 key of the X-KKMP-Signature header; shown only once."
    )


# --- deliveries ---------------------------------------------------------------------------------------------


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None = None
    error: str | None = None


class DeliveryOut(BaseModel):
    id: str
    channel: str
    target: str
    recipient: str
    user_id: str | None = None
    subscription_id: str | None = None
    event_id: str
    event_type: str
    cooperative_id: str | None = None
    status: Literal["pending", "delivering", "delivered", "failed"]
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    attempt_log: list[AttemptOut] = []


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    total: int


# --- jobs and announcements -------------------------------------------------------------------------


class RunIn(Strict):
    as_of: datetime | None = None


class EscalationRunOut(BaseModel):
    escalated: int
    as_of: datetime


class DigestRunOut(BaseModel):
    digests: int
    items: int
    as_of: datetime


Role = Literal["admin", "officer", "coop_manager", "supplier"]


def _managers() -> list[Role]:
    return ["coop_manager"]


class AnnouncementIn(Strict):
    title: Annotated[str, StringConstraints(min_length=3, max_length=200), TRIMMED]
    body: Annotated[str, StringConstraints(min_length=1, max_length=4000), TRIMMED]
    roles: list[Role] = Field(default_factory=_managers, min_length=1, max_length=4)
    kecamatan_codes: list[KecamatanCode] | None = Field(default=None, max_length=31)
    cooperative_ids: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=1000
    )
    # A portal path such as /koperasi/<id>; the portal's address is added.
    link: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9/_\-.?=&%]*$", max_length=300)] | None = None
    # Back-dating for seeds and imports; never in the future.
    created_at: datetime | None = None


class AnnouncementOut(BaseModel):
    id: str
    recipients: int
    created_at: datetime
