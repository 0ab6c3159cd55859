"""Composition root of reporting: builds the app and wires its dependencies.

Started as `uvicorn reporting.bootstrap:create_app --factory --port 8004`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from kkmp_shared import clock
from kkmp_shared.app import AppHook, create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.bootstrap import Platform, build_platform
from kkmp_shared.events.contracts import CooperativeHealthChanged, ReportOverdue, ReportSubmitted
from kkmp_shared.settings import ServiceSettings

from reporting.adapters import orm
from reporting.entrypoints.api import ROUTERS
from reporting.entrypoints.consumers import build_consumers
from reporting.service_layer import reports
from reporting.service_layer.context import ReportingContext, build_context
from reporting.settings import ReportingSettings

log = logging.getLogger("kkmp.reporting")

SERVICE_DIR = Path(__file__).resolve().parent.parent
MIGRATIONS = SERVICE_DIR / "migrations"


def background_jobs(ctx: ReportingContext, platform: Platform) -> list[AppHook]:
    """The refresher's loop and the two schedules, all run by the replica holding the lease."""
    settings, refresher = ctx.settings, ctx.refresher

    async def refresher_loop(_app: FastAPI) -> None:
        """Keeps health and the per-kecamatan rows caught up with the events consumed: in the replica
        that holds the refresher's lease (the others take it over when the holder stops renewing it)."""
        try:
            while True:
                try:
                    if await refresher.hold_lease():
                        await refresher.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("refresh cycle failed; retrying")
                await asyncio.sleep(settings.refresh_interval_s)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(refresher.release_lease())

    async def health_schedule(_app: FastAPI) -> None:
        """Every HEALTH_INTERVAL_S (and at start) every cooperative's health is recomputed: time alone
        moves its windows (30 days of sales, reports falling due)."""
        if settings.health_interval_s <= 0:
            return
        while True:
            try:
                if not await refresher.hold_lease():
                    # Not the holder: look again once a holder that died would have lost the lease.
                    await asyncio.sleep(min(settings.health_interval_s, settings.refresh_lease_s))
                    continue
                result = await refresher.recompute_all_health()
                log.info(
                    "scheduled health recompute: %d cooperatives, %d level changes in %.1fs",
                    result.cooperatives,
                    result.level_changes,
                    result.seconds,
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled health recompute failed")
            await asyncio.sleep(settings.health_interval_s)

    async def overdue_schedule(_app: FastAPI) -> None:
        """Every OVERDUE_INTERVAL_S (and at start) overdue monthly reports are announced."""
        if settings.overdue_interval_s <= 0:
            return
        while True:
            try:
                if not await refresher.hold_lease():
                    # Not the holder: look again once a holder that died would have lost the lease.
                    await asyncio.sleep(min(settings.overdue_interval_s, settings.refresh_lease_s))
                    continue
                async with platform.unit_of_work() as uow:
                    result = await reports.announce_overdue(
                        uow, ctx.rules, clock.now(), settings.overdue_lookback_periods
                    )
                if result["announced"]:
                    log.info("announced %d overdue reports", result["announced"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("overdue detection failed")
            await asyncio.sleep(settings.overdue_interval_s)

    return [refresher_loop, health_schedule, overdue_schedule]


def create_app(
    settings: ReportingSettings | None = None,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or ReportingSettings()
    platform = build_platform(settings, orm.messaging)
    ctx = build_context(settings, platform)
    return create_service_app(
        settings,
        title="KKMP Reporting",
        description=(
            "Read models built from every event: dashboards for Dinkopdag, cooperative health "
            "(hidup-matinya koperasi), monthly reports and their timeliness, exports and a public view."
        ),
        tables=orm.messaging,
        migrations=MIGRATIONS,
        routers=ROUTERS,
        publishes=[CooperativeHealthChanged, ReportSubmitted, ReportOverdue],
        consumers=build_consumers(platform, ctx.projector),
        background=background_jobs(ctx, platform),
        key_source=key_source,
        platform=platform,
        state={"reporting": ctx},
    )
