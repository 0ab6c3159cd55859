"""Orders, their lines (one per receiving cooperative) and deliveries in the database."""

from __future__ import annotations

from typing import Any

from kkmp_shared.auth import Principal
from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm

ORD = orm.orders
L = orm.order_lines
D = orm.deliveries

# Columns of an order its readers do not see.
PRIVATE = ("placed_by", "confirmed_by", "cancelled_by", "cancelled_by_role")


async def supplier(session: AsyncSession, supplier_id: str) -> Any | None:
    return (await session.execute(select(orm.suppliers).where(orm.suppliers.c.id == supplier_id))).first()


async def lock_offer(session: AsyncSession, supplier_id: str, commodity: str) -> None:
    """Lock the offer row (PostgreSQL): two orders racing for the same capacity are checked one by one."""
    await session.execute(
        select(orm.offers.c.id)
        .where(orm.offers.c.supplier_id == supplier_id, orm.offers.c.commodity == commodity)
        .with_for_update()
    )


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(ORD).values(**values))


async def add_line(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(L).values(**values))


def _scope(principal: Principal) -> Any | None:
    if principal.role == "supplier":
        return ORD.c.supplier_id == (principal.supplier_id or "")
    if principal.role == "coop_manager":
        own = principal.cooperative_id or ""
        return exists().where(L.c.order_id == ORD.c.id, L.c.cooperative_id == own)
    codes = principal.kecamatan_filter()
    if codes is not None:
        return exists().where(L.c.order_id == ORD.c.id, L.c.kecamatan_code.in_(codes))
    return None


def _with_supplier_name() -> Any:
    return select(ORD, orm.suppliers.c.name.label("supplier_name")).join(
        orm.suppliers, orm.suppliers.c.id == ORD.c.supplier_id
    )


def columns() -> list[str]:
    return list(ORD.c.keys())


async def page(
    session: AsyncSession,
    principal: Principal,
    *,
    need_id: str | None,
    status: str | None,
    supplier_id: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Any]]:
    """How many orders in the caller's scope match, and one page of them, newest first."""
    conditions = []
    if (scope := _scope(principal)) is not None:
        conditions.append(scope)
    if need_id:
        conditions.append(exists().where(L.c.order_id == ORD.c.id, L.c.need_id == need_id))
    if cooperative_id:
        conditions.append(exists().where(L.c.order_id == ORD.c.id, L.c.cooperative_id == cooperative_id))
    if status:
        conditions.append(ORD.c.status == status)
    if supplier_id:
        conditions.append(ORD.c.supplier_id == supplier_id)
    total = (await session.execute(select(func.count()).select_from(ORD).where(*conditions))).scalar_one()
    query = (
        _with_supplier_name()
        .where(*conditions)
        .order_by(ORD.c.placed_at.desc(), ORD.c.id)
        .limit(limit)
        .offset(offset)
    )
    return total, list((await session.execute(query)).all())


async def get(session: AsyncSession, order_id: str) -> Any | None:
    """The order with its supplier's name."""
    return (await session.execute(_with_supplier_name().where(ORD.c.id == order_id))).first()


async def in_scope(session: AsyncSession, principal: Principal, order_id: str) -> bool:
    scope = _scope(principal)
    if scope is None:
        return True
    return (await session.execute(select(ORD.c.id).where(ORD.c.id == order_id, scope))).first() is not None


async def lines_of(session: AsyncSession, order_ids: list[str]) -> list[Any]:
    """The orders' lines, by cooperative."""
    query = select(L).where(L.c.order_id.in_(order_ids)).order_by(L.c.cooperative_id)
    return list((await session.execute(query)).all())


async def deliveries_of(session: AsyncSession, order_ids: list[str]) -> list[Any]:
    query = select(D).where(D.c.order_id.in_(order_ids)).order_by(D.c.delivered_at, D.c.id)
    return list((await session.execute(query)).all())


async def change_if_status(session: AsyncSession, order_id: str, status: str, values: dict[str, Any]) -> bool:
    """Apply `values` only if the order is still in `status`; whether it was."""
    result = await session.execute(
        update(ORD).where(ORD.c.id == order_id, ORD.c.status == status).values(**values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def deliver_on_line(session: AsyncSession, line_id: str, quantity: Any) -> bool:
    """Add a delivered quantity to a line, only if it stays within what the line ordered."""
    result = await session.execute(
        update(L)
        .where(L.c.id == line_id, L.c.delivered_quantity + quantity <= L.c.quantity)
        .values(delivered_quantity=L.c.delivered_quantity + quantity)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def add_delivery(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(D).values(**values))


async def record_delivered(
    session: AsyncSession, order_id: str, quantity: Any, values: dict[str, Any]
) -> None:
    """Add to what the order delivered, with its new status (and delivery time once complete)."""
    await session.execute(
        update(ORD)
        .where(ORD.c.id == order_id)
        .values(delivered_quantity=ORD.c.delivered_quantity + quantity, **values)
    )


async def received_for_need(session: AsyncSession, need_id: str) -> Any:
    """What all orders delivered for the need so far."""
    query = select(func.coalesce(func.sum(L.c.delivered_quantity), 0)).where(L.c.need_id == need_id)
    return (await session.execute(query)).scalar_one()
