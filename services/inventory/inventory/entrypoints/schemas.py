"""Request and response models of the inventory API.

Requests forbid unknown fields (a misspelt `quantiy` is a 422 naming it, not a silently ignored
field). Quantities are decimals with at most three places in the commodity's unit, shown as JSON
numbers; money is whole rupiah.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inventory.domain.ledger import MovementKind

MAX_BATCH = 1000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)

# Decimal in, JSON number out: portals and spreadsheets compare numbers, and three places are exact.
Quantity = Annotated[Decimal, PlainSerializer(lambda d: float(d), return_type=float, when_used="json")]
Rupiah = Annotated[int, Field(ge=0, le=10**12)]
CommodityCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_]{1,39}$")]
Text300 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
CeilingKind = Literal["HET", "HAP"]


# NUL cannot be stored in PostgreSQL text and a lone surrogate cannot be encoded by either database;
# other C0 controls (tab and line breaks aside) have no place in catalogue or ledger text. Refused as
# bad input (422) rather than failing in the database (500).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# Path and query parameters (ids, codes, filters): no control characters at all.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


# A bare number in a query string is not a time the API documents (pydantic would read it as
# seconds since 1970): only ISO 8601 text is taken.
_BARE_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_text(value: Any) -> Any:
    if isinstance(value, str) and _BARE_NUMBER.fullmatch(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2025-01-31T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]


def _storable(value: Any) -> Any:
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
    def _storable_text(cls, value: Any) -> Any:
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


def _check_instant(value: datetime | None, info: ValidationInfo) -> datetime | None:
    if value is None:
        return None
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    skew = (info.context or {}).get("clock_skew", DEFAULT_CLOCK_SKEW)
    if moment > datetime.now(UTC) + skew:
        raise ValueError("must not be in the future")
    if moment < EARLIEST:
        raise ValueError("must be after 2000-01-01")
    return moment


class MovementIn(Strict):
    commodity: CommodityCode
    kind: MovementKind
    quantity: Decimal = Field(
        max_digits=15,
        decimal_places=3,
        description="Greater than zero, at most three decimals, in the commodity's unit. An adjustment "
        "is signed: a negative quantity (or direction 'decrease') takes stock off.",
    )
    unit_price: Rupiah | None = Field(
        default=None,
        description="Rupiah per unit: the cost of a receipt or transfer in, the price of a sale.",
    )
    occurred_at: datetime | None = Field(
        default=None, description="When it happened (default: now); may be back-dated, not in the future."
    )
    reference: Reference | None = Field(
        default=None, description="The document (delivery note, receipt); unique per cooperative and kind."
    )
    reason: Text300 | None = Field(
        default=None, validate_default=True, description="Why; required for an adjustment."
    )
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    direction: Literal["increase", "decrease"] | None = Field(
        default=None,
        validate_default=True,
        description="Adjustments only: the sign, for clients that send positive quantities.",
    )

    # Field validators (not a model validator) so that each error names its field in `details`.
    @field_validator("quantity")
    @classmethod
    def _positive(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        if value == 0:
            raise ValueError("must be greater than zero")
        if value < 0 and info.data.get("kind") != "adjustment":
            raise ValueError("must be greater than zero (only an adjustment may be negative)")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _not_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return _check_instant(value, info)

    @field_validator("reason")
    @classmethod
    def _reason_for_adjustment(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("kind") == "adjustment":
            raise ValueError("an adjustment needs a reason")
        return value

    @field_validator("direction")
    @classmethod
    def _direction_for_adjustment(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("kind") != "adjustment":
            raise ValueError("only an adjustment takes a direction")
        quantity = info.data.get("quantity")
        if value == "increase" and quantity is not None and quantity < 0:
            raise ValueError("contradicts the negative quantity")
        return value

    @property
    def decrease(self) -> bool:
        return self.quantity < 0 or self.direction == "decrease"


def _field_error(field: str, message: str) -> ValueError:
    # A model-level error is reported at the model: the message names the field for the client.
    return ValueError(f"{field}: {message}")


class MovementBatchIn(Strict):
    movements: list[MovementIn] = Field(min_length=1, max_length=MAX_BATCH)


class MovementOut(BaseModel):
    id: str
    cooperative_id: str
    commodity: str
    kind: str
    quantity: Quantity
    delta: Quantity
    unit: str
    unit_price: int | None = None
    unit_cost: int | None = None
    value: int | None = None
    on_hand_after: Quantity
    price_ceiling: int | None = None
    ceiling_excess: int | None = None
    occurred_at: datetime
    recorded_at: datetime
    reference: str | None = None
    reason: str | None = None
    note: str | None = None
    batch_id: str | None = None


class MovementBatchOut(BaseModel):
    batch_id: str
    count: int
    movements: list[MovementOut]


class MovementPage(BaseModel):
    items: list[MovementOut]
    total: int


class StockLine(BaseModel):
    commodity: str
    name: str
    unit: str
    on_hand: Quantity
    last_sale_at: datetime | None = None
    avg_daily_sales: Quantity
    days_of_cover: Quantity | None = None
    status: Literal["ok", "low", "stockout", "stalled"]
    unmoved_since: datetime | None = None
    days_since_sale: int | None = None
    unit_cost: int | None = None
    value: int
    price_ceiling: int | None = None
    episode: str | None = Field(default=None, description="The episode last announced for this item.")
    episode_since: datetime | None = None


class CityStockLine(StockLine):
    cooperative_id: str
    kelurahan_code: str
    kecamatan_code: str


class CityStockPage(BaseModel):
    items: list[CityStockLine]
    total: int


class ValuationLine(BaseModel):
    commodity: str
    unit: str
    on_hand: Quantity
    unit_cost: int | None = None
    value: int


class Valuation(BaseModel):
    cooperative_id: str
    method: Literal["average_cost"] = "average_cost"
    total_value: int
    items: list[ValuationLine]


class CommodityOut(BaseModel):
    code: str
    name: str
    unit: str
    price_ceiling: int | None = None
    ceiling_kind: CeilingKind | None = None
    legal_basis: str | None = None
    ceiling_effective_from: datetime | None = None
    stall_days: int
    low_cover_days: int
    typical_price: int | None = None
    active: bool
    updated_at: datetime


class CommodityIn(Strict):
    code: CommodityCode
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    price_ceiling: Annotated[int, Field(ge=1, le=10**10)] | None = None
    ceiling_kind: CeilingKind | None = None
    legal_basis: Text300 | None = None
    stall_days: Annotated[int, Field(ge=1, le=365)] = 14
    low_cover_days: Annotated[int, Field(ge=1, le=365)] = 7
    typical_price: Annotated[int, Field(ge=0, le=10**10)] | None = None

    @model_validator(mode="after")
    def _kind_with_ceiling(self) -> CommodityIn:
        if self.price_ceiling is not None and self.ceiling_kind is None:
            raise _field_error("ceiling_kind", "say whether the ceiling is a HET or a HAP")
        return self


class CommodityUpdate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)] | None = None
    stall_days: Annotated[int, Field(ge=1, le=365)] | None = None
    low_cover_days: Annotated[int, Field(ge=1, le=365)] | None = None
    typical_price: Annotated[int, Field(ge=0, le=10**10)] | None = None
    active: bool | None = None
    price_ceiling: Annotated[int, Field(ge=1, le=10**10)] | None = Field(
        default=None, description="A new ceiling in force from now (null removes it); the old one is kept."
    )
    ceiling_kind: CeilingKind | None = None
    legal_basis: Text300 | None = None


class CeilingIn(Strict):
    price_ceiling: Annotated[int, Field(ge=1, le=10**10)] | None
    ceiling_kind: CeilingKind | None = None
    legal_basis: Text300 | None = None
    effective_from: datetime | None = Field(default=None, description="Default: now. May be in the future.")

    @model_validator(mode="after")
    def _kind_with_ceiling(self) -> CeilingIn:
        if self.price_ceiling is not None and self.ceiling_kind is None:
            raise _field_error("ceiling_kind", "say whether the ceiling is a HET or a HAP")
        return self


class CeilingOut(BaseModel):
    price_ceiling: int | None = None
    ceiling_kind: str | None = None
    legal_basis: str | None = None
    effective_from: datetime
    in_force: bool
    upcoming: bool


class DetectionRunIn(Strict):
    as_of: datetime | None = Field(
        default=None, description="Judge the stock as of this instant (default: now)."
    )

    @field_validator("as_of")
    @classmethod
    def _sane(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if not EARLIEST <= moment <= datetime.now(UTC) + timedelta(days=366):
            raise ValueError("must be between 2000-01-01 and a year from now")
        return moment


class EpisodeCounts(BaseModel):
    stalled: int
    low: int
    stockout: int


class DetectionRunOut(BaseModel):
    as_of: datetime
    trigger: str
    items_scanned: int
    stalled: int
    low: int
    stockout: int
    started: EpisodeCounts
    recovered: EpisodeCounts
    announced: int
    duration_ms: int


class DetectionRunRecord(BaseModel):
    id: int
    trigger: str
    as_of: datetime
    started_at: datetime
    duration_ms: int
    scope: dict[str, Any]
    counts: dict[str, Any]
    requested_by: str | None = None
