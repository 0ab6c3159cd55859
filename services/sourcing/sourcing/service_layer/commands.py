"""What the use cases are asked to do, as plain values: the routes build these from the request models,
so the service layer never imports the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from kkmp_shared.events.contracts import NeedKind, NeedStatus

from sourcing.domain.matching import PriceTier

# --- suppliers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferTerms:
    commodity: str
    unit_price: int
    capacity_per_week: Decimal
    lead_time_days: int
    min_order: Decimal = Decimal(0)
    price_tiers: tuple[PriceTier, ...] = ()


@dataclass(frozen=True)
class RegisterSupplier:
    name: str
    kind: str = "wholesaler"
    contact: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    service_kecamatan_codes: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    offers: tuple[OfferTerms, ...] = ()


@dataclass(frozen=True)
class ChangeSupplier:
    """Only the fields the caller gave: a field set to None is a change too (and may be refused)."""

    changes: Mapping[str, Any]


@dataclass(frozen=True)
class ReplaceOffers:
    offers: tuple[OfferTerms, ...]


# --- needs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitNeed:
    cooperative_id: str
    kind: NeedKind
    description: str
    commodity: str | None = None
    quantity: Decimal | None = None
    amount: int | None = None
    needed_by: date | None = None
    submitted_at: datetime | None = None


@dataclass(frozen=True)
class ChangeNeedStatus:
    status: NeedStatus
    note: str | None = None
    assigned_to: str | None = None
    changed_at: datetime | None = None


# --- redistribution -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerProposal:
    decision: Literal["accept", "decline"]
    side: Literal["from", "to", "both"] | None = None
    note: str | None = None


# --- orders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceOrder:
    need_id: str
    supplier_id: str
    quantity: Decimal
    unit_price: int | None = None
    note: str | None = None
    placed_at: datetime | None = None


@dataclass(frozen=True)
class PlacePooledOrder:
    need_ids: tuple[str, ...]
    supplier_id: str
    unit_price: int | None = None
    note: str | None = None
    placed_at: datetime | None = None


@dataclass(frozen=True)
class ConfirmOrder:
    note: str | None = None
    confirmed_at: datetime | None = None


@dataclass(frozen=True)
class Allocation:
    cooperative_id: str
    quantity: Decimal


@dataclass(frozen=True)
class RecordDelivery:
    quantity: Decimal | None = None
    allocations: tuple[Allocation, ...] = field(default=())
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class CancelOrder:
    reason: str | None = None
