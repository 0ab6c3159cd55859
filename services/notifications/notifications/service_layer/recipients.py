"""Who is who: recipients learned from `user.created.v1` (or a token), and audience resolution in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.events.contracts import UserCreated
from sqlalchemy import and_, delete, exists, false, or_, select
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
    if not targets:
        return []
    p = orm.preferences
    m = orm.muted_types
    query = (
        select(r.c.user_id, r.c.role, r.c.email, p.c.digest, p.c.email_enabled)
        .select_from(r.outerjoin(p, p.c.user_id == r.c.user_id))
        .where(or_(*(audience_clause(t) for t in targets)))
        .where(~exists(select(m.c.user_id).where(m.c.user_id == r.c.user_id, m.c.event_type == event_type)))
        .order_by(r.c.user_id)
    )
    return [
        Recipient(
            user_id=row.user_id,
            role=row.role,
            email=row.email,
            digest=row.digest == "daily",
            email_enabled=True if row.email_enabled is None else bool(row.email_enabled),
        )
        for row in await session.execute(query)
    ]
