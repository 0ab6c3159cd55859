"""The routing table (`routing_rules`): data the administrator extends, read by the fan-out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kkmp_shared.db import upsert_insert
from kkmp_shared.timeutil import as_utc as utc
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.routing import DEFAULT_MATCH_FIELD, RoutingRule

rr = orm.routing_rules


class DuplicateRule(Exception):
    """An identical rule (type, audience, field, conditions) is in the table already."""


def _out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_type": row.event_type,
        "audience": row.audience,
        "match_field": row.match_field or DEFAULT_MATCH_FIELD.get(row.audience),
        "when": {k: list(v) for k, v in (row.conditions or {}).items()},
        "enabled": bool(row.enabled),
        "builtin": bool(row.builtin),
        "created_at": utc(row.created_at),
    }


async def add_missing(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert the rules not in the table yet; how many."""
    result = await session.execute(upsert_insert(session)(rr).values(rows).on_conflict_do_nothing())
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def listed(session: AsyncSession, event_type: str | None) -> list[dict[str, Any]]:
    query = select(rr).order_by(rr.c.event_type, rr.c.created_at, rr.c.id)
    if event_type:
        query = query.where(rr.c.event_type == event_type)
    return [_out(r) for r in await session.execute(query)]


async def one(session: AsyncSession, rule_id: str) -> dict[str, Any]:
    return _out((await session.execute(select(rr).where(rr.c.id == rule_id))).one())


async def add(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a rule; raises DuplicateRule."""
    try:
        await session.execute(rr.insert().values(**values))
    except IntegrityError as exc:
        raise DuplicateRule from exc
    return await one(session, values["id"])


async def set_enabled(session: AsyncSession, rule_id: str, enabled: bool, moment: datetime) -> bool:
    """False if there is no such rule."""
    result = await session.execute(
        update(rr).where(rr.c.id == rule_id).values(enabled=enabled, updated_at=moment)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def is_builtin(session: AsyncSession, rule_id: str) -> bool | None:
    """Whether the rule is one of the contract's; None if there is no such rule."""
    row = (await session.execute(select(rr.c.builtin).where(rr.c.id == rule_id))).first()
    return None if row is None else bool(row.builtin)


async def remove(session: AsyncSession, rule_id: str) -> None:
    await session.execute(delete(rr).where(rr.c.id == rule_id))


async def enabled_for(session: AsyncSession, event_types: set[str]) -> dict[str, list[RoutingRule]]:
    """The enabled rules of these event types, by type, each list in the table's order."""
    found: dict[str, list[RoutingRule]] = {}
    if not event_types:
        return found
    rows = await session.execute(
        select(rr)
        .where(rr.c.event_type.in_(sorted(event_types)), rr.c.enabled)
        .order_by(rr.c.created_at, rr.c.id)
    )
    for row in rows:
        found.setdefault(row.event_type, []).append(
            RoutingRule(
                event_type=row.event_type,
                audience=row.audience,
                match_field=row.match_field or None,
                when={k: tuple(v) for k, v in (row.conditions or {}).items()},
                enabled=bool(row.enabled),
                id=row.id,
            )
        )
    return found
