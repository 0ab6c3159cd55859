"""Suppliers and their offers in the database."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm

S = orm.suppliers
F = orm.offers


async def get(session: AsyncSession, supplier_id: str) -> Any | None:
    return (await session.execute(select(S).where(S.c.id == supplier_id))).first()


async def exists_by_id(session: AsyncSession, supplier_id: str) -> bool:
    return (await session.execute(select(S.c.id).where(S.c.id == supplier_id))).first() is not None


async def name_taken(session: AsyncSession, name_key: str, other_than: str | None = None) -> bool:
    """Whether another supplier already has this name (case-folded)."""
    query = select(S.c.id).where(S.c.name_key == name_key)
    if other_than is not None:
        query = query.where(S.c.id != other_than)
    return (await session.execute(query)).first() is not None


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(S).values(**values))


async def change(session: AsyncSession, supplier_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(S).where(S.c.id == supplier_id).values(**values))


async def offered_commodities(session: AsyncSession, supplier_id: str) -> list[str]:
    return list(
        (await session.execute(select(F.c.commodity).where(F.c.supplier_id == supplier_id))).scalars()
    )


async def add_offers(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(insert(F), rows)


async def remove_offers(session: AsyncSession, supplier_id: str) -> None:
    await session.execute(delete(F).where(F.c.supplier_id == supplier_id))


async def offers_of(session: AsyncSession, supplier_ids: Iterable[str]) -> list[Any]:
    query = select(F).where(F.c.supplier_id.in_(list(supplier_ids))).order_by(F.c.commodity)
    return list((await session.execute(query)).all())


async def matching(
    session: AsyncSession,
    *,
    only: str | None,
    commodity: str | None,
    kind: str | None,
    q: str | None,
    active: bool | None,
) -> list[Any]:
    """Suppliers matching the filters, by name (`only`: that supplier alone)."""
    conditions = []
    if only is not None:
        conditions.append(S.c.id == only)
    if commodity:
        conditions.append(exists().where(F.c.supplier_id == S.c.id, F.c.commodity == commodity))
    if kind:
        conditions.append(S.c.kind == kind)
    if q:
        conditions.append(S.c.name_key.contains(q.casefold(), autoescape=True))
    if active is not None:
        conditions.append(S.c.active.is_(active))
    return list((await session.execute(select(S).where(*conditions).order_by(S.c.name_key))).all())


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(S))).scalar_one())
