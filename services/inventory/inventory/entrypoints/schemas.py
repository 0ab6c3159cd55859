"""Request and response models of the inventory API.

Requests forbid unknown fields (a misspelt `quantiy` is a 422 naming it, not a silently ignored
field). Quantities are decimals with at most three places in the commodity's unit, shown as JSON
numbers; money is whole rupiah.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from kkmp_shared import clock
from kkmp_shared.timeutil import as_utc
from kkmp_shared.validation import COMMON_ERRORS as COMMON_ERRORS
from kkmp_shared.validation import NO_CONTROL as NO_CONTROL
from kkmp_shared.validation import TRIMMED, Strict
from kkmp_shared.validation import ErrorOut as ErrorOut
from kkmp_shared.validation import IsoDateTime as IsoDateTime
from kkmp_shared.validation import error_responses as error_responses
from pydantic import (
    BaseModel,
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
CommodityCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
Text300 = Annotated[str, StringConstraints(min_length=1, max_length=300), TRIMMED]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=100), TRIMMED]
CeilingKind = Literal["HET", "HAP"]


def _check_instant(value: datetime | None, info: ValidationInfo) -> datetime | None:
    if value is None:
        return None
    moment = as_utc(value)
    skew = (info.context or {}).get("clock_skew", DEFAULT_CLOCK_SKEW)
    if moment > clock.now() + skew:
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
    note: Annotated[str, StringConstraints(max_length=500), TRIMMED] | None = None
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
    name: Annotated[str, StringConstraints(min_length=2, max_length=100), TRIMMED]
    unit: Annotated[str, StringConstraints(min_length=1, max_length=20), TRIMMED]
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
    name: Annotated[str, StringConstraints(min_length=2, max_length=100), TRIMMED] | None = None
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
        moment = as_utc(value)
        if not EARLIEST <= moment <= clock.now() + timedelta(days=366):
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
