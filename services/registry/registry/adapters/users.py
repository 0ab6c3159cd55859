"""Queries of the user accounts and of the failed logins the throttle counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import orm
from registry.adapters.rows import Duplicate, as_utc


def user_out(row: Any) -> dict[str, Any]:
    """The account without its password hash."""
    out = dict(row._mapping)
    out.pop("password_hash", None)
    out["kecamatan_codes"] = list(out.get("kecamatan_codes") or [])
    out["created_at"] = as_utc(out["created_at"])
    return out


async def id_of(session: AsyncSession, username: str) -> str | None:
    return (await session.execute(select(orm.users.c.id).where(orm.users.c.username == username))).scalar()


async def get(session: AsyncSession, user_id: str) -> Any:
    """The row (password hash included), or None."""
    return (await session.execute(select(orm.users).where(orm.users.c.id == user_id))).first()


async def active_by_username(session: AsyncSession, username: str) -> Any:
    return (
        await session.execute(
            select(orm.users).where(orm.users.c.username == username, orm.users.c.active.is_(True))
        )
    ).first()


async def page(
    session: AsyncSession, *, role: str | None, cooperative_id: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    query = select(orm.users).order_by(orm.users.c.username)
    if role:
        query = query.where(orm.users.c.role == role)
    if cooperative_id:
        query = query.where(orm.users.c.cooperative_id == cooperative_id)
    return [user_out(r) for r in (await session.execute(query.limit(limit).offset(offset))).all()]


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    """A username taken meanwhile is refused by its unique index (`Duplicate`)."""
    try:
        await session.execute(insert(orm.users).values(**values))
    except IntegrityError as exc:
        raise Duplicate(str(exc.orig)) from exc


async def set_password_hash(session: AsyncSession, user_id: str, password_hash: str) -> None:
    await session.execute(
        update(orm.users).where(orm.users.c.id == user_id).values(password_hash=password_hash)
    )


async def recent_failures(session: AsyncSession, key: str, since: datetime) -> int:
    count: int = (
        await session.execute(
            select(func.count()).where(orm.login_failures.c.key == key, orm.login_failures.c.at >= since)
        )
    ).scalar_one()
    return count


async def record_failure(
    session: AsyncSession, keys: Sequence[str], at: datetime, forget_before: datetime
) -> None:
    """Count a failed login against each key; failures older than the window are dropped on the way,
    so the table holds only what the throttle still looks at."""
    await session.execute(
        delete(orm.login_failures).where(
            orm.login_failures.c.key.in_(keys), orm.login_failures.c.at < forget_before
        )
    )
    await session.execute(insert(orm.login_failures), [{"key": k, "at": at} for k in keys])


async def clear_failures(session: AsyncSession, key: str) -> None:
    await session.execute(delete(orm.login_failures).where(orm.login_failures.c.key == key))
