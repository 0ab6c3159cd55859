"""Each user's preferences (`preferences`, `muted_types`) and what the digests read of them."""

from __future__ import annotations

from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm

p, m, r, items = orm.preferences, orm.muted_types, orm.recipients, orm.digest_items


async def current(session: AsyncSession, user_id: str) -> Any:
    """The user's preferences row, or None (defaults: no digest, email on)."""
    return (await session.execute(select(p).where(p.c.user_id == user_id))).first()


async def muted(session: AsyncSession, user_id: str) -> list[str]:
    return sorted(t for (t,) in await session.execute(select(m.c.event_type).where(m.c.user_id == user_id)))


async def email_address(session: AsyncSession, user_id: str) -> str | None:
    address: str | None = (await session.execute(select(r.c.email).where(r.c.user_id == user_id))).scalar()
    return address


async def save(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert or replace the user's row (`values` has every column)."""
    statement = upsert_insert(session)(p).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[p.c.user_id], set_={k: statement.excluded[k] for k in values if k != "user_id"}
        )
    )


async def replace_muted(session: AsyncSession, user_id: str, event_types: list[str]) -> None:
    await session.execute(delete(m).where(m.c.user_id == user_id))
    if event_types:
        await session.execute(m.insert(), [{"user_id": user_id, "event_type": t} for t in event_types])


# --- digests --------------------------------------------------------------------------------------------


async def digest_candidates(session: AsyncSession) -> list[Any]:
    """Users with the daily digest and something held (officers, a bounded few): their user id,
    last digest and since when they have the digest."""
    rows = await session.execute(
        select(p.c.user_id, p.c.last_digest_at, p.c.digest_since).where(
            p.c.digest == "daily",
            select(items.c.id).where(items.c.user_id == p.c.user_id).exists(),
        )
    )
    return list(rows)


async def lock(session: AsyncSession, user_id: str) -> None:
    """Lock the user's row for this transaction (a second scheduler waits for the first)."""
    await session.execute(select(p.c.user_id).where(p.c.user_id == user_id).with_for_update())


async def set_last_digest(session: AsyncSession, user_id: str, boundary: Any) -> None:
    await session.execute(update(p).where(p.c.user_id == user_id).values(last_digest_at=boundary))


async def email_for_digest(session: AsyncSession, user_id: str) -> Any:
    """(email, email_enabled) of the user, or None if unknown."""
    return (
        await session.execute(
            select(r.c.email, p.c.email_enabled)
            .select_from(r.outerjoin(p, p.c.user_id == r.c.user_id))
            .where(r.c.user_id == user_id)
        )
    ).first()
