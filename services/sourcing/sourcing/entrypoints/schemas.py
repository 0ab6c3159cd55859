"""Request and response models of the sourcing API.

Request models forbid unknown fields, so a misspelt or privileged field is refused (422) rather than
silently dropped. Quantities are exact decimals on the way in and plain JSON numbers on the way out;
money is whole rupiah.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from kkmp_shared.http import KecamatanCode as KecamatanCode
from kkmp_shared.validation import COMMON_ERRORS as COMMON_ERRORS
from kkmp_shared.validation import NO_CONTROL as NO_CONTROL
from kkmp_shared.validation import TRIMMED, Strict
from kkmp_shared.validation import IsoDateTime as IsoDateTime
from kkmp_shared.validation import error_responses as error_responses
from pydantic import BaseModel, Field, PlainSerializer, StringConstraints, model_validator

from sourcing.domain.needs import NEED_KINDS, NEED_STATUSES


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


QuantityOut = Annotated[Decimal, PlainSerializer(_number, return_type=int | float, when_used="json")]
QuantityIn = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=3, allow_inf_nan=False)]
NonNegativeQuantity = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=3, allow_inf_nan=False)]
Rupiah = Annotated[int, Field(gt=0, le=10_000_000_000)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000), TRIMMED]
Name = Annotated[str, StringConstraints(min_length=2, max_length=200), TRIMMED]
CommodityCode = Annotated[str, StringConstraints(min_length=1, max_length=50), TRIMMED]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64), TRIMMED]
NeedKind = Literal[NEED_KINDS]  # type: ignore[valid-type]
NeedStatus = Literal[NEED_STATUSES]  # type: ignore[valid-type]
SupplierKind = Literal[
    "bulog", "pertamina_agent", "pangkalan", "wholesaler", "umkm_producer", "partner_region", "other"
]


# --- suppliers ----------------------------------------------------------------------------------


class PriceTierIn(Strict):
    min_quantity: QuantityIn
    unit_price: Rupiah


class OfferIn(Strict):
    commodity: CommodityCode
    unit_price: Rupiah
    min_order: NonNegativeQuantity = Decimal(0)
    capacity_per_week: QuantityIn
    lead_time_days: int = Field(ge=0, le=365)
    price_tiers: list[PriceTierIn] = Field(default_factory=list, max_length=10)


def _unique_commodities(offers: list[OfferIn]) -> list[OfferIn]:
    seen: set[str] = set()
    for offer in offers:
        if offer.commodity in seen:
            raise ValueError(f"commodity {offer.commodity} is offered twice")
        seen.add(offer.commodity)
    return offers


class SupplierCreate(Strict):
    name: Name
    kind: SupplierKind = "wholesaler"
    contact: Annotated[str, StringConstraints(max_length=300), TRIMMED] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    email: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    service_kecamatan_codes: list[KecamatanCode] = Field(
        default_factory=list, max_length=100, description="Kecamatan served; empty = the whole city"
    )
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    offers: list[OfferIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _check(self) -> SupplierCreate:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        _unique_commodities(self.offers)
        return self


class SupplierBatch(Strict):
    suppliers: list[SupplierCreate] = Field(min_length=1, max_length=500)


class SupplierUpdate(Strict):
    name: Name | None = None
    kind: SupplierKind | None = None
    contact: Annotated[str, StringConstraints(max_length=300), TRIMMED] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    email: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    service_kecamatan_codes: list[KecamatanCode] | None = Field(default=None, max_length=100)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    active: bool | None = None


class OffersIn(Strict):
    offers: list[OfferIn] = Field(max_length=50)

    @model_validator(mode="after")
    def _check(self) -> OffersIn:
        _unique_commodities(self.offers)
        return self


class PriceTierOut(BaseModel):
    min_quantity: QuantityOut
    unit_price: int


class OfferOut(BaseModel):
    commodity: str
    unit: str | None = None
    unit_price: int
    min_order: QuantityOut
    capacity_per_week: QuantityOut
    lead_time_days: int
    price_tiers: list[PriceTierOut] = []


class PerformanceOut(BaseModel):
    orders: int
    on_time: int
    on_time_rate: float | None
    fill_rate: float | None


class SupplierOut(BaseModel):
    id: str
    name: str
    kind: str
    contact: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    service_kecamatan_codes: list[str]
    lat: float | None = None
    lon: float | None = None
    active: bool
    offers: list[OfferOut]
    performance: PerformanceOut
    created_at: datetime
    updated_at: datetime


class SupplierList(BaseModel):
    items: list[SupplierOut]
    total: int
    limit: int
    offset: int


class BatchCreated(BaseModel):
    created: int
    ids: list[str]


# --- needs --------------------------------------------------------------------------------------


class NeedCreate(Strict):
    cooperative_id: Id
    kind: NeedKind
    commodity: CommodityCode | None = None
    quantity: QuantityIn | None = None
    amount: Rupiah | None = Field(default=None, description="Rupiah asked for (capital needs)")
    needed_by: date | None = None
    description: Text
    submitted_at: datetime | None = Field(
        default=None, description="Back-dated submission (admin only: importing history, demo seed)"
    )

    @model_validator(mode="after")
    def _supply(self) -> NeedCreate:
        if self.kind == "supply":
            missing = [f for f in ("commodity", "quantity") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a supply need needs {' and '.join(missing)}")
        return self


class NeedBatch(Strict):
    needs: list[NeedCreate] = Field(min_length=1, max_length=500)


class NeedStatusIn(Strict):
    status: NeedStatus
    note: Annotated[str, StringConstraints(max_length=2000), TRIMMED] | None = None
    assigned_to: Annotated[str, StringConstraints(max_length=200), TRIMMED] | None = None
    changed_at: datetime | None = Field(default=None, description="Back-dated change (admin only)")


class CommentIn(Strict):
    text: Text


class MatchOut(BaseModel):
    supplier_id: str
    supplier_name: str | None = None
    rank: int
    score: float
    unit_price: int
    lead_time_days: int
    can_fill_quantity: QuantityOut
    distance_km: float | None = None
    on_time: bool
    components: dict[str, float]
    reasons: list[str]


class SplitPartOut(BaseModel):
    supplier_id: str
    supplier_name: str | None = None
    quantity: QuantityOut
    unit_price: int
    cost: int


class SplitOut(BaseModel):
    parts: list[SplitPartOut]
    quantity: QuantityOut
    shortfall: QuantityOut
    complete: bool
    cost: int


class HistoryOut(BaseModel):
    old_status: str | None = None
    status: str
    note: str | None = None
    assigned_to: str | None = None
    changed_by: str | None = None
    changed_by_role: str | None = None
    at: datetime


class CommentOut(BaseModel):
    id: str
    need_id: str
    text: str
    author: str | None = None
    author_name: str | None = None
    author_role: str
    created_at: datetime


class NeedOut(BaseModel):
    id: str
    cooperative_id: str
    cooperative_name: str | None = None
    kelurahan_code: str
    kecamatan_code: str
    kind: str
    commodity: str | None = None
    unit: str | None = None
    quantity: QuantityOut | None = None
    ordered_quantity: QuantityOut | None = None
    amount: int | None = None
    needed_by: date | None = None
    description: str
    status: str
    assigned_to: str | None = None
    submitted_at: datetime
    created_at: datetime
    submitted_by: str | None = None
    responded_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    status_changed_at: datetime
    response_hours: float | None = None
    resolution_hours: float | None = None


class NeedDetail(NeedOut):
    matches: list[MatchOut] = []
    split: SplitOut | None = None
    matched_at: datetime | None = None
    history: list[HistoryOut] = []
    comments: list[CommentOut] = []


class NeedList(BaseModel):
    items: list[NeedOut]
    total: int
    limit: int
    offset: int


class NeedFigures(BaseModel):
    total: int
    open: int
    by_status: dict[str, int]
    answered: int
    median_response_hours: float | None
    avg_response_hours: float | None
    median_resolution_hours: float | None
    avg_resolution_hours: float | None
    answered_within_24h_share: float | None
    unanswered_over_24h: int
    oldest_open_hours: float | None


class KecamatanFigures(NeedFigures):
    kecamatan_code: str


class NeedStats(NeedFigures):
    kecamatan_code: str | None = None
    since: datetime
    until: datetime
    open_now: int
    by_kecamatan: list[KecamatanFigures] | None = None


class PoolNeed(BaseModel):
    need_id: str
    cooperative_id: str
    quantity: QuantityOut
    needed_by: date | None = None


class PoolOut(BaseModel):
    commodity: str
    unit: str | None
    total_quantity: QuantityOut
    needs: list[PoolNeed]
    best_supplier_id: str | None = None
    best_supplier_name: str | None = None
    pooled_unit_price: int | None = None
    separate_cost: int | None = None
    pooled_cost: int | None = None
    saving: int | None = None


# --- redistribution -----------------------------------------------------------------------------


class DecisionIn(Strict):
    side: Literal["from", "to", "both"] | None = Field(
        default=None, description="Which side answers (default: every side the caller speaks for)"
    )
    note: Annotated[str, StringConstraints(max_length=1000), TRIMMED] | None = None


class SideOut(BaseModel):
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None


class RedistributionOut(BaseModel):
    id: str
    stalled_item_id: str
    commodity: str
    unit: str | None = None
    quantity: QuantityOut
    unit_cost: int | None = None
    from_cooperative_id: str
    from_kelurahan_code: str
    from_kecamatan_code: str
    to_cooperative_id: str
    to_kelurahan_code: str
    to_kecamatan_code: str
    distance_km: float | None = None
    reason: str
    need_id: str | None = None
    status: str
    from_side: SideOut
    to_side: SideOut
    created_at: datetime
    closed_at: datetime | None = None


class RedistributionList(BaseModel):
    items: list[RedistributionOut]
    total: int
    limit: int
    offset: int


class SuggestionOut(BaseModel):
    code: str
    text: str


class StalledItemOut(BaseModel):
    id: str
    cooperative_id: str
    kelurahan_code: str
    kecamatan_code: str
    commodity: str
    unit: str | None = None
    on_hand: QuantityOut
    allocated_quantity: QuantityOut
    unit_cost: int | None = None
    value: int | None = None
    last_sale_at: datetime | None = None
    days_since_sale: int
    status: str
    suggestions: list[SuggestionOut]
    detected_at: datetime
    recovered_at: datetime | None = None


class StalledItemList(BaseModel):
    items: list[StalledItemOut]
    total: int
    limit: int
    offset: int


# --- orders -------------------------------------------------------------------------------------


class OrderCreate(Strict):
    need_id: Id
    supplier_id: Id
    quantity: QuantityIn
    unit_price: Rupiah | None = Field(default=None, description="Agreed price; default: the offer's")
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    placed_at: datetime | None = Field(default=None, description="Back-dated placement (admin only)")


class PooledOrderCreate(Strict):
    need_ids: list[Id] = Field(min_length=2, max_length=200)
    supplier_id: Id
    unit_price: Rupiah | None = None
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    placed_at: datetime | None = Field(default=None, description="Back-dated placement (admin only)")


class ConfirmIn(Strict):
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    confirmed_at: datetime | None = Field(default=None, description="Back-dated confirmation (admin only)")


class AllocationIn(Strict):
    cooperative_id: Id
    quantity: QuantityIn


class DeliverIn(Strict):
    quantity: QuantityIn | None = None
    allocations: list[AllocationIn] | None = Field(default=None, min_length=1, max_length=200)
    delivered_at: datetime | None = None


class CancelIn(Strict):
    reason: Annotated[str, StringConstraints(max_length=1000), TRIMMED] | None = None


class OrderLineOut(BaseModel):
    id: str
    need_id: str | None = None
    cooperative_id: str
    kelurahan_code: str
    kecamatan_code: str
    quantity: QuantityOut
    delivered_quantity: QuantityOut


class DeliveryOut(BaseModel):
    delivery_id: str
    cooperative_id: str
    quantity: QuantityOut
    complete: bool
    delivered_at: datetime


class OrderOut(BaseModel):
    id: str
    supplier_id: str
    supplier_name: str | None = None
    commodity: str
    unit: str | None = None
    quantity: QuantityOut
    delivered_quantity: QuantityOut
    unit_price: int
    total_price: int
    pooled: bool
    status: str
    note: str | None = None
    need_id: str | None = None
    need_ids: list[str]
    cooperative_id: str | None = None
    lines: list[OrderLineOut]
    deliveries: list[DeliveryOut] = []
    due_on: date
    placed_at: datetime
    created_at: datetime
    confirmed_at: datetime | None = None
    delivered_at: datetime | None = None
    delivered_on_time: bool | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class OrderList(BaseModel):
    items: list[OrderOut]
    total: int
    limit: int
    offset: int


JsonDict = dict[str, Any]
