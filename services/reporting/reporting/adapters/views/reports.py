"""Monthly reports in a reader's scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.views.scope import in_scope
from reporting.domain.scope import Scope

d = orm.known_cooperatives


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
    where = in_scope(scope, r.c.kecamatan_code, r.c.cooperative_id)
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
