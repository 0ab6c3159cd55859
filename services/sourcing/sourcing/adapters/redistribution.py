"""Stock conditions, stalled items and redistribution proposals in the database."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from kkmp_shared.auth import Principal
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm
from sourcing.adapters.needs import ordered_quantity_subquery
from sourcing.adapters.sql import upsert
from sourcing.domain.needs import ACTIVE_STATUSES
from sourcing.domain.redistribution import ACTIVE_STALLED_STATUSES

C = orm.stock_conditions
R = orm.redistributions
S = orm.stalled_items
PENDING_OR_ACCEPTED = ("proposed", "accepted")

# --- stock conditions ----------------------------------------------------------------------------


async def save_condition(session: AsyncSession, values: dict[str, Any]) -> None:
    """One row per cooperative, commodity and condition (low, stockout): the latest episode."""
    await upsert(
        session,
        C,
        values,
        keys=("cooperative_id", "commodity", "condition"),
        update=(
            "kelurahan_code",
            "kecamatan_code",
            "on_hand",
            "avg_daily_sales",
            "days_of_cover",
            "detected_at",
        ),
    )


async def low_stock_sales_rate(session: AsyncSession, cooperative_id: str, commodity: str) -> Decimal | None:
    query = select(C.c.avg_daily_sales).where(
        C.c.cooperative_id == cooperative_id, C.c.commodity == commodity, C.c.condition == "low"
    )
    value: Decimal | None = (await session.execute(query)).scalar()
    return value


async def clear_condition(session: AsyncSession, cooperative_id: str, commodity: str, condition: str) -> None:
    await session.execute(
        delete(C).where(
            C.c.cooperative_id == cooperative_id, C.c.commodity == commodity, C.c.condition == condition
        )
    )


# --- stalled items -------------------------------------------------------------------------------


def active_key(cooperative_id: str, commodity: str) -> str:
    """At most one active stalled episode per cooperative and commodity (a unique column)."""
    return f"{cooperative_id}:{commodity}"


async def active_stalled_item(session: AsyncSession, cooperative_id: str, commodity: str) -> Any | None:
    query = select(S).where(S.c.active_key == active_key(cooperative_id, commodity))
    return (await session.execute(query)).first()


async def stalled_item(session: AsyncSession, item_id: str) -> Any:
    return (await session.execute(select(S).where(S.c.id == item_id))).one()


async def add_stalled_item(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(S).values(**values))


async def change_stalled_item(session: AsyncSession, item_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(S).where(S.c.id == item_id).values(**values))


async def set_active_item_status(session: AsyncSession, item_id: str, status: str) -> None:
    """A recovered item keeps its final status."""
    await session.execute(
        update(S).where(S.c.id == item_id, S.c.status.in_(ACTIVE_STALLED_STATUSES)).values(status=status)
    )


async def stalled_items_not_offered_to(
    session: AsyncSession, commodity: str, cooperative_id: str
) -> list[Any]:
    """Active stalled items of the commodity elsewhere never yet offered to this cooperative."""
    query = select(S.c.id, S.c.cooperative_id, S.c.kelurahan_code).where(
        S.c.commodity == commodity,
        S.c.active_key.is_not(None),
        S.c.cooperative_id != cooperative_id,
        ~select(R.c.id)
        .where(and_(R.c.stalled_item_id == S.c.id, R.c.to_cooperative_id == cooperative_id))
        .exists(),
    )
    return list((await session.execute(query)).all())


async def last_supplier_delivering(session: AsyncSession, cooperative_id: str, commodity: str) -> str | None:
    """The supplier that last delivered this commodity to the cooperative."""
    o, line, s = orm.orders, orm.order_lines, orm.suppliers
    name: str | None = (
        await session.execute(
            select(s.c.name)
            .join(o, o.c.supplier_id == s.c.id)
            .join(line, line.c.order_id == o.c.id)
            .where(
                line.c.cooperative_id == cooperative_id,
                o.c.commodity == commodity,
                line.c.delivered_quantity > 0,
            )
            .order_by(o.c.placed_at.desc())
            .limit(1)
        )
    ).scalar()
    return name


# --- proposals ------------------------------------------------------------------------------------


async def count_proposals(session: AsyncSession, item_id: str, statuses: tuple[str, ...]) -> int:
    query = (
        select(func.count()).select_from(R).where(R.c.stalled_item_id == item_id, R.c.status.in_(statuses))
    )
    return int((await session.execute(query)).scalar_one())


async def offers_of_item(session: AsyncSession, item_id: str) -> list[Any]:
    """Who the item was offered to, and how each offer stands."""
    query = select(R.c.to_cooperative_id, R.c.status, R.c.quantity).where(R.c.stalled_item_id == item_id)
    return list((await session.execute(query)).all())


async def withdraw_offers_beyond(session: AsyncSession, item_id: str, on_hand: Decimal, at: datetime) -> None:
    """Withdraw the waiting offers the remaining stock can no longer cover."""
    await session.execute(
        update(R)
        .where(R.c.stalled_item_id == item_id, R.c.status == "proposed", R.c.quantity > on_hand)
        .values(status="withdrawn", closed_at=at)
    )


async def add_proposal(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(R).values(**values))


async def get_proposal(session: AsyncSession, proposal_id: str) -> Any | None:
    return (await session.execute(select(R).where(R.c.id == proposal_id))).first()


async def record_answer(
    session: AsyncSession,
    proposal_id: str,
    side: str,
    decision: str,
    by: str | None,
    at: datetime,
    note: str | None,
) -> bool:
    """One side's answer, only if the proposal still waits and that side has not answered."""
    result = await session.execute(
        update(R)
        .where(R.c.id == proposal_id, R.c.status == "proposed", R.c[f"{side}_decision"].is_(None))
        .values(
            **{
                f"{side}_decision": decision,
                f"{side}_decided_by": by,
                f"{side}_decided_at": at,
                f"{side}_note": note,
            }
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def close_declined(session: AsyncSession, proposal_id: str, at: datetime) -> None:
    await session.execute(
        update(R)
        .where(R.c.id == proposal_id, R.c.status == "proposed")
        .values(status="declined", closed_at=at)
    )


async def close_if_both_accepted(session: AsyncSession, proposal_id: str, at: datetime) -> bool:
    """Both sides' answers are in the row; only one transaction can flip it to accepted."""
    result = await session.execute(
        update(R)
        .where(
            R.c.id == proposal_id,
            R.c.status == "proposed",
            R.c.from_decision == "accepted",
            R.c.to_decision == "accepted",
        )
        .values(status="accepted", closed_at=at)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# --- who needs a commodity -----------------------------------------------------------------------


async def open_supply_needs(session: AsyncSession, commodity: str, only: str | None) -> list[Any]:
    """Active supply needs of the commodity with what is ordered (`ordered`) and already moved to them
    (`moved`), their cooperative's position and status; by date needed, then age."""
    n, k = orm.needs, orm.cooperatives
    ordered = ordered_quantity_subquery()
    transferred = (
        select(R.c.need_id, func.sum(R.c.quantity).label("moved"))
        .where(R.c.need_id.is_not(None), R.c.status.in_(PENDING_OR_ACCEPTED))
        .group_by(R.c.need_id)
        .subquery()
    )
    query = (
        select(n, ordered.c.ordered, transferred.c.moved, k.c.lat, k.c.lon, k.c.status.label("coop_status"))
        .outerjoin(ordered, ordered.c.need_id == n.c.id)
        .outerjoin(transferred, transferred.c.need_id == n.c.id)
        .outerjoin(k, k.c.id == n.c.cooperative_id)
        .where(n.c.kind == "supply", n.c.commodity == commodity, n.c.status.in_(ACTIVE_STATUSES))
        .order_by(n.c.needed_by, n.c.submitted_at)
    )
    if only is not None:
        query = query.where(n.c.cooperative_id == only)
    return list((await session.execute(query)).all())


async def short_shelves(session: AsyncSession, commodity: str, only: str | None) -> list[Any]:
    """Low or empty shelves of the commodity, with their cooperative's position and status."""
    k = orm.cooperatives
    query = (
        select(C, k.c.lat, k.c.lon, k.c.status.label("coop_status"))
        .outerjoin(k, k.c.id == C.c.cooperative_id)
        .where(C.c.commodity == commodity)
    )
    if only is not None:
        query = query.where(C.c.cooperative_id == only)
    return list((await session.execute(query)).all())


async def shelf_offers(session: AsyncSession, commodity: str) -> list[Any]:
    """Waiting or accepted offers of the commodity made to low or empty shelves (not to needs)."""
    query = select(R.c.to_cooperative_id, R.c.status, R.c.created_at).where(
        R.c.commodity == commodity, R.c.status.in_(PENDING_OR_ACCEPTED), R.c.reason != "open_need"
    )
    return list((await session.execute(query)).all())


# --- reading ------------------------------------------------------------------------------------


def _proposal_scope(principal: Principal) -> Any | None:
    if principal.role == "coop_manager":
        own = principal.cooperative_id or ""
        return (R.c.from_cooperative_id == own) | (R.c.to_cooperative_id == own)
    if principal.role == "supplier":
        return R.c.id.is_(None)
    codes = principal.kecamatan_filter()
    if codes is not None:
        return R.c.from_kecamatan_code.in_(codes) | R.c.to_kecamatan_code.in_(codes)
    return None


async def proposal_page(
    session: AsyncSession,
    principal: Principal,
    *,
    commodity: str | None,
    status: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Any]]:
    """How many proposals in the caller's scope match, and one page of them, newest first."""
    conditions = []
    if (scope := _proposal_scope(principal)) is not None:
        conditions.append(scope)
    if commodity:
        conditions.append(R.c.commodity == commodity)
    if status:
        conditions.append(R.c.status == status)
    if cooperative_id:
        conditions.append(
            (R.c.from_cooperative_id == cooperative_id) | (R.c.to_cooperative_id == cooperative_id)
        )
    total = (await session.execute(select(func.count()).select_from(R).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(R)
        .where(*conditions)
        .order_by(R.c.created_at.desc(), R.c.distance_km, R.c.id)
        .limit(limit)
        .offset(offset)
    )
    return total, list(rows)


def proposal_columns() -> list[str]:
    return list(R.c.keys())


async def stalled_page(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    commodity: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Any]]:
    """How many stalled items in the caller's scope match, and one page of them with what is allocated
    (`allocated`), newest first."""
    conditions: list[Any] = []
    if principal.role == "supplier":
        conditions.append(S.c.id.is_(None))
    elif principal.role == "coop_manager":
        conditions.append(S.c.cooperative_id == (principal.cooperative_id or ""))
    elif (codes := principal.kecamatan_filter()) is not None:
        conditions.append(S.c.kecamatan_code.in_(codes))
    for column, value in (
        (S.c.status, status),
        (S.c.commodity, commodity),
        (S.c.cooperative_id, cooperative_id),
    ):
        if value:
            conditions.append(column == value)
    allocated = (
        select(R.c.stalled_item_id, func.sum(R.c.quantity).label("allocated"))
        .where(R.c.status.in_(PENDING_OR_ACCEPTED))
        .group_by(R.c.stalled_item_id)
        .subquery()
    )
    total = (await session.execute(select(func.count()).select_from(S).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(
            *[c for c in S.c if c.name not in ("active_key", "event_id", "updated_at")], allocated.c.allocated
        )
        .outerjoin(allocated, allocated.c.stalled_item_id == S.c.id)
        .where(*conditions)
        .order_by(S.c.detected_at.desc(), S.c.id)
        .limit(limit)
        .offset(offset)
    )
    return total, list(rows)
