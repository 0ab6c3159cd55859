"""Request and response models of reporting's HTTP API.

Requests refuse unknown fields (422) and take money as whole rupiah (strict JSON integers).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from kkmp_shared.validation import COMMON_ERRORS as COMMON_ERRORS
from kkmp_shared.validation import NO_CONTROL as NO_CONTROL
from kkmp_shared.validation import ErrorOut as ErrorOut
from kkmp_shared.validation import IsoDateTime as IsoDateTime
from kkmp_shared.validation import Strict
from kkmp_shared.validation import error_responses as error_responses
from pydantic import AwareDatetime, BaseModel, Field

from reporting.domain.periods import PERIOD_PATTERN

Rupiah = Annotated[int, Field(ge=0, le=10**15, strict=True)]
Count = Annotated[int, Field(ge=0, le=10**9, strict=True)]
PeriodText = Annotated[str, Field(pattern=PERIOD_PATTERN, examples=["2025-10"])]
Level = Literal["aktif", "kurang_aktif", "tidak_aktif"]


# --- monthly reports ----------------------------------------------------------------------------


class ReportIn(Strict):
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


class ReportBatchIn(Strict):
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


class OverdueRunIn(Strict):
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
