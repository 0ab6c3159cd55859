"""The dashboard summary (city or an officer's area) and the per-kecamatan rows, read from the
pre-aggregated `kecamatan_figures`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import figures, orm
from reporting.domain.needs import seconds_to_hours

d = orm.known_cooperatives


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
