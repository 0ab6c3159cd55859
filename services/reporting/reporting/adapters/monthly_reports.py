"""Reporting's own records: the monthly reports submitted here and the overdue announcements made."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import figures, orm
from reporting.domain.periods import DueRule, Period

r, o, d = orm.monthly_reports, orm.report_overdue, orm.known_cooperatives


class ReportTaken(Exception):
    """A report for one of these cooperatives and periods was recorded meanwhile."""


async def existing(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (cooperative, period) keys already have a report."""
    taken = (
        await session.execute(
            select(r.c.cooperative_id, r.c.period).where(
                r.c.cooperative_id.in_([k[0] for k in keys]), r.c.period.in_({k[1] for k in keys})
            )
        )
    ).all()
    return {(c, p) for c, p in taken} & set(keys)


async def add(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    try:
        await session.execute(r.insert(), rows)
    except IntegrityError as exc:  # a concurrent submission won the race
        raise ReportTaken from exc


async def overdue_candidates(session: AsyncSession, period: Period, tz: tzinfo, due: DueRule) -> list[Any]:
    """Cooperatives expected to report for `period` that have neither reported nor been announced."""
    announced_already = exists().where(and_(o.c.cooperative_id == d.c.id, o.c.period == str(period)))
    candidates = (
        select(d.c.id, d.c.kelurahan_code, d.c.kecamatan_code)
        .select_from(figures.with_facts_and_report(period))
        .where(figures.expected_to_report(period, tz, due), r.c.id.is_(None), ~announced_already)
        .order_by(d.c.id)
    )
    return list((await session.execute(candidates)).all())


async def record_overdue(
    session: AsyncSession, cooperatives: Sequence[Any], period: Period, due_date: date, detected_at: datetime
) -> None:
    await session.execute(
        o.insert(),
        [
            {
                "cooperative_id": c.id,
                "period": str(period),
                "kecamatan_code": c.kecamatan_code,
                "due_date": due_date,
                "detected_at": detected_at,
            }
            for c in cooperatives
        ],
    )
