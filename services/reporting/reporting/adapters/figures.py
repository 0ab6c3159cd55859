"""Set-based figures over the read model: health inputs per cooperative, counts per kecamatan,
response-time medians, report completeness and timeliness.

Everything here is one grouped query per figure for a set of cooperatives or kecamatan (never a
query per row), so the same code serves one cooperative, a dirty chunk, or all 80,000.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from reporting.adapters import orm
from reporting.adapters.sql import dialect_of
from reporting.domain.health import HealthInputs, HealthPolicy
from reporting.domain.needs import OPEN_STATUSES, median
from reporting.domain.periods import DueRule, Period, local_date

d = orm.known_cooperatives
f = orm.cooperative_facts
r = orm.monthly_reports


@dataclass(frozen=True)
class CoopIdentity:
    id: str
    name: str
    kelurahan_code: str
    kelurahan_name: str | None
    kecamatan_code: str
    status: str
    member_count: int
    registered_at: datetime | None


def _in(column: Any, keys: Sequence[str] | None) -> ColumnElement[bool]:
    return column.in_(list(keys)) if keys is not None else literal(True)


def expected_to_report(period: Period, tz: tzinfo, due: DueRule) -> ColumnElement[bool]:
    """A cooperative is expected to report for a period when it is not dissolved and it existed during
    the period (registered before its end, or registration unknown), or reported for it anyway, or the
    rule expects every cooperative from that period on.

    Needs `known_cooperatives` outer-joined to `cooperative_facts`, and to the period's
    `monthly_reports` row.
    """
    if due.expects_everyone(period):
        return d.c.status != "dissolved"
    return and_(
        d.c.status != "dissolved",
        or_(f.c.registered_at.is_(None), f.c.registered_at < period.ends_at(tz), r.c.id.is_not(None)),
    )


def with_facts_and_report(period: Period) -> Any:
    return d.outerjoin(f, f.c.cooperative_id == d.c.id).outerjoin(
        r, and_(r.c.cooperative_id == d.c.id, r.c.period == str(period))
    )


# --- health ---------------------------------------------------------------------------------------


@dataclass
class HealthContext:
    policy: HealthPolicy
    due: DueRule
    tz: tzinfo


def _of(column: Any, ids: Sequence[str], id_range: tuple[str, str] | None) -> ColumnElement[bool]:
    """Rows of these cooperatives: an id range when the caller walks the directory in order (an index
    range scan), else the list of ids."""
    if id_range is not None:
        return column.between(*id_range)
    return column.in_(list(ids))


async def cooperatives(
    session: AsyncSession, ids: Sequence[str], id_range: tuple[str, str] | None = None
) -> list[CoopIdentity]:
    rows = await session.execute(
        select(
            d.c.id,
            d.c.name,
            d.c.kelurahan_code,
            d.c.kelurahan_name,
            d.c.kecamatan_code,
            d.c.status,
            d.c.member_count,
            f.c.registered_at,
        )
        .select_from(d.outerjoin(f, f.c.cooperative_id == d.c.id))
        .where(_of(d.c.id, ids, id_range))
    )
    return [CoopIdentity(*row) for row in rows.all()]


async def health_inputs(
    session: AsyncSession,
    coops: Sequence[CoopIdentity],
    now: datetime,
    ctx: HealthContext,
    id_range: tuple[str, str] | None = None,
) -> dict[str, HealthInputs]:
    """What each cooperative's health is computed from, as of `now`."""
    if not coops:
        return {}
    ids = [c.id for c in coops]
    policy, tz = ctx.policy, ctx.tz
    today = local_date(now, tz)
    daily = orm.coop_sales_daily
    # Windows are whole local days ending today: "the last 30 days" is today and the 29 before.
    sales_from = today - timedelta(days=policy.sales_window_days - 1)
    sales = {
        row[0]: (int(row[1]), int(row[2] or 0))
        for row in await session.execute(
            select(daily.c.cooperative_id, func.count(), func.sum(daily.c.sale_value))
            .where(
                _of(daily.c.cooperative_id, ids, id_range),
                daily.c.day >= sales_from,
                daily.c.day <= today,
                daily.c.sale_count > 0,
            )
            .group_by(daily.c.cooperative_id)
        )
    }
    members_from = today - timedelta(days=policy.member_window_days - 1)
    daily_members = orm.coop_members_daily
    members = {
        row[0]: int(row[1] or 0)
        for row in await session.execute(
            select(daily_members.c.cooperative_id, func.sum(daily_members.c.members_joined))
            .where(
                _of(daily_members.c.cooperative_id, ids, id_range),
                daily_members.c.day >= members_from,
                daily_members.c.day <= today,
                daily_members.c.members_joined > 0,
            )
            .group_by(daily_members.c.cooperative_id)
        )
    }
    s = orm.stock_items
    stock = {
        row[0]: (int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))
        for row in await session.execute(
            select(
                s.c.cooperative_id,
                func.sum(case((or_(s.c.on_hand_milli > 0, s.c.stalled), 1), else_=0)),
                func.sum(case((s.c.stalled, 1), else_=0)),
                func.sum(case((s.c.stalled, s.c.stalled_value), else_=0)),
            )
            .where(_of(s.c.cooperative_id, ids, id_range))
            .group_by(s.c.cooperative_id)
        )
    }
    n = orm.needs
    unanswered_before = now - timedelta(hours=policy.unanswered_after_hours)
    unanswered = {
        row[0]: int(row[1])
        for row in await session.execute(
            select(n.c.cooperative_id, func.count())
            .where(
                _of(n.c.cooperative_id, ids, id_range),
                n.c.status == "open",
                n.c.submitted_at <= unanswered_before,
            )
            .group_by(n.c.cooperative_id)
        )
    }
    periods = ctx.due.passed_periods(today, policy.report_periods)
    reported: dict[str, dict[str, bool]] = defaultdict(dict)
    for coop_id, period, on_time in await session.execute(
        select(r.c.cooperative_id, r.c.period, r.c.on_time).where(
            _of(r.c.cooperative_id, ids, id_range), r.c.period.in_([str(p) for p in periods])
        )
    ):
        reported[coop_id][period] = bool(on_time)
    t = orm.coop_trainings
    trainings = {
        row[0]: int(row[1])
        for row in await session.execute(
            select(t.c.cooperative_id, func.count())
            .where(
                _of(t.c.cooperative_id, ids, id_range),
                t.c.completed_at > now - timedelta(days=policy.training_window_days),
                t.c.completed_at <= now,
            )
            .group_by(t.c.cooperative_id)
        )
    }
    # A period everyone owes counts as ending at the dawn of time: every registration is before it.
    dawn = datetime.min.replace(tzinfo=UTC)
    period_ends = [(str(p), dawn if ctx.due.expects_everyone(p) else p.ends_at(tz)) for p in periods]
    result: dict[str, HealthInputs] = {}
    for coop in coops:
        mine = reported.get(coop.id, {})
        expected = [
            text
            for text, ends in period_ends
            if coop.registered_at is None or ends == dawn or coop.registered_at < ends or text in mine
        ]
        on_time = sum(1 for p in expected if mine.get(p) is True)
        late = sum(1 for p in expected if mine.get(p) is False)
        sale_days, sales_value = sales.get(coop.id, (0, 0))
        on_hand, stalled, stalled_value = stock.get(coop.id, (0, 0, 0))
        result[coop.id] = HealthInputs(
            status=coop.status,
            sale_days=sale_days,
            sales_value=sales_value,
            items_on_hand=on_hand,
            items_stalled=stalled,
            stalled_value=stalled_value,
            unanswered_needs=unanswered.get(coop.id, 0),
            reports_expected=len(expected),
            reports_on_time=on_time,
            reports_late=late,
            members_joined=members.get(coop.id, 0),
            member_count=coop.member_count,
            trainings=trainings.get(coop.id, 0),
        )
    return result


# --- medians ------------------------------------------------------------------------------------


async def response_medians(
    session: AsyncSession, group: Any | None, where: Sequence[ColumnElement[bool]]
) -> dict[Any, float | None]:
    """Median response seconds per value of `group` (or {None: median} for no group).

    PostgreSQL computes `percentile_cont(0.5)` itself; SQLite (the embedded, city-sized mode) has no
    percentile, so the ordered values are fetched and the same median is taken in Python.
    """
    n = orm.needs
    conditions = [n.c.response_seconds.is_not(None), *where]
    if dialect_of(session) == "postgresql":
        measure = func.percentile_cont(0.5).within_group(n.c.response_seconds)
        if group is None:
            value = (await session.execute(select(measure).where(*conditions))).scalar()
            return {None: float(value) if value is not None else None}
        rows = await session.execute(select(group, measure).where(*conditions).group_by(group))
        return {key: float(value) if value is not None else None for key, value in rows.all()}
    columns = [group, n.c.response_seconds] if group is not None else [literal(None), n.c.response_seconds]
    values: dict[Any, list[int]] = defaultdict(list)
    for key, seconds in await session.execute(select(*columns).where(*conditions)):
        values[key].append(int(seconds))
    if group is None:
        return {None: median(values.get(None, []))}
    return {key: median(v) for key, v in values.items()}


# --- per kecamatan ------------------------------------------------------------------------------


@dataclass
class KecamatanCounts:
    cooperatives: int = 0
    aktif: int = 0
    kurang_aktif: int = 0
    tidak_aktif: int = 0
    needs_open: int = 0
    needs_unanswered: int = 0
    needs_responded: int = 0
    median_response_seconds: float | None = None
    stalled_items: int = 0
    stalled_value: int = 0
    low_items: int = 0
    stockout_items: int = 0
    reports_period: str | None = None
    reports_expected: int = 0
    reports_submitted: int = 0
    reports_on_time: int = 0

    def as_row(self, code: str) -> dict[str, Any]:
        return {"kecamatan_code": code, **self.__dict__}


@dataclass(frozen=True)
class ReportCounts:
    expected: int = 0
    submitted: int = 0
    on_time: int = 0


async def report_counts(
    session: AsyncSession, period: Period, tz: tzinfo, due: DueRule, codes: Sequence[str] | None
) -> dict[str, ReportCounts]:
    """Reports expected, submitted and on time for a period, per kecamatan (DHIS2-style rates)."""
    expected = {
        row[0]: int(row[1])
        for row in await session.execute(
            select(d.c.kecamatan_code, func.count())
            .select_from(with_facts_and_report(period))
            .where(expected_to_report(period, tz, due), _in(d.c.kecamatan_code, codes))
            .group_by(d.c.kecamatan_code)
        )
    }
    submitted: dict[str, tuple[int, int]] = {
        row[0]: (int(row[1]), int(row[2] or 0))
        for row in await session.execute(
            select(r.c.kecamatan_code, func.count(), func.sum(case((r.c.on_time, 1), else_=0)))
            .where(r.c.period == str(period), _in(r.c.kecamatan_code, codes))
            .group_by(r.c.kecamatan_code)
        )
    }
    result = {}
    for code in set(expected) | set(submitted):
        sub, on_time = submitted.get(code, (0, 0))
        result[code] = ReportCounts(expected=max(expected.get(code, 0), sub), submitted=sub, on_time=on_time)
    return result


async def kecamatan_counts(
    session: AsyncSession, codes: Sequence[str] | None, period: Period, tz: tzinfo, due: DueRule
) -> dict[str, KecamatanCounts]:
    """Every per-kecamatan figure of the dashboards for these kecamatan (None: all of them)."""
    counts: dict[str, KecamatanCounts] = defaultdict(KecamatanCounts)
    for code, total in await session.execute(
        select(d.c.kecamatan_code, func.count())
        .where(_in(d.c.kecamatan_code, codes))
        .group_by(d.c.kecamatan_code)
    ):
        counts[code].cooperatives = int(total)
    h = orm.cooperative_health
    for code, level, total in await session.execute(
        select(h.c.kecamatan_code, h.c.level, func.count())
        .where(_in(h.c.kecamatan_code, codes))
        .group_by(h.c.kecamatan_code, h.c.level)
    ):
        if level in ("aktif", "kurang_aktif", "tidak_aktif"):
            setattr(counts[code], level, int(total))
    s = orm.stock_items
    for code, stalled, value, low, stockout in await session.execute(
        select(
            s.c.kecamatan_code,
            func.sum(case((s.c.stalled, 1), else_=0)),
            func.sum(case((s.c.stalled, s.c.stalled_value), else_=0)),
            func.sum(case((s.c.low, 1), else_=0)),
            func.sum(case((s.c.stockout, 1), else_=0)),
        )
        .where(_in(s.c.kecamatan_code, codes))
        .group_by(s.c.kecamatan_code)
    ):
        row = counts[code]
        row.stalled_items, row.stalled_value = int(stalled or 0), int(value or 0)
        row.low_items, row.stockout_items = int(low or 0), int(stockout or 0)
    n = orm.needs
    for code, open_, unanswered, responded in await session.execute(
        select(
            n.c.kecamatan_code,
            func.sum(case((n.c.status.in_(OPEN_STATUSES), 1), else_=0)),
            func.sum(case((n.c.status == "open", 1), else_=0)),
            func.count(n.c.response_seconds),
        )
        .where(_in(n.c.kecamatan_code, codes))
        .group_by(n.c.kecamatan_code)
    ):
        row = counts[code]
        row.needs_open, row.needs_unanswered, row.needs_responded = (
            int(open_ or 0),
            int(unanswered or 0),
            int(responded),
        )
    medians = await response_medians(session, n.c.kecamatan_code, [_in(n.c.kecamatan_code, codes)])
    for code, seconds in medians.items():
        counts[code].median_response_seconds = seconds
    for code, rc in (await report_counts(session, period, tz, due, codes)).items():
        row = counts[code]
        row.reports_expected, row.reports_submitted, row.reports_on_time = (
            rc.expected,
            rc.submitted,
            rc.on_time,
        )
    for code in codes or []:
        counts[code]  # a kecamatan that lost its last item still gets a (zero) row
    for row in counts.values():
        row.reports_period = str(period)
    return dict(counts)


def sum_counts(rows: Sequence[KecamatanCounts | Any]) -> KecamatanCounts:
    """City (or officer-scope) totals from per-kecamatan rows; the median is not summable and is left
    for the caller to compute over the same needs."""
    total = KecamatanCounts()
    for row in rows:
        for name in (
            "cooperatives",
            "aktif",
            "kurang_aktif",
            "tidak_aktif",
            "needs_open",
            "needs_unanswered",
            "needs_responded",
            "stalled_items",
            "stalled_value",
            "low_items",
            "stockout_items",
            "reports_expected",
            "reports_submitted",
            "reports_on_time",
        ):
            setattr(total, name, getattr(total, name) + int(getattr(row, name) or 0))
        total.reports_period = total.reports_period or getattr(row, "reports_period", None)
    return total
