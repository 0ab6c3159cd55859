"""Needs: how fast they were answered, and the list for exports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import figures, orm
from reporting.adapters.views.scope import in_scope
from reporting.domain.needs import OPEN_STATUSES, seconds_to_hours
from reporting.domain.scope import Scope

d = orm.known_cooperatives


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
    where = in_scope(scope, n.c.kecamatan_code, n.c.cooperative_id)
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
    where = in_scope(scope, n.c.kecamatan_code, n.c.cooperative_id)
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
