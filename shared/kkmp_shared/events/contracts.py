"""The data of every event type in the contract: the single source of truth.

Producers build these models; consumers parse into them (unknown fields are ignored, so additive
changes never break an older consumer). A breaking change is a new version: a new class with `.v2`.
The AsyncAPI document every service serves is generated from this module.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

HealthLevel = Literal["aktif", "kurang_aktif", "tidak_aktif"]
MovementKind = Literal["receipt", "sale", "adjustment", "transfer_in", "transfer_out", "spoilage"]
NeedKind = Literal["supply", "capital", "training", "other"]
NeedStatus = Literal["open", "acknowledged", "in_progress", "resolved", "rejected"]


class EventData(BaseModel):
    """Base of every event's `data`."""

    model_config = ConfigDict(extra="ignore")
    event_type: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # A high-volume stream (one event per movement, member or delivery). A service's outbox publishes
    # its other events first, so that an alert (a detection scan's stalls) never waits behind a backlog
    # of thousands of `stock.moved`; each lane keeps the order in which the events were written.
    bulk: ClassVar[bool] = False


class CooperativeRef(EventData):
    cooperative_id: str
    kelurahan_code: str
    kecamatan_code: str


# --- registry -----------------------------------------------------------------------------------


class CooperativeRegistered(CooperativeRef):
    event_type: ClassVar[str] = "cooperative.registered.v1"
    summary: ClassVar[str] = "A KKMP was registered for a kelurahan."
    name: str
    kelurahan_name: str | None = None
    formation: Literal["new", "revitalized"]
    status: str
    business_units: list[str] = []
    lat: float | None = None
    lon: float | None = None
    registered_at: datetime


class CooperativeUpdated(CooperativeRef):
    event_type: ClassVar[str] = "cooperative.updated.v1"
    summary: ClassVar[str] = "A cooperative's profile or status changed; carries the full new state."
    name: str
    kelurahan_name: str | None = None
    formation: Literal["new", "revitalized"]
    status: str
    business_units: list[str] = []
    lat: float | None = None
    lon: float | None = None
    member_count: int = 0
    changed: list[str] = []
    updated_at: datetime


class MemberJoined(CooperativeRef):
    event_type: ClassVar[str] = "member.joined.v1"
    summary: ClassVar[str] = "A resident or UMKM joined a cooperative."
    bulk: ClassVar[bool] = True
    member_id: str
    kind: Literal["resident", "umkm"]
    sector: str | None = None
    products: list[str] = []
    member_count: int
    joined_at: datetime


class PotentialMapped(EventData):
    event_type: ClassVar[str] = "potential.mapped.v1"
    summary: ClassVar[str] = "A kelurahan's economic potential was mapped."
    potential_id: str
    kelurahan_code: str
    kecamatan_code: str
    cooperative_id: str | None = None
    sector: str
    description: str
    priority: int


class TrainingCompleted(CooperativeRef):
    event_type: ClassVar[str] = "training.completed.v1"
    summary: ClassVar[str] = "A training finished; one event per participating cooperative."
    training_id: str
    title: str
    topic: str
    participants: int
    completed_at: datetime


class UserCreated(EventData):
    event_type: ClassVar[str] = "user.created.v1"
    summary: ClassVar[str] = "A user account was created (who they are and what they may see)."
    user_id: str
    username: str
    full_name: str | None = None
    email: str | None = None
    role: Literal["admin", "officer", "coop_manager", "supplier", "service"]
    cooperative_id: str | None = None
    # The cooperative's, as every event involving a cooperative carries them (a coop_manager's only).
    kelurahan_code: str | None = None
    kecamatan_code: str | None = None
    supplier_id: str | None = None
    kecamatan_codes: list[str] = []
    supervisor: bool = False


# --- inventory ----------------------------------------------------------------------------------


class StockMoved(CooperativeRef):
    event_type: ClassVar[str] = "stock.moved.v1"
    summary: ClassVar[str] = "One movement was recorded in a cooperative's stock ledger."
    bulk: ClassVar[bool] = True
    movement_id: str
    commodity: str
    kind: MovementKind
    quantity: Decimal
    unit: str
    unit_price: int | None = None
    value: int | None = None
    on_hand_after: Decimal
    occurred_at: datetime
    reference: str | None = None
    # Signed change in stock on hand (negative for sales, transfers out, spoilage, decreasing adjustments).
    delta: Decimal | None = None
    # Average unit cost booked with the movement (whole rupiah), and why it happened.
    unit_cost: int | None = None
    reason: str | None = None
    note: str | None = None


class StockLow(CooperativeRef):
    event_type: ClassVar[str] = "stock.low.v1"
    summary: ClassVar[str] = "Days of cover fell below the threshold (an episode starts)."
    commodity: str
    on_hand: Decimal
    unit: str
    avg_daily_sales: Decimal
    days_of_cover: Decimal
    detected_at: datetime
    low_cover_days: int | None = None


class StockStockout(CooperativeRef):
    event_type: ClassVar[str] = "stock.stockout.v1"
    summary: ClassVar[str] = "Stock reached zero while it was still selling (an episode starts)."
    commodity: str
    unit: str
    last_sale_at: datetime | None = None
    detected_at: datetime


class StockStalled(CooperativeRef):
    event_type: ClassVar[str] = "stock.stalled.v1"
    summary: ClassVar[str] = "Stock on hand stopped selling (stok macet; an episode starts)."
    commodity: str
    on_hand: Decimal
    unit: str
    last_sale_at: datetime | None = None
    days_since_sale: int
    value: int
    unit_cost: int | None = None
    detected_at: datetime
    # The threshold in force and when the stock last moved (last sale, transfer out or oldest receipt).
    stall_days: int | None = None
    unmoved_since: datetime | None = None


class StockRecovered(CooperativeRef):
    event_type: ClassVar[str] = "stock.recovered.v1"
    summary: ClassVar[str] = "A stalled, low or stockout episode ended."
    commodity: str
    condition: Literal["stalled", "low", "stockout"]
    on_hand: Decimal
    unit: str
    detected_at: datetime


class PriceCeilingExceeded(CooperativeRef):
    event_type: ClassVar[str] = "price.ceiling_exceeded.v1"
    summary: ClassVar[str] = "A sale was priced above the commodity's ceiling (HET/HAP)."
    movement_id: str
    commodity: str
    unit: str
    quantity: Decimal
    unit_price: int
    price_ceiling: int
    excess: int
    occurred_at: datetime
    # HET (binding maximum) or HAP (reference price); excess over the whole sale (excess × quantity).
    ceiling_kind: str | None = None
    total_excess: int | None = None


# --- sourcing -----------------------------------------------------------------------------------


class NeedSubmitted(CooperativeRef):
    event_type: ClassVar[str] = "need.submitted.v1"
    summary: ClassVar[str] = "A cooperative posted a need or obstacle (kebutuhan/kendala)."
    need_id: str
    kind: NeedKind
    commodity: str | None = None
    quantity: Decimal | None = None
    unit: str | None = None
    needed_by: date | None = None
    description: str
    submitted_at: datetime
    submitted_by: str | None = None


class NeedStatusChanged(CooperativeRef):
    event_type: ClassVar[str] = "need.status_changed.v1"
    summary: ClassVar[str] = "An officer moved a need along its lifecycle."
    need_id: str
    kind: NeedKind
    commodity: str | None = None
    old_status: NeedStatus
    new_status: NeedStatus
    note: str | None = None
    submitted_at: datetime
    changed_at: datetime
    changed_by: str | None = None


class SupplierMatch(BaseModel):
    supplier_id: str
    score: float
    quantity: Decimal | None = None
    unit_price: int | None = None
    lead_time_days: int | None = None
    distance_km: float | None = None
    reasons: list[str] = []


class SupplierMatched(CooperativeRef):
    event_type: ClassVar[str] = "supplier.matched.v1"
    summary: ClassVar[str] = "Suppliers were ranked for a supply need."
    need_id: str
    commodity: str
    quantity: Decimal | None = None
    matches: list[SupplierMatch]
    split: bool = False
    # When `split`: how the quantity divides over suppliers (supplier_id, quantity, unit_price).
    split_parts: list[SupplierMatch] = []


class RedistributionProposed(CooperativeRef):
    """`cooperative_*` is the cooperative whose stock stalled; `to_*` the one that needs it."""

    event_type: ClassVar[str] = "redistribution.proposed.v1"
    summary: ClassVar[str] = "Moving stalled stock to a cooperative that needs it was proposed."
    proposal_id: str
    commodity: str
    quantity: Decimal
    unit: str | None = None
    from_cooperative_id: str
    to_cooperative_id: str
    to_kelurahan_code: str
    to_kecamatan_code: str
    distance_km: float
    reason: str | None = None
    proposed_at: datetime


class RedistributionAccepted(CooperativeRef):
    event_type: ClassVar[str] = "redistribution.accepted.v1"
    summary: ClassVar[str] = "Both sides accepted; inventory records the transfer out and in."
    proposal_id: str
    commodity: str
    quantity: Decimal
    unit: str | None = None
    unit_cost: int | None = None
    from_cooperative_id: str
    to_cooperative_id: str
    to_kelurahan_code: str
    to_kecamatan_code: str
    accepted_at: datetime


class OrderPlaced(CooperativeRef):
    event_type: ClassVar[str] = "order.placed.v1"
    summary: ClassVar[str] = "An order was placed with a supplier for a need."
    order_id: str
    need_id: str | None = None
    supplier_id: str
    commodity: str
    quantity: Decimal
    unit_price: int
    placed_at: datetime
    # A pooled order (several cooperatives' needs) announces one event per cooperative, same order_id.
    pooled: bool = False
    total_quantity: Decimal | None = None


class OrderDelivered(CooperativeRef):
    """One event per delivery to one cooperative; inventory records it as a receipt."""

    event_type: ClassVar[str] = "order.delivered.v1"
    summary: ClassVar[str] = "Goods of an order were delivered to a cooperative."
    order_id: str
    delivery_id: str
    need_id: str | None = None
    supplier_id: str
    commodity: str
    quantity: Decimal
    unit_price: int
    delivered_at: datetime
    complete: bool = True


# --- reporting ----------------------------------------------------------------------------------


class CooperativeHealthChanged(CooperativeRef):
    event_type: ClassVar[str] = "cooperative.health_changed.v1"
    summary: ClassVar[str] = "A cooperative's health level changed (hidup-matinya koperasi)."
    cooperative_name: str | None = None
    old_level: HealthLevel | None = None
    new_level: HealthLevel
    score: float
    changed_at: datetime


class ReportSubmitted(CooperativeRef):
    event_type: ClassVar[str] = "report.submitted.v1"
    summary: ClassVar[str] = "A cooperative submitted its monthly report."
    report_id: str
    period: str
    submitted_at: datetime
    due_date: date
    on_time: bool
    omzet: int | None = None


class ReportOverdue(CooperativeRef):
    event_type: ClassVar[str] = "report.overdue.v1"
    summary: ClassVar[str] = "A monthly report's due date passed without a report."
    period: str
    due_date: date
    detected_at: datetime


# --- notifications ------------------------------------------------------------------------------


class NotificationDelivered(EventData):
    event_type: ClassVar[str] = "notification.delivered.v1"
    summary: ClassVar[str] = "A notification reached its recipient on a channel."
    bulk: ClassVar[bool] = True
    delivery_id: str
    channel: Literal["inbox", "email", "webhook"]
    recipient: str
    source_event_id: str
    source_event_type: str
    cooperative_id: str | None = None
    attempts: int = 1
    delivered_at: datetime


class NotificationFailed(EventData):
    event_type: ClassVar[str] = "notification.failed.v1"
    summary: ClassVar[str] = "A notification could not be delivered after all its attempts."
    bulk: ClassVar[bool] = True
    delivery_id: str
    channel: Literal["inbox", "email", "webhook"]
    recipient: str
    source_event_id: str
    source_event_type: str
    cooperative_id: str | None = None
    attempts: int
    error: str
    failed_at: datetime


EVENT_MODELS: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        CooperativeRegistered,
        CooperativeUpdated,
        MemberJoined,
        PotentialMapped,
        TrainingCompleted,
        UserCreated,
        StockMoved,
        StockLow,
        StockStockout,
        StockStalled,
        StockRecovered,
        PriceCeilingExceeded,
        NeedSubmitted,
        NeedStatusChanged,
        SupplierMatched,
        RedistributionProposed,
        RedistributionAccepted,
        OrderPlaced,
        OrderDelivered,
        CooperativeHealthChanged,
        ReportSubmitted,
        ReportOverdue,
        NotificationDelivered,
        NotificationFailed,
    )
}


def event_model(event_type: str) -> type[EventData]:
    """The data model of an event type; KeyError for a type the contract does not know."""
    return EVENT_MODELS[event_type]
