"""What the inventory's use cases are asked to do: one dataclass per request, built by an entrypoint
(an HTTP route, a consumer, the schedule) from what it parsed, so use cases never see HTTP models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from inventory.domain.ledger import MovementDraft


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's Idempotency-Key and the fingerprint of the body it came with."""

    key: str
    request_hash: str


@dataclass(frozen=True)
class RecordMovements:
    """Record movements for one cooperative, in order, all or none. `batch`: a batch request (its
    movements get a batch id and errors name their index)."""

    cooperative_id: str
    movements: list[MovementDraft]
    recorded_by: str
    now: datetime
    batch: bool = False
    idempotency: IdempotencyKey | None = None


@dataclass(frozen=True)
class SeedCatalogue:
    csv_path: Path
    ceiling_history: Path | None = None


@dataclass(frozen=True)
class AddCommodity:
    code: str
    name: str
    unit: str
    stall_days: int
    low_cover_days: int
    typical_price: int | None
    price_ceiling: int | None
    ceiling_kind: str | None
    legal_basis: str | None
    recorded_by: str


@dataclass(frozen=True)
class ChangeCommodity:
    """`changes`: only the fields the client sent (name, stall_days, low_cover_days, typical_price,
    active, and price_ceiling with ceiling_kind and legal_basis for a new ceiling from now)."""

    code: str
    changes: Mapping[str, Any]
    recorded_by: str


@dataclass(frozen=True)
class SetCeiling:
    code: str
    price_ceiling: int | None
    ceiling_kind: str | None
    legal_basis: str | None
    effective_from: datetime | None  # None: from now on
    recorded_by: str


@dataclass(frozen=True)
class RunDetection:
    as_of: datetime | None = None  # None: now
    trigger: str = "api"
    kecamatan_codes: list[str] | None = None  # None: the whole city
    requested_by: str | None = None
    wait: bool = True  # False: skip (None) when another scan is running
