"""Needs in the database: rows, their history and comments, what is on order for them, and the queries
behind the need lists, figures and pooling."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kkmp_shared.auth import Principal
from sqlalchemy import and_, case, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm
from sourcing.domain.needs import ACTIVE_STATUSES

N = orm.needs


def ordered_quantity_subquery() -> Any:
    """Per need: what is on order (cancelled orders count only for what they delivered)."""
    line, o = orm.order_lines, orm.orders
    return (
        select(
            line.c.need_id,
            func.sum(
                case((o.c.status == "cancelled", line.c.delivered_quantity), else_=line.c.quantity)
            ).label("ordered"),
        )
        .join(o, o.c.id == line.c.order_id)
        .where(line.c.need_id.is_not(None))
        .group_by(line.c.need_id)
        .subquery()
    )


def _supplier_addressed(supplier_id: str) -> Any:
    """Needs addressed to a supplier: it was matched to them, or they hold an order for them."""
    m, line, o = orm.need_matches, orm.order_lines, orm.orders
    return or_(
        exists().where(and_(m.c.need_id == N.c.id, m.c.supplier_id == supplier_id)),
        exists().where(
            and_(line.c.need_id == N.c.id, line.c.order_id == o.c.id, o.c.supplier_id == supplier_id)
        ),
    )


def _scope(principal: Principal) -> Any | None:
    """The WHERE clause limiting needs to what the caller may read (None: everything)."""
    if principal.role == "coop_manager":
        return N.c.cooperative_id == (principal.cooperative_id or "")
    if principal.role == "supplier":
        return _supplier_addressed(principal.supplier_id or "")
    codes = principal.kecamatan_filter()
    if codes is not None:
        return N.c.kecamatan_code.in_(codes)
    if principal.role in ("admin", "officer", "service"):
        return None
    return N.c.id.is_(None)


async def is_addressed_to(session: AsyncSession, supplier_id: str, need_id: str) -> bool:
    query = select(N.c.id).where(N.c.id == need_id, _supplier_addressed(supplier_id))
    return (await session.execute(query)).first() is not None


async def get(session: AsyncSession, need_id: str) -> Any | None:
    """The need's own row."""
    return (await session.execute(select(N).where(N.c.id == need_id))).first()


async def get_with_orders(session: AsyncSession, need_id: str) -> Any | None:
    """The need with its cooperative's name and what is on order for it (`ordered`)."""
    ordered = ordered_quantity_subquery()
    return (
        await session.execute(
            select(N, orm.cooperatives.c.name.label("cooperative_name"), ordered.c.ordered)
            .outerjoin(orm.cooperatives, orm.cooperatives.c.id == N.c.cooperative_id)
            .outerjoin(ordered, ordered.c.need_id == N.c.id)
            .where(N.c.id == need_id)
        )
    ).first()


async def matches(session: AsyncSession, need_id: str, supplier_id: str | None = None) -> list[Any]:
    """The need's ranked suppliers with their names, best first (one supplier's line if given)."""
    m, s = orm.need_matches, orm.suppliers
    query = (
        select(m, s.c.name.label("supplier_name"))
        .join(s, s.c.id == m.c.supplier_id)
        .where(m.c.need_id == need_id)
    )
    if supplier_id is not None:
        query = query.where(m.c.supplier_id == supplier_id)
    return list((await session.execute(query.order_by(m.c.rank))).all())


async def history(session: AsyncSession, need_id: str) -> list[Any]:
    h = orm.need_history
    return list((await session.execute(select(h).where(h.c.need_id == need_id).order_by(h.c.id))).all())


async def comments(session: AsyncSession, need_id: str) -> list[dict[str, Any]]:
    c = orm.need_comments
    rows = await session.execute(select(c).where(c.c.need_id == need_id).order_by(c.c.created_at, c.c.id))
    return [dict(r._mapping) for r in rows]


async def page(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    cooperative_id: str | None,
    kind: str | None,
    commodity: str | None,
    kecamatan_code: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Any]]:
    """How many needs in the caller's scope match, and one page of them, newest first."""
    conditions = []
    scope = _scope(principal)
    if scope is not None:
        conditions.append(scope)
    for column, value in (
        (N.c.status, status),
        (N.c.cooperative_id, cooperative_id),
        (N.c.kind, kind),
        (N.c.commodity, commodity),
        (N.c.kecamatan_code, kecamatan_code),
    ):
        if value:
            conditions.append(column == value)
    total = (await session.execute(select(func.count()).select_from(N).where(*conditions))).scalar_one()
    ordered = ordered_quantity_subquery()
    rows = await session.execute(
        select(N, orm.cooperatives.c.name.label("cooperative_name"), ordered.c.ordered)
        .outerjoin(orm.cooperatives, orm.cooperatives.c.id == N.c.cooperative_id)
        .outerjoin(ordered, ordered.c.need_id == N.c.id)
        .where(*conditions)
        .order_by(N.c.submitted_at.desc(), N.c.id)
        .limit(limit)
        .offset(offset)
    )
    return total, list(rows)


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(N).values(**values))


async def add_history(
    session: AsyncSession,
    need_id: str,
    *,
    old_status: str | None,
    new_status: str,
    note: str | None,
    changed_by: str | None,
    changed_by_role: str,
    changed_at: datetime,
    assigned_to: str | None = None,
) -> None:
    await session.execute(
        insert(orm.need_history).values(
            need_id=need_id,
            old_status=old_status,
            new_status=new_status,
            note=note,
            assigned_to=assigned_to,
            changed_by=changed_by,
            changed_by_role=changed_by_role,
            changed_at=changed_at,
        )
    )


async def change_if_status(session: AsyncSession, need_id: str, status: str, values: dict[str, Any]) -> bool:
    """Apply `values` only if the need is still in `status`; whether it was."""
    result = await session.execute(update(N).where(N.c.id == need_id, N.c.status == status).values(**values))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def add_comment(session: AsyncSession, comment: dict[str, Any]) -> None:
    await session.execute(insert(orm.need_comments).values(**comment))


async def submission_times(
    session: AsyncSession,
    *,
    kecamatan_codes: Sequence[str] | None,
    kind: str | None,
    since: datetime,
    until: datetime,
) -> tuple[list[Any], int]:
    """Status and times of the needs submitted in [since, until], and how many are open now."""
    scope: list[Any] = []
    if kecamatan_codes is not None:
        scope.append(N.c.kecamatan_code.in_(kecamatan_codes))
    if kind:
        scope.append(N.c.kind == kind)
    rows = (
        await session.execute(
            select(N.c.kecamatan_code, N.c.status, N.c.submitted_at, N.c.responded_at, N.c.resolved_at).where(
                *scope, N.c.submitted_at >= since, N.c.submitted_at <= until
            )
        )
    ).all()
    open_now = (
        await session.execute(select(func.count()).select_from(N).where(*scope, N.c.status == "open"))
    ).scalar_one()
    return list(rows), int(open_now)


async def active_supply_needs(
    session: AsyncSession, commodity: str | None, kecamatan_codes: Sequence[str] | None
) -> list[Any]:
    """Active supply needs with what is on order for them, by commodity, date needed and age."""
    ordered = ordered_quantity_subquery()
    conditions: list[Any] = [N.c.kind == "supply", N.c.status.in_(ACTIVE_STATUSES)]
    if commodity:
        conditions.append(N.c.commodity == commodity)
    if kecamatan_codes is not None:
        conditions.append(N.c.kecamatan_code.in_(kecamatan_codes))
    return list(
        (
            await session.execute(
                select(
                    N.c.id,
                    N.c.cooperative_id,
                    N.c.commodity,
                    N.c.unit,
                    N.c.quantity,
                    N.c.needed_by,
                    ordered.c.ordered,
                )
                .outerjoin(ordered, ordered.c.need_id == N.c.id)
                .where(*conditions)
                .order_by(N.c.commodity, N.c.needed_by, N.c.submitted_at)
            )
        ).all()
    )


async def active_supply_needs_for(session: AsyncSession, commodities: Sequence[str]) -> list[Any]:
    """Every active supply need for these commodities (whole rows)."""
    query = select(N).where(
        N.c.kind == "supply", N.c.commodity.in_(commodities), N.c.status.in_(ACTIVE_STATUSES)
    )
    return list((await session.execute(query)).all())
