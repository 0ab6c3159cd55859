"""Who is who: recipients learned from `user.created.v1` (or a token), and audience resolution in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.events.contracts import UserCreated
from sqlalchemy import Integer, and_, delete, exists, false, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.routing import Target
from notifications.service_layer.common import insert_for, now

r = orm.recipients
scopes = orm.recipient_scopes


async def learn_user(session: AsyncSession, data: UserCreated) -> None:
    """Upsert the user and replace their kecamatan scope (the event carries the full state)."""
    moment = now()
    values: dict[str, Any] = {
        "user_id": data.user_id,
        "username": data.username,
        "full_name": data.full_name,
        "email": data.email,
        "role": data.role,
        "cooperative_id": data.cooperative_id,
        "supplier_id": data.supplier_id,
        "whole_city": data.role in ("officer", "admin") and not data.kecamatan_codes,
        "supervisor": bool(data.supervisor),
        "learned_from": "event",
        "created_at": moment,
        "updated_at": moment,
    }
    statement = insert_for(session, r).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[r.c.user_id],
        set_={k: statement.excluded[k] for k in values if k not in ("user_id", "created_at")},
    )
    await session.execute(statement)
    await session.execute(delete(scopes).where(scopes.c.user_id == data.user_id))
    codes = sorted(set(data.kecamatan_codes))
    if codes:
        await session.execute(
            scopes.insert(), [{"user_id": data.user_id, "kecamatan_code": c} for c in codes]
        )


async def learn_from_token(session: AsyncSession, principal: Principal) -> bool:
    """A user whose `user.created.v1` we never saw (created before this service's queue existed)
    becomes a recipient from the claims of their own token; the event, when it comes, overrides."""
    if principal.role == "service":
        return False
    known = (await session.execute(select(r.c.user_id).where(r.c.user_id == principal.sub))).first()
    if known is not None:
        return False
    moment = now()
    statement = insert_for(session, r).values(
        user_id=principal.sub,
        username=principal.username,
        role=principal.role,
        cooperative_id=principal.cooperative_id,
        supplier_id=principal.supplier_id,
        whole_city=principal.role in ("officer", "admin") and not principal.kecamatan_codes,
        supervisor=bool(principal.claims.get("supervisor", False)),
        learned_from="token",
        created_at=moment,
        updated_at=moment,
    )
    await session.execute(statement.on_conflict_do_nothing())
    codes = sorted(set(principal.kecamatan_codes))
    if codes:
        await session.execute(
            insert_for(session, scopes)
            .values([{"user_id": principal.sub, "kecamatan_code": c} for c in codes])
            .on_conflict_do_nothing()
        )
    return True


def _in_scope(kecamatan_code: str | None) -> Any:
    if not kecamatan_code:
        return r.c.whole_city
    return or_(
        r.c.whole_city,
        exists(
            select(scopes.c.user_id).where(
                scopes.c.user_id == r.c.user_id, scopes.c.kecamatan_code == kecamatan_code
            )
        ),
    )


def audience_clause(target: Target) -> Any:
    """The SQL condition selecting one audience (the vocabulary rules are written in)."""
    match target.audience:
        case "cooperative_managers":
            return and_(r.c.role == "coop_manager", r.c.cooperative_id == target.value)
        case "officers_in_scope":
            return and_(r.c.role == "officer", _in_scope(target.value))
        case "supervisors_in_scope":
            return and_(r.c.role == "officer", r.c.supervisor, _in_scope(target.value))
        case "admins":
            return r.c.role == "admin"
        case "supplier":
            return and_(r.c.role == "supplier", r.c.supplier_id == target.value)
    return false()


@dataclass(frozen=True)
class Recipient:
    user_id: str
    role: str
    email: str | None
    digest: bool
    email_enabled: bool


async def resolve(session: AsyncSession, targets: Sequence[Target], event_type: str) -> list[Recipient]:
    """Everyone in any of the audiences who has not muted this type: one query, whatever the scale."""
    return (await resolve_many(session, [(targets, event_type)]))[0]


# SQLite refuses compound SELECTs of more than 500 parts; a chunk stays well below.
_PARTS_PER_QUERY = 200


async def resolve_many(
    session: AsyncSession, requests: Sequence[tuple[Sequence[Target], str]]
) -> list[list[Recipient]]:
    """`resolve` for each (audiences, event type) request, in one query for a batch of events: each
    distinct (audience, event type) is one part of a UNION ALL, tagged with its number, and every
    request gets the union of its audiences' people (each once), ordered by user id."""
    pairs: dict[tuple[Target, str], int] = {}
    for targets, event_type in requests:
        for target in targets:
            pairs.setdefault((target, event_type), len(pairs))
    if not pairs:
        return [[] for _ in requests]
    p = orm.preferences
    m = orm.muted_types
    parts = [
        select(
            literal(number, Integer).label("part"),
            r.c.user_id,
            r.c.role,
            r.c.email,
            p.c.digest,
            p.c.email_enabled,
        )
        .select_from(r.outerjoin(p, p.c.user_id == r.c.user_id))
        .where(audience_clause(target))
        .where(~exists(select(m.c.user_id).where(m.c.user_id == r.c.user_id, m.c.event_type == event_type)))
        for (target, event_type), number in pairs.items()
    ]
    by_part: dict[int, list[Recipient]] = {}
    for start in range(0, len(parts), _PARTS_PER_QUERY):
        chunk = parts[start : start + _PARTS_PER_QUERY]
        query = chunk[0] if len(chunk) == 1 else union_all(*chunk)
        for row in await session.execute(query):
            by_part.setdefault(row.part, []).append(
                Recipient(
                    user_id=row.user_id,
                    role=row.role,
                    email=row.email,
                    digest=row.digest == "daily",
                    email_enabled=True if row.email_enabled is None else bool(row.email_enabled),
                )
            )
    answers: list[list[Recipient]] = []
    for targets, event_type in requests:
        people: dict[str, Recipient] = {}
        for target in targets:
            for person in by_part.get(pairs[(target, event_type)], ()):
                people.setdefault(person.user_id, person)
        answers.append([people[user_id] for user_id in sorted(people)])
    return answers
