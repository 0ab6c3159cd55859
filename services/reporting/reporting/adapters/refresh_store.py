"""The refresher's bookkeeping: its lease row (which replica runs the scheduled work, and the lock that
serialises refresher transactions across replicas) and the queue of dirty marks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, literal, select, text, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.sql import dialect_of

LEASE = "refresher"
lease = orm.refresh_lease
q = orm.refresh_queue

# --- the lease ------------------------------------------------------------------------------------


async def lock_lease(session: AsyncSession) -> Any | None:
    """Lock the lease row for this transaction; its holder and expiry (None: the row is missing)."""
    return (
        await session.execute(
            select(lease.c.holder, lease.c.expires_at).where(lease.c.name == LEASE).with_for_update()
        )
    ).first()


async def set_lease(session: AsyncSession, *, expires_at: float, holder: str | None = None) -> None:
    values: dict[str, Any] = {"expires_at": expires_at}
    if holder is not None:
        values["holder"] = holder
    await session.execute(update(lease).where(lease.c.name == LEASE).values(**values))


async def release_lease(session: AsyncSession, holder: str) -> None:
    mine = (lease.c.name == LEASE) & (lease.c.holder == holder)
    await session.execute(update(lease).where(mine).values(expires_at=0.0))


async def plan_per_chunk(session: AsyncSession) -> None:
    """Plan each chunk's queries for its own ids (PostgreSQL).

    After five runs of a prepared statement PostgreSQL may switch to a generic plan, in which
    `cooperative_id IN ($1 .. $2000)` is searched linearly for every row instead of hashed (slower by
    two orders of magnitude at national scale); custom plans keep the hashed list.
    """
    if dialect_of(session) == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


# --- marks ----------------------------------------------------------------------------------------


async def last_mark(session: AsyncSession) -> int:
    return int((await session.execute(select(func.max(q.c.seq)))).scalar() or 0)


async def claim(session: AsyncSession, kind: str, up_to: int, chunk: int) -> list[str]:
    """Take up to `chunk` distinct keys of a kind with all their marks up to `up_to`: a key marked a
    thousand times (a busy kecamatan) is recomputed once. Marks made later wait for the next cycle."""
    keys = [
        row[0]
        for row in await session.execute(
            select(q.c.key)
            .where(q.c.kind == kind, q.c.seq <= up_to)
            .distinct()
            .order_by(q.c.key)
            .limit(chunk)
        )
    ]
    if keys:
        await session.execute(delete(q).where(q.c.kind == kind, q.c.key.in_(keys), q.c.seq <= up_to))
    return keys


async def mark_kecamatan(session: AsyncSession, codes: set[str]) -> None:
    if codes:
        await session.execute(q.insert(), [{"kind": "kecamatan", "key": c} for c in sorted(codes)])


async def mark_all(session: AsyncSession, *, cooperatives: bool = True, kecamatan: bool = True) -> None:
    """Queue every cooperative's health and every kecamatan row (set-based INSERT ... SELECT)."""
    d = orm.known_cooperatives
    if cooperatives:
        await session.execute(q.insert().from_select(["kind", "key"], select(literal("cooperative"), d.c.id)))
    if kecamatan:
        codes = union(
            select(d.c.kecamatan_code.label("code")),
            select(orm.stock_items.c.kecamatan_code),
            select(orm.needs.c.kecamatan_code),
            select(orm.kecamatan_figures.c.kecamatan_code),
        ).subquery()
        await session.execute(
            q.insert().from_select(
                ["kind", "key"], select(literal("kecamatan"), codes.c.code).where(codes.c.code != orm.ALL)
            )
        )


async def cooperative_ids_after(session: AsyncSession, after: str, limit: int) -> list[str]:
    """The directory's next ids in order (a walk over every cooperative, an index range per page)."""
    d = orm.known_cooperatives
    return [
        row[0]
        for row in await session.execute(select(d.c.id).where(d.c.id > after).order_by(d.c.id).limit(limit))
    ]
