"""Read-side queries behind the dashboards, lists and exports.

`Scope` is what the caller may see: `kecamatan` None for the whole city (admin, service, an officer
without codes) or a list of kecamatan codes (an officer's area); `cooperative_id` set for a
cooperative's manager, who sees only its own rows. Every list applies it in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from kkmp_shared.directory import CooperativeDirectory, KnownCooperative
from kkmp_shared.locale_id import rupiah
from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from reporting.adapters import orm
from reporting.domain.needs import OPEN_STATUSES, seconds_to_hours
from reporting.domain.periods import Period, local_date, local_midnight, week_start
from reporting.domain.stock import days_since_sale_now, quantity_out
from reporting.service_layer import figures

d = orm.known_cooperatives


@dataclass(frozen=True)
class Scope:
    kecamatan: list[str] | None = None
    cooperative_id: str | None = None

    def conditions(
        self, kecamatan_column: Any, cooperative_column: Any | None = None
    ) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.kecamatan is not None:
            out.append(kecamatan_column.in_(self.kecamatan))
        if self.cooperative_id is not None and cooperative_column is not None:
            out.append(cooperative_column == self.cooperative_id)
        return out


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures_payload(
    c: Any, median_seconds: float | None, as_of: datetime | None, period: str | None
) -> dict[str, Any]:
    """The contract's dashboard shape (plus a few more figures) from one counts row."""
    expected, submitted, on_time = int(c.reports_expected), int(c.reports_submitted), int(c.reports_on_time)
    return {
        "cooperatives": {
            "total": int(c.cooperatives),
            "by_health": {
                "aktif": int(c.aktif),
                "kurang_aktif": int(c.kurang_aktif),
                "tidak_aktif": int(c.tidak_aktif),
            },
        },
        "needs": {
            "open": int(c.needs_open),
            "unanswered": int(c.needs_unanswered),
            "responded": int(c.needs_responded),
            "median_response_hours": seconds_to_hours(median_seconds),
        },
        "stock": {
            "stalled_items": int(c.stalled_items),
            "stalled_value": int(c.stalled_value),
            "low_items": int(c.low_items),
            "stockout_items": int(c.stockout_items),
        },
        "reports": {
            "period": c.reports_period or period,
            "expected": expected,
            "submitted": submitted,
            "on_time": on_time,
            "completeness_rate": _rate(submitted, expected),
            "on_time_rate": _rate(on_time, expected),
        },
        "as_of": as_of,
    }


async def summary(
    session: AsyncSession, kecamatan: list[str] | None, as_of: datetime, period: str
) -> dict[str, Any]:
    """City figures from the one pre-aggregated city row, or an officer's area from its kecamatan rows."""
    k = orm.kecamatan_figures
    if kecamatan is None:
        row = (await session.execute(select(k).where(k.c.kecamatan_code == orm.ALL))).first()
        counts = row if row is not None else figures.KecamatanCounts()
        return figures_payload(counts, counts.median_response_seconds, as_of, period)
    rows = (await session.execute(select(k).where(k.c.kecamatan_code.in_(kecamatan)))).all()
    counts = figures.sum_counts(rows)
    medians = await figures.response_medians(session, None, [orm.needs.c.kecamatan_code.in_(kecamatan)])
    return figures_payload(counts, medians[None], as_of, period)


async def figures_version(session: AsyncSession) -> tuple[Any, ...] | None:
    """What the per-kecamatan rows were last computed as of: the city row is rewritten in every
    refresh that touched any kecamatan row, so its refresh time versions them all."""
    k = orm.kecamatan_figures
    row = (
        await session.execute(
            select(k.c.refreshed_at, k.c.reports_period).where(k.c.kecamatan_code == orm.ALL)
        )
    ).first()
    return tuple(row) if row is not None else None


async def kecamatan_rows(
    session: AsyncSession,
    kecamatan: list[str] | None,
    names: dict[str, str],
    period: str,
    *,
    only_stored: bool = False,
) -> list[dict[str, Any]]:
    """One row per kecamatan: every kecamatan of the reference list (zeros where nothing happened)
    and any other the events named (`only_stored`: just the stored rows). The figures' `as_of` is the
    caller's to add (one for the list)."""
    k = orm.kecamatan_figures
    query = select(k).where(k.c.kecamatan_code != orm.ALL)
    if kecamatan is not None:
        query = query.where(k.c.kecamatan_code.in_(kecamatan))
    found = {row.kecamatan_code: row for row in (await session.execute(query)).all()}
    codes = set(found) if only_stored else set(found) | set(kecamatan if kecamatan is not None else names)
    empty = figures.KecamatanCounts()
    result = []
    for code in sorted(codes):
        row = found.get(code, empty)
        payload = figures_payload(row, row.median_response_seconds, None, period)
        del payload["as_of"]
        result.append({"kecamatan_code": code, "name": names.get(code, code), **payload})
    return result


# --- cooperatives -------------------------------------------------------------------------------


async def known_cooperatives(session: AsyncSession, ids: set[str]) -> dict[str, KnownCooperative]:
    """Directory entries for a set of ids, as the common directory returns them."""
    return await CooperativeDirectory(d).many(session, ids)


async def cooperative_rows(
    session: AsyncSession,
    scope: Scope,
    *,
    kecamatan_code: str | None = None,
    level: str | None = None,
    q: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    h = orm.cooperative_health
    where = scope.conditions(d.c.kecamatan_code, d.c.id)
    if kecamatan_code:
        where.append(d.c.kecamatan_code == kecamatan_code)
    if level:
        where.append(h.c.level == level)
    if q:
        where.append(func.lower(d.c.name).contains(q.lower(), autoescape=True))
    joined = d.outerjoin(h, h.c.cooperative_id == d.c.id)
    total = int((await session.execute(select(func.count()).select_from(joined).where(*where))).scalar_one())
    rows = await session.execute(
        select(
            d.c.id.label("cooperative_id"),
            d.c.name,
            d.c.kelurahan_code,
            d.c.kelurahan_name,
            d.c.kecamatan_code,
            d.c.status,
            d.c.member_count,
            h.c.score,
            h.c.level,
            h.c.computed_at.label("health_computed_at"),
        )
        .select_from(joined)
        .where(*where)
        .order_by(d.c.kecamatan_code, d.c.name, d.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [dict(r._mapping) for r in rows.all()], total


async def cooperative_detail(
    session: AsyncSession,
    coop: Any,
    health: dict[str, Any],
    *,
    now: datetime,
    tz: tzinfo,
    names: dict[str, str],
    weeks: int = 12,
) -> dict[str, Any]:
    """Everything reporting knows about one cooperative, for its own page."""
    coop_id = coop.id
    facts = (
        await session.execute(
            select(orm.cooperative_facts).where(orm.cooperative_facts.c.cooperative_id == coop_id)
        )
    ).first()
    s = orm.stock_items
    stock = []
    for row in (
        await session.execute(select(s).where(s.c.cooperative_id == coop_id).order_by(s.c.commodity))
    ).all():
        status = "stalled" if row.stalled else "stockout" if row.stockout else "low" if row.low else "ok"
        stock.append(
            {
                "commodity": row.commodity,
                "unit": row.unit,
                "on_hand": quantity_out(row.on_hand_milli),
                "last_sale_at": row.last_sale_at,
                "status": status,
                "stalled_value": row.stalled_value if row.stalled else 0,
                "stalled_since": row.stalled_since,
            }
        )
    n = orm.needs
    need_counts = (
        await session.execute(
            select(
                func.sum(case((n.c.status.in_(OPEN_STATUSES), 1), else_=0)),
                func.sum(case((n.c.status == "open", 1), else_=0)),
                func.count(n.c.response_seconds),
            ).where(n.c.cooperative_id == coop_id)
        )
    ).one()
    median = (await figures.response_medians(session, None, [n.c.cooperative_id == coop_id]))[None]
    today = local_date(now, tz)
    daily = orm.coop_members_daily

    async def joined_since(days: int) -> int:
        value = (
            await session.execute(
                select(func.sum(daily.c.members_joined)).where(
                    daily.c.cooperative_id == coop_id,
                    daily.c.day > today - timedelta(days=days),
                    daily.c.day <= today,
                )
            )
        ).scalar()
        return int(value or 0)

    t = orm.coop_trainings
    trainings = [
        dict(r._mapping)
        for r in (
            await session.execute(
                select(t.c.training_id, t.c.title, t.c.topic, t.c.completed_at)
                .where(t.c.cooperative_id == coop_id)
                .order_by(t.c.completed_at.desc())
            )
        ).all()
    ]
    r = orm.monthly_reports
    reports = [
        {
            "period": row.period,
            "submitted_at": row.submitted_at,
            "due_date": row.due_date,
            "on_time": row.on_time,
            "omzet": row.omzet,
        }
        for row in (
            await session.execute(
                select(r).where(r.c.cooperative_id == coop_id).order_by(r.c.period.desc()).limit(12)
            )
        ).all()
    ]
    p = orm.price_violations
    violations = int(
        (
            await session.execute(
                select(func.count()).where(
                    p.c.cooperative_id == coop_id, p.c.occurred_at > now - timedelta(days=90)
                )
            )
        ).scalar_one()
    )
    series = await sales_series(session, weeks=weeks, now=now, tz=tz, scope=Scope(cooperative_id=coop_id))
    return {
        "cooperative": {
            "id": coop.id,
            "name": coop.name,
            "kelurahan_code": coop.kelurahan_code,
            "kelurahan_name": coop.kelurahan_name,
            "kecamatan_code": coop.kecamatan_code,
            "kecamatan_name": names.get(coop.kecamatan_code, coop.kecamatan_code),
            "status": coop.status,
            "member_count": coop.member_count,
            "registered_at": facts.registered_at if facts else None,
        },
        "health": health,
        "stock": stock,
        "sales_weekly": series["weeks"],
        "needs": {
            "open": int(need_counts[0] or 0),
            "unanswered": int(need_counts[1] or 0),
            "responded": int(need_counts[2] or 0),
            "median_response_hours": seconds_to_hours(median),
        },
        "members": {
            "count": coop.member_count,
            "joined_30d": await joined_since(30),
            "joined_90d": await joined_since(90),
        },
        "trainings": trainings,
        "reports": reports,
        "price_violations_90d": violations,
        "as_of": now,
    }


# --- stalled stock ------------------------------------------------------------------------------


def _stalled_query(scope: Scope, kecamatan_code: str | None, commodity: str | None) -> tuple[Any, list[Any]]:
    s = orm.stock_items
    where = [s.c.stalled, *scope.conditions(s.c.kecamatan_code, s.c.cooperative_id)]
    if kecamatan_code:
        where.append(s.c.kecamatan_code == kecamatan_code)
    if commodity:
        where.append(s.c.commodity == commodity)
    return s.outerjoin(d, d.c.id == s.c.cooperative_id), where


async def stalled_items(
    session: AsyncSession,
    scope: Scope,
    *,
    now: datetime,
    kecamatan_code: str | None = None,
    commodity: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    s = orm.stock_items
    joined, where = _stalled_query(scope, kecamatan_code, commodity)
    total = int((await session.execute(select(func.count()).select_from(s).where(*where))).scalar_one())
    rows = await session.execute(
        select(s, d.c.name.label("cooperative_name"), d.c.kelurahan_code)
        .select_from(joined)
        .where(*where)
        .order_by(s.c.stalled_value.desc(), s.c.cooperative_id, s.c.commodity)
        .limit(limit)
        .offset(offset)
    )
    items = []
    for row in rows.all():
        detected_at = row.stalled_changed_at or row.stalled_since or now
        items.append(
            {
                "cooperative_id": row.cooperative_id,
                "cooperative_name": row.cooperative_name,
                "kecamatan_code": row.kecamatan_code,
                "kelurahan_code": row.kelurahan_code,
                "commodity": row.commodity,
                "on_hand": quantity_out(row.stalled_on_hand_milli),
                "unit": row.unit,
                "days_since_sale": days_since_sale_now(row.stalled_days_since_sale or 0, detected_at, now),
                "last_sale_at": row.stalled_last_sale_at,
                "value": int(row.stalled_value),
                "since": row.stalled_since,
            }
        )
    return items, total


# --- weekly series ------------------------------------------------------------------------------


async def sales_series(
    session: AsyncSession,
    *,
    weeks: int,
    now: datetime,
    tz: tzinfo,
    scope: Scope,
    kecamatan_code: str | None = None,
    commodity: str | None = None,
) -> dict[str, Any]:
    """Weekly sales (quantity, value, transactions) and the stalled value at each week's end."""
    this_week = week_start(local_date(now, tz))
    starts = [this_week - timedelta(weeks=i) for i in range(weeks - 1, -1, -1)]
    first = starts[0]
    if scope.cooperative_id is not None:
        t = orm.coop_sales_weekly
        where = [t.c.cooperative_id == scope.cooperative_id, t.c.week_start >= first]
        if commodity:
            where.append(t.c.commodity == commodity)
    else:
        t = orm.sales_weekly
        where = [t.c.week_start >= first, t.c.commodity == (commodity or orm.ALL)]
        if kecamatan_code:
            where.append(t.c.scope == kecamatan_code)
        elif scope.kecamatan is not None:
            where.append(t.c.scope.in_(scope.kecamatan))
        else:
            where.append(t.c.scope == orm.ALL)
    sums: dict[date, tuple[int, int, int]] = {
        row[0]: (int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))
        for row in await session.execute(
            select(
                t.c.week_start, func.sum(t.c.quantity_milli), func.sum(t.c.value), func.sum(t.c.transactions)
            )
            .where(*where)
            .group_by(t.c.week_start)
        )
    }
    e = orm.stalled_episodes
    episode_where = scope.conditions(e.c.kecamatan_code, e.c.cooperative_id)
    if kecamatan_code:
        episode_where.append(e.c.kecamatan_code == kecamatan_code)
    if commodity:
        episode_where.append(e.c.commodity == commodity)
    result = []
    for start in starts:
        end = min(local_midnight(start + timedelta(days=7), tz), now)
        stalled = (
            await session.execute(
                select(func.sum(e.c.value)).where(
                    *episode_where, e.c.started_at < end, or_(e.c.ended_at.is_(None), e.c.ended_at >= end)
                )
            )
        ).scalar()
        quantity, value, transactions = sums.get(start, (0, 0, 0))
        result.append(
            {
                "week_start": start,
                "quantity": quantity_out(quantity),
                "value": value,
                "sales": value,
                "transactions": transactions,
                "stalled_value": int(stalled or 0),
            }
        )
    return {
        "kecamatan_code": kecamatan_code,
        "commodity": commodity,
        "cooperative_id": scope.cooperative_id,
        "weeks": result,
    }


# --- needs --------------------------------------------------------------------------------------


async def response_times(
    session: AsyncSession,
    scope: Scope,
    names: dict[str, str],
    *,
    kecamatan_code: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    n = orm.needs
    where = scope.conditions(n.c.kecamatan_code, n.c.cooperative_id)
    if kecamatan_code:
        where.append(n.c.kecamatan_code == kecamatan_code)
    if kind:
        where.append(n.c.kind == kind)
    if since:
        where.append(n.c.submitted_at >= since)
    if until:
        where.append(n.c.submitted_at < until)

    async def grouped(column: Any) -> list[dict[str, Any]]:
        medians = await figures.response_medians(session, column, where)
        rows = await session.execute(
            select(
                column,
                func.count(n.c.response_seconds),
                func.sum(case((n.c.status.in_(OPEN_STATUSES), 1), else_=0)),
                func.sum(case((n.c.status == "open", 1), else_=0)),
            )
            .where(*where)
            .group_by(column)
            .order_by(column)
        )
        return [
            {
                "key": key,
                "name": names.get(key) if column is n.c.kecamatan_code else None,
                "responded": int(responded),
                "median_hours": seconds_to_hours(medians.get(key)),
                "open": int(open_ or 0),
                "unanswered": int(unanswered or 0),
            }
            for key, responded, open_, unanswered in rows.all()
        ]

    totals = (
        await session.execute(
            select(
                func.count(n.c.response_seconds),
                func.avg(n.c.response_seconds),
                func.sum(case((n.c.status.in_(OPEN_STATUSES), 1), else_=0)),
                func.sum(case((n.c.status == "open", 1), else_=0)),
            ).where(*where)
        )
    ).one()
    overall = (await figures.response_medians(session, None, where))[None]
    return {
        "responded": int(totals[0]),
        "median_hours": seconds_to_hours(overall),
        "mean_hours": seconds_to_hours(float(totals[1])) if totals[1] is not None else None,
        "open": int(totals[2] or 0),
        "unanswered": int(totals[3] or 0),
        "by_kecamatan": await grouped(n.c.kecamatan_code),
        "by_kind": await grouped(n.c.kind),
    }


async def need_rows(
    session: AsyncSession, scope: Scope, *, status: str | None = None, kecamatan_code: str | None = None
) -> list[dict[str, Any]]:
    n = orm.needs
    where = scope.conditions(n.c.kecamatan_code, n.c.cooperative_id)
    if status:
        where.append(n.c.status == status)
    if kecamatan_code:
        where.append(n.c.kecamatan_code == kecamatan_code)
    rows = await session.execute(
        select(n, d.c.name.label("cooperative_name"))
        .select_from(n.outerjoin(d, d.c.id == n.c.cooperative_id))
        .where(*where)
        .order_by(n.c.submitted_at.desc(), n.c.need_id)
    )
    return [
        {
            "need_id": row.need_id,
            "cooperative_id": row.cooperative_id,
            "cooperative_name": row.cooperative_name,
            "kecamatan_code": row.kecamatan_code,
            "kind": row.kind,
            "commodity": row.commodity,
            "status": row.status,
            "submitted_at": row.submitted_at,
            "first_response_at": row.first_response_at,
            "response_hours": seconds_to_hours(row.response_seconds),
            "closed_at": row.closed_at,
            "description": row.description,
        }
        for row in rows.all()
    ]


# --- price ceilings -----------------------------------------------------------------------------


async def price_violations(
    session: AsyncSession,
    scope: Scope,
    *,
    kecamatan_code: str | None = None,
    commodity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int, int]:
    p = orm.price_violations
    where = scope.conditions(p.c.kecamatan_code, p.c.cooperative_id)
    if kecamatan_code:
        where.append(p.c.kecamatan_code == kecamatan_code)
    if commodity:
        where.append(p.c.commodity == commodity)
    if since:
        where.append(p.c.occurred_at >= since)
    if until:
        where.append(p.c.occurred_at < until)
    total, excess_milli = (
        await session.execute(select(func.count(), func.sum(p.c.excess * p.c.quantity_milli)).where(*where))
    ).one()
    rows = await session.execute(
        select(p, d.c.name.label("cooperative_name"))
        .select_from(p.outerjoin(d, d.c.id == p.c.cooperative_id))
        .where(*where)
        .order_by(p.c.occurred_at.desc(), p.c.movement_id)
        .limit(limit)
        .offset(offset)
    )
    items = [
        {
            "movement_id": row.movement_id,
            "cooperative_id": row.cooperative_id,
            "cooperative_name": row.cooperative_name,
            "kecamatan_code": row.kecamatan_code,
            "commodity": row.commodity,
            "unit": row.unit,
            "quantity": quantity_out(row.quantity_milli),
            "unit_price": row.unit_price,
            "price_ceiling": row.price_ceiling,
            "excess": row.excess,
            "occurred_at": row.occurred_at,
        }
        for row in rows.all()
    ]
    # The rupiah charged above the ceiling: excess per unit × quantity (kept in thousandths).
    return items, int(total), round(int(excess_milli or 0) / 1000)


# --- reports ------------------------------------------------------------------------------------


async def report_rows(
    session: AsyncSession,
    scope: Scope,
    *,
    period: str | None = None,
    kecamatan_code: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    r = orm.monthly_reports
    where = scope.conditions(r.c.kecamatan_code, r.c.cooperative_id)
    if period:
        where.append(r.c.period == period)
    if kecamatan_code:
        where.append(r.c.kecamatan_code == kecamatan_code)
    total = int((await session.execute(select(func.count()).select_from(r).where(*where))).scalar_one())
    query = (
        select(r, d.c.name.label("cooperative_name"))
        .select_from(r.outerjoin(d, d.c.id == r.c.cooperative_id))
        .where(*where)
        .order_by(r.c.period.desc(), r.c.kecamatan_code, r.c.cooperative_id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return [dict(row._mapping) for row in (await session.execute(query)).all()], total


# --- export rows --------------------------------------------------------------------------------


async def cooperative_export_rows(
    session: AsyncSession,
    scope: Scope,
    names: dict[str, str],
    period: Period,
    *,
    kecamatan_code: str | None = None,
) -> list[dict[str, Any]]:
    """One row per cooperative with its health and headline figures (grouped subqueries, one pass)."""
    h, s, n, r = orm.cooperative_health, orm.stock_items, orm.needs, orm.monthly_reports
    stalled = (
        select(
            s.c.cooperative_id,
            func.count().label("stalled_items"),
            func.sum(s.c.stalled_value).label("stalled_value"),
        )
        .where(s.c.stalled)
        .group_by(s.c.cooperative_id)
        .subquery()
    )
    open_needs = (
        select(n.c.cooperative_id, func.count().label("needs_open"))
        .where(n.c.status.in_(OPEN_STATUSES))
        .group_by(n.c.cooperative_id)
        .subquery()
    )
    report = select(r.c.cooperative_id, r.c.on_time).where(r.c.period == str(period)).subquery()
    where = scope.conditions(d.c.kecamatan_code, d.c.id)
    if kecamatan_code:
        where.append(d.c.kecamatan_code == kecamatan_code)
    rows = await session.execute(
        select(
            d.c.id,
            d.c.name,
            d.c.kelurahan_code,
            d.c.kelurahan_name,
            d.c.kecamatan_code,
            d.c.status,
            d.c.member_count,
            h.c.score,
            h.c.level,
            stalled.c.stalled_items,
            stalled.c.stalled_value,
            open_needs.c.needs_open,
            report.c.on_time,
        )
        .select_from(
            d.outerjoin(h, h.c.cooperative_id == d.c.id)
            .outerjoin(stalled, stalled.c.cooperative_id == d.c.id)
            .outerjoin(open_needs, open_needs.c.cooperative_id == d.c.id)
            .outerjoin(report, report.c.cooperative_id == d.c.id)
        )
        .where(*where)
        .order_by(d.c.kecamatan_code, d.c.name, d.c.id)
    )
    out = []
    for row in rows.all():
        report_status = "belum" if row.on_time is None else "tepat_waktu" if row.on_time else "terlambat"
        out.append(
            {
                "cooperative_id": row.id,
                "name": row.name,
                "kelurahan_code": row.kelurahan_code,
                "kelurahan_name": row.kelurahan_name,
                "kecamatan_code": row.kecamatan_code,
                "kecamatan_name": names.get(row.kecamatan_code, row.kecamatan_code),
                "status": row.status,
                "member_count": row.member_count,
                "health_score": row.score,
                "health_level": row.level,
                "stalled_items": int(row.stalled_items or 0),
                "stalled_value": int(row.stalled_value or 0),
                "needs_open": int(row.needs_open or 0),
                "report_period": str(period),
                "report_status": report_status,
            }
        )
    return out


async def visit_list(
    session: AsyncSession, scope: Scope, names: dict[str, str], period: Period, limit: int = 200
) -> list[dict[str, Any]]:
    """Cooperatives needing a visit: not `aktif`, or with stalled stock, an unanswered need, or no
    report for the period; worst health first, with the reasons spelled out."""
    rows = await cooperative_export_rows(session, scope, names, period)
    n = orm.needs
    unanswered = {
        row[0]: int(row[1])
        for row in await session.execute(
            select(n.c.cooperative_id, func.count())
            .where(n.c.status == "open", *scope.conditions(n.c.kecamatan_code, n.c.cooperative_id))
            .group_by(n.c.cooperative_id)
        )
    }
    visits = []
    for row in rows:
        reasons = []
        if row["health_level"] in ("tidak_aktif", "kurang_aktif"):
            reasons.append(f"kesehatan {row['health_level'].replace('_', ' ')} ({row['health_score']:.0f})")
        if row["stalled_items"]:
            reasons.append(f"{row['stalled_items']} stok macet ({rupiah(row['stalled_value'])})")
        if unanswered.get(row["cooperative_id"]):
            reasons.append(f"{unanswered[row['cooperative_id']]} kebutuhan belum ditanggapi")
        if row["report_status"] == "belum" and row["status"] != "dissolved":
            reasons.append(f"laporan {period} belum masuk")
        if reasons:
            visits.append({**row, "reasons": reasons})
    visits.sort(
        key=lambda v: (v["health_score"] if v["health_score"] is not None else -1, -v["stalled_value"])
    )
    return visits[:limit]
