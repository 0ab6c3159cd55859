"""Reporting settings (environment): schedules, the report due rule and the health policy."""

from __future__ import annotations

from pathlib import Path

from kkmp_shared.settings import ServiceSettings
from pydantic import Field, model_validator

from reporting.domain.health import DEFAULT_WEIGHTS, HealthPolicy
from reporting.domain.periods import PERIOD_PATTERN, DueRule, Period


class ReportingSettings(ServiceSettings):
    service_name: str = "reporting"
    port: int = 8004
    # Reporting takes every stock movement of the city: larger batches (300, half the prefetch), fewer
    # transactions per event.
    prefetch: int = 600

    # Kecamatan names (the reference CSV of kecamatan and kelurahan); the repository's by default.
    regions_csv: Path | None = None

    # A period's monthly report is due on this day of the month `report_due_months_after` later.
    report_due_day: int = Field(default=10, ge=1, le=31)
    report_due_months_after: int = Field(default=1, ge=1, le=3)
    # From this period (YYYY-MM) every cooperative owes its monthly report, however late the registry
    # learnt of it (e.g. 2025-08: the KKMP were launched nationally in July 2025). Unset: each
    # cooperative from the month it was registered.
    reports_expected_from: str | None = Field(default=None, pattern=PERIOD_PATTERN)

    # How often the figures derived from the read model (health, per-kecamatan rows) catch up with
    # the events consumed since; they lag the events by at most about this long.
    refresh_interval_s: float = Field(default=1.0, gt=0)
    refresh_chunk: int = Field(default=2000, ge=1)
    # Replicas: the refresher's lease (which replica runs the refresh loop, the health recompute and
    # the overdue scan) lasts this long unless renewed; another replica takes over that long after
    # the holder dies. Renewed every cycle, so it must be well above `refresh_interval_s`.
    refresh_lease_s: float = Field(default=15.0, gt=0)
    # Every cooperative's health is recomputed on this schedule too (time alone moves the windows).
    # 0 turns the schedule off.
    health_interval_s: float = Field(default=3600.0, ge=0)
    # Overdue reports are looked for on this schedule (0 turns it off) and on demand.
    overdue_interval_s: float = Field(default=3600.0, ge=0)
    overdue_lookback_periods: int = Field(default=3, ge=1, le=24)

    # The health score: weights per factor and the level thresholds, plus each factor's target.
    health_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    health_aktif_min: float = 70.0
    health_kurang_aktif_min: float = 40.0
    health_sales_window_days: int = 30
    health_sale_days_target: int = 12
    health_unanswered_after_hours: float = 72.0
    health_unanswered_limit: int = 3
    health_report_periods: int = 3
    health_member_window_days: int = 90
    health_member_target: int = 5
    health_training_window_days: int = 365
    health_training_target: int = 1

    @model_validator(mode="after")
    def _valid_policy(self) -> ReportingSettings:
        self.health_policy()  # raises a clear error at start for a bad weight or threshold
        return self

    def health_policy(self) -> HealthPolicy:
        return HealthPolicy(
            weights=dict(self.health_weights),
            aktif_min=self.health_aktif_min,
            kurang_aktif_min=self.health_kurang_aktif_min,
            sales_window_days=self.health_sales_window_days,
            sale_days_target=self.health_sale_days_target,
            unanswered_after_hours=self.health_unanswered_after_hours,
            unanswered_limit=self.health_unanswered_limit,
            report_periods=self.health_report_periods,
            member_window_days=self.health_member_window_days,
            member_target=self.health_member_target,
            training_window_days=self.health_training_window_days,
            training_target=self.health_training_target,
        )

    def due_rule(self) -> DueRule:
        return DueRule(
            day=self.report_due_day,
            months_after=self.report_due_months_after,
            expected_from=Period.parse(self.reports_expected_from) if self.reports_expected_from else None,
        )
