"""Request and response models of the registry API (Create / Update / Public per entity).

Request models forbid unknown fields: a client that sends `role`, `status` or `id` where they are not
accepted is told so (422) instead of having them silently applied or dropped.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from registry.domain.rules import (
    BOARD_POSITIONS,
    BUSINESS_UNITS,
    COOPERATIVE_STATUSES,
    normalise_board_position,
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}(\.\d{2}){2}(\.\d{4})?$")]
KecamatanCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}\.\d{2}\.\d{2}$")]
KelurahanCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
]
KELURAHAN_CODE_RE = re.compile(r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
BusinessUnit = Literal[BUSINESS_UNITS]  # type: ignore[valid-type]
BoardPosition = Literal[BOARD_POSITIONS]  # type: ignore[valid-type]
Status = Literal[COOPERATIVE_STATUSES]  # type: ignore[valid-type]
Role = Literal["admin", "officer", "coop_manager", "supplier", "service"]

# NUL and lone surrogates cannot be stored (PostgreSQL refuses NUL in text; neither database encodes a
# lone surrogate), and other C0 controls have no place in a name: refuse them as bad input (422)
# instead of letting the database fail with a 500.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def storable_text(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def _check_storable(value: Any) -> Any:
    if isinstance(value, str):
        if not storable_text(value):
            raise ValueError("text contains control or invalid characters")
    elif isinstance(value, list | tuple | set):
        for item in value:
            _check_storable(item)
    return value


def as_utc(value: datetime) -> datetime:
    """SQLite gives back naive datetimes (stored in UTC); everything leaves the service as UTC-aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _not_future(value: datetime) -> datetime:
    value = as_utc(value)
    # A little slack: the client's clock may run a few seconds ahead of ours.
    if (value - datetime.now(UTC)).total_seconds() > 300:
        raise ValueError("cannot be in the future")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
PastDatetime = Annotated[datetime, AfterValidator(_not_future)]


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
    def _storable(cls, value: Any) -> Any:
        return _check_storable(value)

    @field_validator("*", mode="before")
    @classmethod
    def _as_typed(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_coercion(cls, value, info.field_name)


class KecamatanOut(BaseModel):
    code: str
    name: str
    lat: float | None = None
    lon: float | None = None


class KelurahanOut(BaseModel):
    code: str
    name: str
    kecamatan_code: str
    lat: float | None = None
    lon: float | None = None


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


class Deed(Strict):
    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    date: dt.date
    notary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]

    @field_validator("date")
    @classmethod
    def _not_future(cls, value: dt.date) -> dt.date:
        if value > dt.date.today():
            raise ValueError("the deed date cannot be in the future")
        return value


class CooperativeCreate(Strict):
    name: Name
    kelurahan_code: KelurahanCode
    formation: Literal["new", "revitalized"]
    deed: Deed | None = None
    business_units: list[BusinessUnit] = Field(
        default_factory=lambda: ["sembako"], max_length=len(BUSINESS_UNITS)
    )
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    registered_at: PastDatetime | None = Field(
        default=None,
        description="When the KKMP was registered, for records entered after the fact (default: now)",
    )


class CooperativeBatch(Strict):
    cooperatives: list[CooperativeCreate] = Field(min_length=1, max_length=5000)


class CooperativeUpdate(Strict):
    name: Name | None = None
    formation: Literal["new", "revitalized"] | None = None
    deed: Deed | None = None
    business_units: list[BusinessUnit] | None = Field(default=None, max_length=len(BUSINESS_UNITS))
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    status: Status | None = None
    status_reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class BoardMemberIn(Strict):
    name: Name
    position: Annotated[
        BoardPosition,
        BeforeValidator(lambda v: normalise_board_position(v) if isinstance(v, str) else v),
    ]
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    since: date | None = None


class BoardMemberOut(BaseModel):
    id: str
    name: str
    position: str
    phone: str | None = None
    since: date | None = None


class BoardIn(Strict):
    members: list[BoardMemberIn] = Field(max_length=30)


class DeedOut(BaseModel):
    number: str | None = None
    date: dt.date | None = None
    notary: str | None = None


class CooperativeOut(BaseModel):
    id: str
    name: str
    kelurahan_code: str
    kelurahan_name: str | None = None
    kecamatan_code: str
    kecamatan_name: str | None = None
    formation: str
    deed: DeedOut | None = None
    status: str
    business_units: list[str]
    board: list[BoardMemberOut] = []
    member_count: int
    address: str | None = None
    phone: str | None = None
    lat: float | None = None
    lon: float | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class CooperativeList(BaseModel):
    items: list[CooperativeOut]
    total: int
    limit: int
    offset: int


class StatusChangeOut(BaseModel):
    old_status: str | None
    new_status: str
    reason: str | None
    changed_by: str | None
    changed_by_username: str | None = None
    changed_at: UtcDatetime


class Business(Strict):
    sector: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
    products: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]] = (
        Field(default_factory=list, max_length=50)
    )


class MemberCreate(Strict):
    name: Name
    kind: Literal["resident", "umkm"]
    business: Business | None = None
    joined_at: PastDatetime | None = Field(
        default=None, description="When the member joined, for registers entered after the fact"
    )


class MemberBatch(Strict):
    members: list[MemberCreate] = Field(min_length=1, max_length=1000)


class MemberOut(BaseModel):
    id: str
    cooperative_id: str
    name: str
    kind: str
    business: Business | None = None
    joined_at: UtcDatetime


class MemberBatchOut(BaseModel):
    items: list[MemberOut]
    member_count: int


class MemberList(BaseModel):
    items: list[MemberOut]
    total: int


class PotentialCreate(Strict):
    sector: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]
    priority: int = Field(ge=1, le=5, description="1 = highest")


class PotentialOut(BaseModel):
    id: str
    kelurahan_code: str
    kecamatan_code: str | None = None
    cooperative_id: str | None = None
    sector: str
    description: str
    priority: int
    created_at: UtcDatetime


class PotentialList(BaseModel):
    items: list[PotentialOut]
    total: int


class TrainingCreate(Strict):
    title: Name
    topic: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    kecamatan_code: KecamatanCode | None = None
    starts_on: date
    ends_on: date | None = None
    location: Annotated[str, StringConstraints(max_length=200)] | None = None


class ParticipantIn(Strict):
    cooperative_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    name: Name
    role: Annotated[str, StringConstraints(max_length=40)] | None = None


class ParticipantsIn(Strict):
    participants: list[ParticipantIn] = Field(min_length=1, max_length=500)


class ParticipantOut(BaseModel):
    id: str
    cooperative_id: str
    name: str
    role: str | None = None
    attended: bool


class TrainingOut(BaseModel):
    id: str
    title: str
    topic: str
    description: str | None = None
    kecamatan_code: str | None = None
    starts_on: date
    ends_on: date | None = None
    location: str | None = None
    status: str
    completed_at: UtcDatetime | None = None
    participants: list[ParticipantOut] = []


class TrainingComplete(Strict):
    attended: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=5000, description="Participant ids who attended (default: all)"
    )
    completed_at: PastDatetime | None = Field(
        default=None, description="When it ended, for trainings recorded after the fact (default: now)"
    )


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-zA-Z0-9_.\-]{3,100}$"),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=200)]


class UserCreate(Strict):
    """Usernames are case-insensitive: they are stored in lower case and looked up that way."""

    username: Username
    password: Password
    role: Role
    cooperative_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    supplier_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    kecamatan_codes: list[KecamatanCode] = Field(default_factory=list, max_length=100)
    full_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    supervisor: bool = False


class UserOut(BaseModel):
    id: str
    username: str
    role: str
    cooperative_id: str | None = None
    supplier_id: str | None = None
    kecamatan_codes: list[str] = []
    full_name: str | None = None
    email: str | None = None
    supervisor: bool = False
    active: bool = True
    created_at: UtcDatetime


class PasswordChange(Strict):
    current_password: Annotated[str, StringConstraints(max_length=200)]
    new_password: Password


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ImportRowError(BaseModel):
    row: int
    field: str
    message: str


class ImportResult(BaseModel):
    imported: int
    ids: list[str]
