"""Subscriptions (`subscriptions`, their event types and kecamatan): written by administrators and
officers, matched by the fan-out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kkmp_shared.timeutil import as_utc as utc
from sqlalchemy import literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.subscriptions import MatchedSubscription

s, st, sc = orm.subscriptions, orm.subscription_types, orm.subscription_scopes


async def add(
    session: AsyncSession,
    *,
    subscription_id: str,
    channel: str,
    target: str,
    secret: str | None,
    description: str | None,
    owner_id: str,
    owner_role: str,
    event_types: Sequence[str],
    kecamatan_codes: Sequence[str] | None,
    created_at: datetime,
) -> None:
    """`kecamatan_codes` None: the whole city."""
    await session.execute(
        s.insert().values(
            id=subscription_id,
            channel=channel,
            target=target,
            secret=secret,
            description=description,
            owner_id=owner_id,
            owner_role=owner_role,
            whole_city=kecamatan_codes is None,
            active=True,
            created_at=created_at,
        )
    )
    await session.execute(
        st.insert(), [{"subscription_id": subscription_id, "event_type": t} for t in event_types]
    )
    if kecamatan_codes:
        await session.execute(
            sc.insert(), [{"subscription_id": subscription_id, "kecamatan_code": c} for c in kecamatan_codes]
        )


async def _out(session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    types: dict[str, list[str]] = {i: [] for i in ids}
    codes: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for sid, event_type in await session.execute(
            select(st.c.subscription_id, st.c.event_type)
            .where(st.c.subscription_id.in_(ids))
            .order_by(st.c.event_type)
        ):
            types[sid].append(event_type)
        for sid, code in await session.execute(
            select(sc.c.subscription_id, sc.c.kecamatan_code)
            .where(sc.c.subscription_id.in_(ids))
            .order_by(sc.c.kecamatan_code)
        ):
            codes[sid].append(code)
    return [
        {
            "id": r.id,
            "channel": r.channel,
            "target": r.target,
            "event_types": types[r.id],
            "kecamatan_codes": None if r.whole_city else codes[r.id],
            "description": r.description,
            "owner_id": r.owner_id,
            "active": bool(r.active),
            "created_at": utc(r.created_at),
        }
        for r in rows
    ]


def _visible(owner_id: str | None) -> Any:
    """Every subscription, or those `owner_id` owns."""
    return literal(True) if owner_id is None else s.c.owner_id == owner_id


async def page(
    session: AsyncSession, owner_id: str | None, active: bool | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    query = select(s).where(_visible(owner_id))
    if active is not None:
        query = query.where(s.c.active == active)
    rows = (
        await session.execute(query.order_by(s.c.created_at.desc(), s.c.id).limit(limit).offset(offset))
    ).all()
    return await _out(session, list(rows))


async def one(session: AsyncSession, owner_id: str | None, subscription_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(s).where(s.c.id == subscription_id, _visible(owner_id)))).first()
    return None if row is None else (await _out(session, [row]))[0]


async def deactivate(session: AsyncSession, subscription_id: str) -> None:
    await session.execute(update(s).where(s.c.id == subscription_id).values(active=False))


async def active_for(session: AsyncSession, event_types: set[str]) -> dict[str, list[MatchedSubscription]]:
    """The active subscriptions to these event types with their scopes, by type, oldest first (one
    query; the subscriptions table is small and each event is matched against it in memory)."""
    found: dict[str, list[MatchedSubscription]] = {}
    if not event_types:
        return found
    rows = await session.execute(
        select(
            s.c.id, s.c.channel, s.c.target, s.c.secret, s.c.whole_city, st.c.event_type, sc.c.kecamatan_code
        )
        .join(st, st.c.subscription_id == s.c.id)
        .outerjoin(sc, sc.c.subscription_id == s.c.id)
        .where(st.c.event_type.in_(sorted(event_types)), s.c.active)
        .order_by(s.c.created_at, s.c.id)
    )
    scopes: dict[tuple[str, str], set[str]] = {}
    heads: dict[tuple[str, str], Any] = {}
    for row in rows:
        key = (row.event_type, row.id)
        heads.setdefault(key, row)
        if row.kecamatan_code:
            scopes.setdefault(key, set()).add(row.kecamatan_code)
    for (event_type, sub_id), row in heads.items():
        found.setdefault(event_type, []).append(
            MatchedSubscription(
                sub_id,
                row.channel,
                row.target,
                row.secret,
                bool(row.whole_city),
                frozenset(scopes.get((event_type, sub_id), ())),
            )
        )
    return found
