"""Reporting's use cases through the platform's unit of work, on a throw-away SQLite database: a
report and its event commit together or not at all, overdue reports are announced once; and the rule
that picks the cooperatives to visit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.bootstrap import Platform
from kkmp_shared.db import Database
from kkmp_shared.errors import ApiError
from kkmp_shared.events.envelope import new_event
from kkmp_shared.messaging.outbox import Outbox
from reporting.adapters import orm
from reporting.bootstrap import MIGRATIONS
from reporting.domain.periods import Period, local_date, zone
from reporting.domain.visits import visit_list
from reporting.service_layer import reports
from reporting.service_layer.commands import SubmitReport
from reporting.service_layer.context import ReportingContext, build_context
from reporting.service_layer.projections import record
from reporting.settings import ReportingSettings
from reporting_testkit import Coop, days_ago, fresh_kecamatan
from sqlalchemy import func, select

pytestmark = [pytest.mark.integration, pytest.mark.clock]
WIB = zone("Asia/Jakarta")


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")
    await db.migrate(MIGRATIONS)
    yield Platform(
        ReportingSettings(demo=True), orm.messaging, db, Outbox(orm.messaging, source="/reporting")
    )
    await db.dispose()


async def registered(platform: Platform, ctx: ReportingContext, coop: Coop, days: int = 200) -> None:
    data = coop.registered(days_ago(days))
    async with platform.unit_of_work() as uow:
        await record(uow, ctx.projector, new_event(data, source="/registry"), data)


async def counts(platform: Platform) -> tuple[int, int]:
    """Reports recorded, events staged in the outbox."""
    async with platform.db.session() as session:
        recorded = (await session.execute(select(func.count()).select_from(orm.monthly_reports))).scalar_one()
        staged = (await session.execute(select(func.count()).select_from(orm.messaging.outbox))).scalar_one()
    return int(recorded), int(staged)


def this_month(shift: int = 0) -> str:
    return str(Period.of(local_date(clock.now(), WIB)).shift(shift))


async def test_a_report_and_its_event_commit_together_and_a_second_one_for_the_period_is_refused(
    platform: Platform,
) -> None:
    ctx = build_context(ReportingSettings(demo=True), platform)
    coop = Coop(fresh_kecamatan(), "KKMP Uji")
    await registered(platform, ctx, coop)
    manager = Principal(sub="m1", role="coop_manager", cooperative_id=coop.id)
    command = SubmitReport(
        cooperative_id=coop.id, period=this_month(), omzet=1_000_000, transactions=9, members=20
    )
    async with platform.unit_of_work() as uow:
        row = await reports.submit_report(uow, manager, ctx.rules, command)
    assert row["cooperative_id"] == coop.id and row["kecamatan_code"] == coop.kecamatan_code
    assert await counts(platform) == (1, 1)

    with pytest.raises(ApiError) as refused:
        async with platform.unit_of_work() as uow:
            await reports.submit_report(uow, manager, ctx.rules, command)
    assert (refused.value.status, refused.value.code) == (409, "report_exists")
    assert await counts(platform) == (1, 1)


async def test_a_batch_with_one_bad_report_records_and_announces_nothing(platform: Platform) -> None:
    ctx = build_context(ReportingSettings(demo=True), platform)
    coop = Coop(fresh_kecamatan(), "KKMP Uji")
    await registered(platform, ctx, coop)
    admin = Principal(sub="a1", role="admin")
    good = SubmitReport(cooperative_id=coop.id, period=this_month(), omzet=1, transactions=1, members=1)
    future = SubmitReport(cooperative_id=coop.id, period=this_month(2), omzet=1, transactions=1, members=1)
    with pytest.raises(ApiError) as refused:
        async with platform.unit_of_work() as uow:
            await reports.submit_report_batch(uow, admin, ctx.rules, [good, future])
    assert refused.value.status == 422 and refused.value.details[0]["field"] == "reports.1.period"
    assert await counts(platform) == (0, 0)


async def test_overdue_reports_are_announced_once(platform: Platform) -> None:
    ctx = build_context(ReportingSettings(demo=True), platform)
    await registered(platform, ctx, Coop(fresh_kecamatan(), "KKMP Diam"), days=200)
    now = clock.now()
    async with platform.unit_of_work() as uow:
        first = await reports.announce_overdue(uow, ctx.rules, now, 3)
    async with platform.unit_of_work() as uow:
        again = await reports.announce_overdue(uow, ctx.rules, now, 3)
    assert first["announced"] == 3 and again["announced"] == 0
    assert await counts(platform) == (0, 3)


def test_a_cooperative_is_visited_for_each_reason_it_gives_worst_health_first() -> None:
    period = Period.parse("2025-10")
    row = {
        "cooperative_id": "c1",
        "status": "operating",
        "health_level": "aktif",
        "health_score": 80.0,
        "stalled_items": 0,
        "stalled_value": 0,
        "report_status": "tepat_waktu",
    }
    sick = {
        **row,
        "cooperative_id": "c2",
        "health_level": "tidak_aktif",
        "health_score": 20.0,
        "stalled_items": 2,
        "stalled_value": 1_250_000,
        "report_status": "belum",
    }
    quiet = {**row, "cooperative_id": "c3", "health_level": "kurang_aktif", "health_score": 50.0}
    visits = visit_list([row, quiet, sick], {"c3": 2}, period)
    assert [v["cooperative_id"] for v in visits] == ["c2", "c3"]
    assert visits[0]["reasons"] == [
        "kesehatan tidak aktif (20)",
        "2 stok macet (Rp1.250.000)",
        "laporan 2025-10 belum masuk",
    ]
    assert visits[1]["reasons"] == ["kesehatan kurang aktif (50)", "2 kebutuhan belum ditanggapi"]
