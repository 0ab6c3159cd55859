"""Inventory settings (environment)."""

from __future__ import annotations

from pathlib import Path

from kkmp_shared.settings import ServiceSettings
from pydantic import Field


class InventorySettings(ServiceSettings):
    service_name: str = "inventory"
    port: int = 8002
    # Seconds between scheduled detection scans; 0 disables the schedule (on-demand runs still work).
    detection_interval_s: float = Field(default=300, ge=0)
    # The catalogue seed; defaults to kkmp_shared.refdata's commodities.csv.
    commodities_csv: Path | None = None
    # Idempotency keys are kept this long; a retry after that is treated as a new request.
    idempotency_ttl_h: int = Field(default=72, ge=1)
    # The stock page's read cache (`inventory.adapters.stock_cache`): a cooperative's copy is kept at
    # most this many seconds, so a write made through another replica is seen within it (this replica's
    # own writes at once); 0 turns the cache off.
    stock_cache_ttl_s: float = Field(default=2.0, ge=0)
    # How many cooperatives' copies are kept (least recently read go first).
    stock_cache_size: int = Field(default=2048, ge=0)
