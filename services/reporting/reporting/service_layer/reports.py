"""Monthly reports (laporan bulanan): submission, completeness and timeliness, overdue detection.

These are reporting's own records, not a projection: a cooperative (or an officer on its behalf)
submits here, and each submission is announced as `report.submitted.v1`. A report is on time when
it arrives on or before its due date (local calendar day). When a due date passes without a report,
`report.overdue.v1` is announced once per cooperative and period (the `report_overdue` table's key
makes a second run, or a second replica, announce nothing new).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import conflict, forbidden, unprocessable
from kkmp_shared.events.contracts import ReportOverdue, ReportSubmitted
from kkmp_shared.messaging.outbox import Outbox
from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.sql import mark_dirty
from reporting.domain.periods import DueRule, Period, local_date
from reporting.entrypoints.schemas import ReportIn
from reporting.service_layer import figures

# A clock a little ahead of ours is not "the future"; anything beyond is refused.
CLOCK_SKEW = timedelta(minutes=5)
BACKDATING_ROLES = ("admin", "service")


@dataclass(frozen=True)
class ReportRules:
    due: DueRule
    tz: tzinfo


def _validate(
    data: ReportIn, principal: Principal, rules: ReportRules, now: datetime, field_prefix: str = ""
) -> tuple[Period, datetime]:
    period = Period.parse(data.period)
    today = local_date(now, rules.tz)
    if period > Period.of(today):
        raise unprocessable(f"{field_prefix}period", "A report cannot be for a month that has not begun.")
    submitted_at = now
    if data.submitted_at is not None:
        if principal.role not in BACKDATING_ROLES:
            raise forbidden("Only an administrator may set submitted_at (back-date a report).")
        submitted_at = data.submitted_at.astimezone(UTC)
        if submitted_at > now + CLOCK_SKEW:
            raise unprocessable(f"{field_prefix}submitted_at", "submitted_at cannot be in the future.")
        if local_date(submitted_at, rules.tz) < period.first_day:
            raise unprocessable(
                f"{field_prefix}submitted_at", "A report cannot be submitted before its month begins."
            )
    return period, submitted_at


def _row(
    data: ReportIn,
    coop: KnownCooperative,
    principal: Principal,
    rules: ReportRules,
    period: Period,
    submitted_at: datetime,
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "cooperative_id": coop.id,
        "kecamatan_code": coop.kecamatan_code,
        "period": str(period),
        "omzet": data.omzet,
        "transactions": data.transactions,
        "members": data.members,
        "simpanan": data.simpanan,
        "notes": data.notes,
        "submitted_at": submitted_at,
        "submitted_by": principal.sub[:64],
        "due_date": rules.due.due_date(period),
        "on_time": rules.due.is_on_time(period, local_date(submitted_at, rules.tz)),
    }


def _event(row: dict[str, Any], coop: KnownCooperative) -> ReportSubmitted:
    return ReportSubmitted(
        cooperative_id=coop.id,
        kelurahan_code=coop.kelurahan_code,
        kecamatan_code=coop.kecamatan_code,
        report_id=row["id"],
        period=row["period"],
        submitted_at=row["submitted_at"],
        due_date=row["due_date"],
        on_time=row["on_time"],
        omzet=row["omzet"],
    )


async def submit_reports(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    rules: ReportRules,
    items: list[tuple[KnownCooperative, ReportIn]],
    *,
    now: datetime | None = None,
    field_prefix: str = "",
) -> list[dict[str, Any]]:
    """Record reports (all or none) and stage their events; the caller commits."""
    now = now or clock.now()
    rows, events = [], []
    for index, (coop, data) in enumerate(items):
        prefix = field_prefix.format(index=index)
        period, submitted_at = _validate(data, principal, rules, now, prefix)
        row = _row(data, coop, principal, rules, period, submitted_at)
        rows.append(row)
        events.append(_event(row, coop))
    keys = [(row["cooperative_id"], row["period"]) for row in rows]
    if len(set(keys)) != len(keys):
        raise conflict("report_exists", "The batch holds two reports for one cooperative and period.")
    r = orm.monthly_reports
    taken = (
        await session.execute(
            select(r.c.cooperative_id, r.c.period).where(
                r.c.cooperative_id.in_([k[0] for k in keys]), r.c.period.in_({k[1] for k in keys})
            )
        )
    ).all()
    clash = sorted({(c, p) for c, p in taken} & set(keys))
    if clash:
        raise conflict(
            "report_exists",
            "A report for this cooperative and period already exists.",
            [{"cooperative_id": c, "period": p} for c, p in clash],
        )
    try:
        await session.execute(r.insert(), rows)
    except IntegrityError as exc:  # a concurrent submission won the race
        raise conflict("report_exists", "A report for this cooperative and period already exists.") from exc
    await outbox.add_many(session, events)  # type: ignore[arg-type]
    for row in rows:
        await mark_dirty(session, row["cooperative_id"], row["kecamatan_code"])
    return rows


def report_out(row: Any) -> dict[str, Any]:
    mapping = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    return {
        k: mapping[k]
        for k in (
            "id",
            "cooperative_id",
            "kecamatan_code",
            "period",
            "omzet",
            "transactions",
            "members",
            "simpanan",
            "notes",
            "submitted_at",
            "submitted_by",
            "due_date",
            "on_time",
        )
    }


# --- completeness and timeliness ----------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def rate_row(code: str, name: str, counts: figures.ReportCounts) -> dict[str, Any]:
    late = counts.submitted - counts.on_time
    return {
        "kecamatan_code": code,
        "name": name,
        "expected": counts.expected,
        "submitted": counts.submitted,
        "on_time": counts.on_time,
        "late": late,
        "missing": max(0, counts.expected - counts.submitted),
        "completeness_rate": _rate(counts.submitted, counts.expected),
        "on_time_rate": _rate(counts.on_time, counts.expected),
    }


async def rates(
    session: AsyncSession, rules: ReportRules, period: Period, scope: list[str] | None, names: dict[str, str]
) -> dict[str, Any]:
    per_kecamatan = await figures.report_counts(session, period, rules.tz, rules.due, scope)
    codes = sorted(set(per_kecamatan) | (set(scope) if scope is not None else set(names)))
    rows = [
        rate_row(code, names.get(code, code), per_kecamatan.get(code, figures.ReportCounts()))
        for code in codes
    ]
    total = figures.ReportCounts(
        expected=sum(c.expected for c in per_kecamatan.values()),
        submitted=sum(c.submitted for c in per_kecamatan.values()),
        on_time=sum(c.on_time for c in per_kecamatan.values()),
    )
    return {
        "period": str(period),
        "due_date": rules.due.due_date(period),
        "city": rate_row(orm.ALL, "Kota" if scope is None else "Wilayah tugas", total),
        "kecamatan": rows,
    }


# --- overdue ------------------------------------------------------------------------------------


async def announce_overdue(
    session: AsyncSession,
    outbox: Outbox,
    rules: ReportRules,
    as_of: datetime,
    lookback: int,
    chunk: int = 5000,
) -> dict[str, Any]:
    """Announce `report.overdue.v1` for each expected report whose due date has passed by `as_of`
    and that is neither submitted nor already announced; the caller commits."""
    today = local_date(as_of, rules.tz)
    periods = rules.due.passed_periods(today, lookback)
    d, r, o = orm.known_cooperatives, orm.monthly_reports, orm.report_overdue
    by_period: dict[str, int] = {}
    for period in periods:
        due = rules.due.due_date(period)
        announced_already = exists().where(and_(o.c.cooperative_id == d.c.id, o.c.period == str(period)))
        candidates = (
            select(d.c.id, d.c.kelurahan_code, d.c.kecamatan_code)
            .select_from(figures.with_facts_and_report(period))
            .where(
                figures.expected_to_report(period, rules.tz, rules.due), r.c.id.is_(None), ~announced_already
            )
            .order_by(d.c.id)
        )
        found = 0
        rows = (await session.execute(candidates)).all()
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            await session.execute(
                o.insert(),
                [
                    {
                        "cooperative_id": c.id,
                        "period": str(period),
                        "kecamatan_code": c.kecamatan_code,
                        "due_date": due,
                        "detected_at": as_of,
                    }
                    for c in part
                ],
            )
            await outbox.add_many(
                session,
                [
                    ReportOverdue(
                        cooperative_id=c.id,
                        kelurahan_code=c.kelurahan_code,
                        kecamatan_code=c.kecamatan_code,
                        period=str(period),
                        due_date=due,
                        detected_at=as_of,
                    )
                    for c in part
                ],
            )
            found += len(part)
        by_period[str(period)] = found
    return {
        "as_of": as_of,
        "periods": [str(p) for p in periods],
        "announced": sum(by_period.values()),
        "by_period": by_period,
    }
