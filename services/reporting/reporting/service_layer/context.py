"""What reporting's handlers share: its rules (calendar, health policy), the projector and refresher.

Built once from the platform by the composition root (`bootstrap.py`) or by the rebuild command, and
handed to the routes (as `app.state.reporting`), consumers and background jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from kkmp_shared import clock
from kkmp_shared.bootstrap import Platform

from reporting.adapters.regions import load_kecamatan_names
from reporting.adapters.views.kecamatan_list import KecamatanList
from reporting.domain.health import HealthPolicy
from reporting.domain.periods import DueRule, Period, zone
from reporting.service_layer.projections import Projector
from reporting.service_layer.refresh import Refresher
from reporting.service_layer.reports import ReportRules
from reporting.settings import ReportingSettings


@dataclass
class ReportingContext:
    settings: ReportingSettings
    tz: tzinfo
    due: DueRule
    policy: HealthPolicy
    names: dict[str, str]
    projector: Projector
    refresher: Refresher
    rules: ReportRules
    kecamatan_list: KecamatanList = field(default_factory=KecamatanList)

    def as_of(self) -> datetime:
        """When the derived figures were last brought up to date (now, before the first cycle)."""
        return self.refresher.last_completed_at or clock.now()

    def current_period(self, now: datetime | None = None) -> Period:
        return self.refresher.current_period(now or clock.now())


def build_context(settings: ReportingSettings, platform: Platform) -> ReportingContext:
    tz = zone(settings.timezone)
    due = settings.due_rule()
    policy = settings.health_policy()
    return ReportingContext(
        settings=settings,
        tz=tz,
        due=due,
        policy=policy,
        names=load_kecamatan_names(settings.regions_csv),
        projector=Projector(tz),
        refresher=Refresher(
            platform,
            policy=policy,
            due=due,
            tz=tz,
            chunk=settings.refresh_chunk,
            lease_s=settings.refresh_lease_s,
        ),
        rules=ReportRules(due=due, tz=tz),
    )
