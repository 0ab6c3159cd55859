"""Sourcing settings (environment)."""

from __future__ import annotations

from pathlib import Path

from kkmp_shared.settings import ServiceSettings


class SourcingSettings(ServiceSettings):
    service_name: str = "sourcing"
    port: int = 8003
    # Reference data: kkmp_shared.refdata by default; overridable for tests and other cities.
    commodities_csv: Path | None = None
    coords_csv: Path | None = None
    # How many ranked suppliers a need keeps and announces.
    match_limit: int = 10
    # The delivery horizon assumed for a supply need without `needed_by`.
    default_horizon_days: int = 14
    # Stalled stock is offered to cooperatives within this distance, at most this many at once.
    redistribution_max_km: float = 30.0
    redistribution_max_takers: int = 5
    # A cooperative with low stock is assumed to need this many days of its average sales.
    low_stock_target_days: int = 14
    # Open needs and statistics look back this far by default.
    stats_window_days: int = 90
