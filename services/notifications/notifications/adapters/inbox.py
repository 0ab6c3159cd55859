"""The in-app inbox (`notifications`) and what waits for a digest (`digest_items`): reads, marks,
and the writes of the fan-out, the digests and the announcements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kkmp_shared.db import Rows, insert_together, on_sqlite
from kkmp_shared.timeutil import as_utc as utc
from sqlalchemy import String, and_, cast, delete, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm

n, items = orm.notifications, orm.digest_items


def _out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_type": row.event_type,
        "event_id": row.event_id,
        "title": row.title,
        "body": row.body,
        "link": row.link,
        "cooperative_id": row.cooperative_id,
        "commodity": row.commodity,
        "created_at": utc(row.created_at),
        "read_at": utc(row.read_at),
    }


async def page(
    session: AsyncSession, user_id: str, unread: bool | None, event_type: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A user's notifications, newest first, and how many match the filter."""
    query = select(n).where(n.c.user_id == user_id)
    if unread is True:
        query = query.where(n.c.read_at.is_(None))
    elif unread is False:
        query = query.where(n.c.read_at.is_not(None))
    if event_type:
        query = query.where(n.c.event_type == event_type)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.execute(
        query.order_by(n.c.created_at.desc(), n.c.id.desc()).limit(limit).offset(offset)
    )
    return [_out(r) for r in rows], int(total)


async def counts(session: AsyncSession, user_id: str) -> dict[str, int]:
    row = (
        await session.execute(
            select(func.count(), func.count().filter(n.c.read_at.is_(None))).where(n.c.user_id == user_id)
        )
    ).one()
    return {"total": int(row[0]), "unread": int(row[1])}


async def mark_read(
    session: AsyncSession, user_id: str, notification_id: str, moment: datetime
) -> dict[str, Any] | None:
    """The notification after marking it read (if it was not), or None if it is not this user's."""
    await session.execute(
        update(n)
        .where(n.c.id == notification_id, n.c.user_id == user_id, n.c.read_at.is_(None))
        .values(read_at=moment)
    )
    row = (await session.execute(select(n).where(n.c.id == notification_id, n.c.user_id == user_id))).first()
    return None if row is None else _out(row)


async def mark_all_read(session: AsyncSession, user_id: str, moment: datetime) -> int:
    result = await session.execute(
        update(n).where(n.c.user_id == user_id, n.c.read_at.is_(None)).values(read_at=moment)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- the fan-out's writes ---------------------------------------------------------------------------


async def write_fan_out(
    session: AsyncSession,
    inbox_rows: list[dict[str, Any]],
    inbox_events: Rows | None,
    held_rows: list[dict[str, Any]],
    deliveries: Rows | None,
) -> set[str]:
    """Every row of a batch in one statement (`insert_together`): inbox, its outbox rows, digest
    items, and the push deliveries last; the ids of the deliveries inserted."""
    parts: list[Rows] = []
    if inbox_rows:
        parts.append(Rows(n, inbox_rows, ignore_conflicts=True))
        if inbox_events is not None:
            parts.append(inbox_events)
    if held_rows:
        parts.append(Rows(items, held_rows, ignore_conflicts=True))
    if deliveries is not None:
        parts.append(deliveries)
    if not parts:
        return set()
    result = await insert_together(session, parts)
    return set(result.scalars()) if deliveries is not None else set()


# --- digests --------------------------------------------------------------------------------------------


async def held_for(session: AsyncSession, user_id: str) -> list[Any]:
    """What is held for a user's digest, oldest first."""
    return list(
        (
            await session.execute(
                select(items).where(items.c.user_id == user_id).order_by(items.c.created_at, items.c.id)
            )
        ).all()
    )


async def held_count(session: AsyncSession, user_id: str) -> int:
    count = (
        await session.execute(select(func.count()).select_from(items).where(items.c.user_id == user_id))
    ).scalar_one()
    return int(count)


async def add_digest(session: AsyncSession, values: dict[str, Any], sent_items: Sequence[str]) -> None:
    """The digest's notification in, the items it lists out."""
    await session.execute(n.insert().values(**values))
    await session.execute(delete(items).where(items.c.id.in_(list(sent_items))))


async def release_held(session: AsyncSession, user_id: str) -> int:
    """What was held for a user's digest goes into their inbox (unless there already)."""
    columns = [
        "id",
        "user_id",
        "event_id",
        "event_type",
        "title",
        "body",
        "link",
        "cooperative_id",
        "commodity",
        "created_at",
    ]
    held = select(*(items.c[c] for c in columns)).where(
        items.c.user_id == user_id,
        ~select(n.c.id)
        .where(and_(n.c.user_id == items.c.user_id, n.c.event_id == items.c.event_id))
        .exists(),
    )
    result = await session.execute(n.insert().from_select(columns, held))
    await session.execute(delete(items).where(items.c.user_id == user_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- announcements --------------------------------------------------------------------------------------


async def write_announcement(
    session: AsyncSession,
    *,
    roles: Sequence[str],
    cooperative_ids: Sequence[str] | None,
    kecamatan_codes: Sequence[str] | None,
    announcement_id: str,
    event_type: str,
    title: str,
    body: str,
    link: str | None,
    created_at: datetime,
) -> int:
    """One notification to each recipient of these roles in these places: one set-based
    INSERT ... SELECT, any scale; how many were written. Admins and suppliers are whole-city roles:
    a place-bound announcement is not for them."""
    r, scopes, coops = orm.recipients, orm.recipient_scopes, orm.known_cooperatives
    codes = kecamatan_codes
    clauses = []
    for role in sorted(set(roles)):
        clause: Any = r.c.role == role
        if role == "coop_manager":
            if cooperative_ids is not None:
                clause = and_(clause, r.c.cooperative_id.in_(cooperative_ids))
            if codes is not None:
                clause = and_(
                    clause,
                    exists(
                        select(coops.c.id).where(
                            coops.c.id == r.c.cooperative_id, coops.c.kecamatan_code.in_(codes)
                        )
                    ),
                )
        elif role == "officer" and codes is not None:
            clause = and_(
                clause,
                or_(
                    r.c.whole_city,
                    exists(
                        select(scopes.c.user_id).where(
                            scopes.c.user_id == r.c.user_id, scopes.c.kecamatan_code.in_(codes)
                        )
                    ),
                ),
            )
        elif role in ("admin", "supplier") and (codes is not None or cooperative_ids is not None):
            continue
        clauses.append(clause)
    if not clauses:
        return 0
    if not on_sqlite(session):
        row_id: Any = cast(func.gen_random_uuid(), String)
    else:
        row_id = func.lower(func.hex(func.randomblob(16)))
    chosen = select(
        row_id,
        r.c.user_id,
        literal(announcement_id, String),
        literal(event_type, String),
        literal(title, String),
        literal(body, String),
        literal(link, String),
        literal(created_at, n.c.created_at.type),
    ).where(or_(*clauses))
    result = await session.execute(
        n.insert().from_select(
            ["id", "user_id", "event_id", "event_type", "title", "body", "link", "created_at"], chosen
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
