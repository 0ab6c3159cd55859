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
from kkmp_shared.app import create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.events.contracts import CooperativeHealthChanged, ReportOverdue, ReportSubmitted
from kkmp_shared.settings import ServiceSettings

from reporting.adapters import orm
from reporting.domain.periods import zone
from reporting.entrypoints.api import ROUTERS
from reporting.entrypoints.consumers import build_consumers
from reporting.service_layer import reports
from reporting.service_layer.context import ReportingContext, build_context
from reporting.service_layer.projections import Projector
from reporting.settings import ReportingSettings

log = logging.getLogger("kkmp.reporting")

SERVICE_DIR = Path(__file__).resolve().parent.parent
MIGRATIONS = SERVICE_DIR / "migrations"


def _context(app: FastAPI) -> ReportingContext:
    return app.state.reporting


async def refresher_loop(app: FastAPI) -> None:
    """Keeps health and the per-kecamatan rows caught up with the events consumed: in the replica that
    holds the refresher's lease (the others take it over when the holder stops renewing it)."""
    ctx = _context(app)
    try:
        while True:
            try:
                if await ctx.refresher.hold_lease():
                    await ctx.refresher.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refresh cycle failed; retrying")
            await asyncio.sleep(ctx.settings.refresh_interval_s)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(ctx.refresher.release_lease())


async def health_schedule(app: FastAPI) -> None:
    """Every HEALTH_INTERVAL_S (and at start) every cooperative's health is recomputed: time alone
    moves its windows (30 days of sales, reports falling due)."""
    ctx = _context(app)
    if ctx.settings.health_interval_s <= 0:
        return
    while True:
        try:
            if not await ctx.refresher.hold_lease():
                # Not the holder: look again once a holder that died would have lost the lease.
                await asyncio.sleep(min(ctx.settings.health_interval_s, ctx.settings.refresh_lease_s))
                continue
            result = await ctx.refresher.recompute_all_health()
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
        await asyncio.sleep(ctx.settings.health_interval_s)


async def overdue_schedule(app: FastAPI) -> None:
    """Every OVERDUE_INTERVAL_S (and at start) overdue monthly reports are announced."""
    ctx = _context(app)
    if ctx.settings.overdue_interval_s <= 0:
        return
    while True:
        try:
            if not await ctx.refresher.hold_lease():
                # Not the holder: look again once a holder that died would have lost the lease.
                await asyncio.sleep(min(ctx.settings.overdue_interval_s, ctx.settings.refresh_lease_s))
                continue
            async with app.state.db.transaction() as session:
                result = await reports.announce_overdue(
                    session,
                    app.state.outbox,
                    ctx.rules,
                    clock.now(),
                    ctx.settings.overdue_lookback_periods,
                )
            if result["announced"]:
                log.info("announced %d overdue reports", result["announced"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("overdue detection failed")
        await asyncio.sleep(ctx.settings.overdue_interval_s)


def create_app(
    settings: ReportingSettings | None = None,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or ReportingSettings()
    # The subscriptions need the projector before the app (and its database) exists.
    projector = Projector(zone(settings.timezone))
    app = create_service_app(
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
        consumers=build_consumers(projector),
        background=[refresher_loop, health_schedule, overdue_schedule],
        key_source=key_source,
    )
    app.state.reporting = build_context(settings, app.state.db, app.state.outbox, projector)
    return app
