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
from kkmp_shared.auth import Principal, ensure_can_write
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import ApiError, conflict, forbidden, not_found, unprocessable
from kkmp_shared.events.contracts import ReportOverdue, ReportSubmitted
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import figures, monthly_reports, orm
from reporting.adapters.directory import directory, known_cooperatives
from reporting.adapters.sql import mark_dirty
from reporting.domain.periods import DueRule, Period, local_date
from reporting.service_layer.commands import SubmitReport

# A clock a little ahead of ours is not "the future"; anything beyond is refused.
CLOCK_SKEW = timedelta(minutes=5)
BACKDATING_ROLES = ("admin", "service")


@dataclass(frozen=True)
class ReportRules:
    due: DueRule
    tz: tzinfo


def _validate(
    data: SubmitReport, principal: Principal, rules: ReportRules, now: datetime, field_prefix: str = ""
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
    data: SubmitReport,
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


async def submit_report(
    uow: UnitOfWork, principal: Principal, rules: ReportRules, command: SubmitReport
) -> dict[str, Any]:
    """One cooperative's report, by its manager or by staff who may write for it."""
    coop = await directory.get(uow.session, command.cooperative_id)
    if coop is None:
        if principal.role in ("supplier",) or (
            principal.role == "coop_manager" and principal.cooperative_id != command.cooperative_id
        ):
            raise forbidden("You may only change your own cooperative's data.")
        raise not_found("cooperative")
    ensure_can_write(principal, coop.id, coop.kecamatan_code)
    [row] = await submit_reports(uow, principal, rules, [(coop, command)])
    return row


async def submit_report_batch(
    uow: UnitOfWork, principal: Principal, rules: ReportRules, commands: list[SubmitReport]
) -> list[dict[str, Any]]:
    """Up to a thousand reports at once, all or none (administrators: imports and demo seeds)."""
    if principal.role not in ("admin", "service"):
        raise forbidden("Batch submission is for administrators.")
    known = await known_cooperatives(uow.session, {command.cooperative_id for command in commands})
    missing = [
        {
            "field": f"reports.{i}.cooperative_id",
            "message": "Unknown cooperative.",
            "type": "unknown_cooperative",
        }
        for i, command in enumerate(commands)
        if command.cooperative_id not in known
    ]
    if missing:
        raise ApiError(422, "unknown_cooperative", "Some reports name an unknown cooperative.", missing)
    items = [(known[command.cooperative_id], command) for command in commands]
    return await submit_reports(uow, principal, rules, items, field_prefix="reports.{index}.")


async def submit_reports(
    uow: UnitOfWork,
    principal: Principal,
    rules: ReportRules,
    items: list[tuple[KnownCooperative, SubmitReport]],
    *,
    now: datetime | None = None,
    field_prefix: str = "",
) -> list[dict[str, Any]]:
    """Record reports (all or none) and stage their events in the unit of work."""
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
    clash = sorted(await monthly_reports.existing(uow.session, keys))
    if clash:
        raise conflict(
            "report_exists",
            "A report for this cooperative and period already exists.",
            [{"cooperative_id": c, "period": p} for c, p in clash],
        )
    try:
        await monthly_reports.add(uow.session, rows)
    except monthly_reports.ReportTaken as exc:
        raise conflict("report_exists", "A report for this cooperative and period already exists.") from exc
    await uow.publish_many(events)  # type: ignore[arg-type]
    for row in rows:
        await mark_dirty(uow.session, row["cooperative_id"], row["kecamatan_code"])
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
    uow: UnitOfWork, rules: ReportRules, as_of: datetime, lookback: int, chunk: int = 5000
) -> dict[str, Any]:
    """Announce `report.overdue.v1` for each expected report whose due date has passed by `as_of`
    and that is neither submitted nor already announced."""
    today = local_date(as_of, rules.tz)
    periods = rules.due.passed_periods(today, lookback)
    by_period: dict[str, int] = {}
    for period in periods:
        due = rules.due.due_date(period)
        rows = await monthly_reports.overdue_candidates(uow.session, period, rules.tz, rules.due)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            await monthly_reports.record_overdue(uow.session, part, period, due, as_of)
            await uow.publish_many(
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
        by_period[str(period)] = len(rows)
    return {
        "as_of": as_of,
        "periods": [str(p) for p in periods],
        "announced": sum(by_period.values()),
        "by_period": by_period,
    }
