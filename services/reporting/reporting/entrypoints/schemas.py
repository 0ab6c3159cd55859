"""Request and response models of reporting's HTTP API.

Requests refuse unknown fields (422) and take money as whole rupiah (strict JSON integers).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from reporting.domain.periods import PERIOD_PATTERN

Rupiah = Annotated[int, Field(ge=0, le=10**15, strict=True)]
Count = Annotated[int, Field(ge=0, le=10**9, strict=True)]
PeriodText = Annotated[str, Field(pattern=PERIOD_PATTERN, examples=["2025-10"])]
Level = Literal["aktif", "kurang_aktif", "tidak_aktif"]


# NUL cannot be stored in (or even compared by) PostgreSQL and a lone surrogate cannot be encoded by
# either database; other C0 controls (tab and line breaks aside) have no place in a report. Refused as
# bad input (422) rather than failing in the database (500).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# Path and query parameters (ids, filters): no control characters at all.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


# A bare number in a query string is not a time the API documents (pydantic would read it as
# seconds since 1970): only ISO 8601 text is taken.
_BARE_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_text(value: Any) -> Any:
    if isinstance(value, str) and _BARE_NUMBER.fullmatch(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2025-01-31T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]


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
    if kinds & {date, datetime, AwareDatetime} and is_number:
        raise ValueError("expected an ISO 8601 date or date-time, e.g. 2025-01-31")
    if bool in kinds and not isinstance(value, bool) and not kinds & {int, float, str}:
        raise ValueError("expected true or false")
    if kinds & {int, float, Decimal} and isinstance(value, bool) and bool not in kinds:
        raise ValueError("expected a number")
    if kinds & {int, float} and isinstance(value, str) and not kinds & {str, Decimal}:
        raise ValueError("expected a number")
    return value


class Request(BaseModel):
    """Base of every request model: unknown fields are refused (422), text must be storable."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        if isinstance(value, str) and _UNSTORABLE.search(value):
            raise ValueError("text contains control or invalid characters")
        return value

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


# --- monthly reports ----------------------------------------------------------------------------


class ReportIn(Request):
    """A monthly report (laporan bulanan). `submitted_at` back-dates it (administrators only: for
    importing reports received on paper or seeding a demo); otherwise it is the time of the request."""

    period: PeriodText
    omzet: Rupiah
    transactions: Count
    members: Count
    simpanan: Rupiah | None = None
    notes: Annotated[str | None, Field(max_length=2000)] = None
    submitted_at: AwareDatetime | None = None


class ReportBatchItem(ReportIn):
    cooperative_id: Annotated[str, Field(min_length=1, max_length=36)]


class ReportBatchIn(Request):
    reports: Annotated[list[ReportBatchItem], Field(min_length=1, max_length=1000)]


class ReportOut(BaseModel):
    id: str
    cooperative_id: str
    kecamatan_code: str
    period: str
    omzet: int
    transactions: int
    members: int
    simpanan: int | None
    notes: str | None
    submitted_at: datetime
    submitted_by: str | None
    due_date: date
    on_time: bool


class ReportPage(BaseModel):
    items: list[ReportOut]
    total: int


class ReportBatchOut(BaseModel):
    created: int
    items: list[ReportOut]


class RateRow(BaseModel):
    kecamatan_code: str
    name: str
    expected: int
    submitted: int
    on_time: int
    late: int
    missing: int
    completeness_rate: float | None
    on_time_rate: float | None


class RatesOut(BaseModel):
    period: str
    due_date: date
    city: RateRow
    kecamatan: list[RateRow]


class OverdueRunIn(Request):
    as_of: AwareDatetime | None = None


class OverdueRunOut(BaseModel):
    as_of: datetime
    periods: list[str]
    announced: int
    by_period: dict[str, int]


# --- dashboards ---------------------------------------------------------------------------------


class ByHealth(BaseModel):
    aktif: int
    kurang_aktif: int
    tidak_aktif: int


class CooperativeFigures(BaseModel):
    total: int
    by_health: ByHealth


class NeedFigures(BaseModel):
    open: int
    unanswered: int
    responded: int
    median_response_hours: float | None


class StockFigures(BaseModel):
    stalled_items: int
    stalled_value: int
    low_items: int
    stockout_items: int


class ReportFigures(BaseModel):
    period: str | None
    expected: int
    submitted: int
    on_time: int
    completeness_rate: float | None
    on_time_rate: float | None


class Figures(BaseModel):
    cooperatives: CooperativeFigures
    needs: NeedFigures
    stock: StockFigures
    reports: ReportFigures


class SummaryOut(Figures):
    as_of: datetime


class KecamatanOut(Figures):
    """The same figures for one kecamatan; the list's `as_of` is in the `X-As-Of` header."""

    kecamatan_code: str
    name: str


class FactorOut(BaseModel):
    name: str
    value: float
    weight: float
    note: str


class HealthOut(BaseModel):
    cooperative_id: str
    score: float
    level: Level
    factors: list[FactorOut]
    computed_at: datetime


class StalledOut(BaseModel):
    cooperative_id: str
    cooperative_name: str | None
    kecamatan_code: str
    kelurahan_code: str | None
    commodity: str
    on_hand: float
    unit: str | None
    days_since_sale: int
    last_sale_at: datetime | None
    value: int
    since: datetime


class CooperativeRow(BaseModel):
    cooperative_id: str
    name: str
    kelurahan_code: str
    kelurahan_name: str | None
    kecamatan_code: str
    status: str
    member_count: int
    score: float | None
    level: Level | None
    health_computed_at: datetime | None


class CooperativePage(BaseModel):
    items: list[CooperativeRow]
    total: int


class WeekOut(BaseModel):
    week_start: date
    quantity: float
    value: int
    sales: int
    transactions: int
    stalled_value: int


class TimeseriesOut(BaseModel):
    kecamatan_code: str | None
    commodity: str | None
    cooperative_id: str | None
    weeks: list[WeekOut]


class ResponseGroup(BaseModel):
    key: str
    name: str | None = None
    responded: int
    median_hours: float | None
    open: int
    unanswered: int


class ResponseTimesOut(BaseModel):
    responded: int
    median_hours: float | None
    mean_hours: float | None
    open: int
    unanswered: int
    by_kecamatan: list[ResponseGroup]
    by_kind: list[ResponseGroup]


class PriceViolationOut(BaseModel):
    movement_id: str
    cooperative_id: str
    cooperative_name: str | None
    kecamatan_code: str
    commodity: str
    unit: str
    quantity: float
    unit_price: int
    price_ceiling: int
    excess: int
    occurred_at: datetime


class PriceViolationPage(BaseModel):
    items: list[PriceViolationOut]
    total: int
    total_excess_value: int


class RebuildOut(BaseModel):
    events_stored: int
    events_replayed: int
    cooperatives: int
    kecamatan: int
    seconds: float


class RecomputeOut(BaseModel):
    cooperatives: int
    level_changes: int
    kecamatan: int
