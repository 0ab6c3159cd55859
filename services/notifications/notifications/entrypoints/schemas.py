"""Request and response models of the notifications API.

Request models forbid unknown fields (422 rather than silently ignoring, say, an `owner_id`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from notifications.domain.events import MUTABLE_EVENT_TYPES, ROUTABLE_EVENT_TYPES, routable_model
from notifications.domain.routing import Audience

KecamatanCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}\.\d{2}\.\d{2}$")]
FieldName = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z_][a-z0-9_]{0,59}$")]


# NUL cannot be stored in (or even compared by) PostgreSQL and a lone surrogate cannot be encoded by
# either database; other C0 controls (tab and line breaks aside) have no place in a title or a target.
# Refused as bad input (422) rather than failing in the database (500).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# Path and query parameters (ids, filters): no control characters at all.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


def _storable(value: object) -> object:
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValueError("text contains control or invalid characters")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    return value


def _kinds(annotation: Any) -> set[Any]:
    """The plain types a field's annotation is made of (`int | None` → {int, NoneType})."""
    args = get_args(annotation)
    return {annotation} if not args else set().union(*(_kinds(arg) for arg in args))


def _refuse_coercion(model: type[BaseModel], value: Any, field: str | None) -> Any:
    """JSON as the schema types it: pydantic would also read a number as a date (seconds since
    1970), 0 or "yes" as a boolean, false or "12" as a number, which no client means and the
    published schema does not allow."""
    if field is None or field not in model.model_fields or value is None:
        return value
    kinds = _kinds(model.model_fields[field].annotation)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kinds & {date, datetime} and is_number:
        raise ValueError("expected an ISO 8601 date or date-time, e.g. 2025-01-31")
    if bool in kinds and not isinstance(value, bool) and not kinds & {int, float, str}:
        raise ValueError("expected true or false")
    if kinds & {int, float, Decimal} and isinstance(value, bool) and bool not in kinds:
        raise ValueError("expected a number")
    if kinds & {int, float} and isinstance(value, str) and not kinds & {str, Decimal}:
        raise ValueError("expected a number")
    return value


class Strict(BaseModel):
    """Base of every request model: unknown fields are refused (422), text must be storable."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        return _storable(value)

    @field_validator("*", mode="before")
    @classmethod
    def _as_typed(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_coercion(cls, value, info.field_name)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """The contract's error format: the body of every 4xx and 5xx answer."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for these error statuses, each with the error format as its schema."""
    return {status: {"model": ErrorOut, "description": ERROR_MEANINGS[status]} for status in statuses}


ERROR_MEANINGS = {
    400: "The body is not readable JSON",
    401: "No token, or a bad one",
    403: "Not allowed for this caller",
    404: "Unknown id, or one the caller may not see",
    409: "Conflict with the current state",
    413: "The body is too large",
    422: "Invalid input; details name each field",
    429: "Too many failed attempts; try again after Retry-After seconds",
}
# What any route may answer besides its success (a route adds 429 where it throttles).
COMMON_ERRORS = (400, 401, 403, 404, 409, 413, 422)


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
    event_type: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
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
    target: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]
    event_types: list[SubscribableType] = Field(min_length=1, max_length=len(ROUTABLE_EVENT_TYPES))
    kecamatan_codes: list[KecamatanCode] | None = Field(default=None, max_length=31)
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None


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
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
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
