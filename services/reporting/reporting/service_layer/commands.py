"""What reporting's use cases are asked to do, as plain values (the routes build them from requests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SubmitReport:
    """A monthly report (laporan bulanan); `submitted_at` back-dates it (administrators only)."""

    cooperative_id: str
    period: str
    omzet: int
    transactions: int
    members: int
    simpanan: int | None = None
    notes: str | None = None
    submitted_at: datetime | None = None
