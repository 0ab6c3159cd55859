"""Use cases behind the HTTP API: inbox, preferences, routing rules, subscriptions, deliveries,
announcements. Each takes the request's session, checks who may do what, and commits its change."""

from __future__ import annotations

import json
import secrets
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.db import on_sqlite
from kkmp_shared.errors import ApiError, conflict, forbidden, not_found, unprocessable
from sqlalchemy import String, and_, cast, delete, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.adapters.channels import check_webhook_target
from notifications.domain.delivery import TargetRejected, check_email
from notifications.domain.events import ANNOUNCEMENT_TYPE, routable_model
from notifications.domain.routing import CONTRACT_RULES, DEFAULT_MATCH_FIELD, RoutingRule
from notifications.entrypoints import schemas
from notifications.service_layer import digests
from notifications.service_layer.common import insert_for, new_id, now, utc
from notifications.settings import NotificationsSettings

n = orm.notifications

# --- inbox ---------------------------------------------------------------------------------------------


def _inbox_query(user_id: str, unread: bool | None, event_type: str | None) -> Any:
    query = select(n).where(n.c.user_id == user_id)
    if unread is True:
        query = query.where(n.c.read_at.is_(None))
    elif unread is False:
        query = query.where(n.c.read_at.is_not(None))
    if event_type:
        query = query.where(n.c.event_type == event_type)
    return query


def _notification_out(row: Any) -> dict[str, Any]:
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


async def inbox(
    session: AsyncSession, user_id: str, unread: bool | None, event_type: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    base = _inbox_query(user_id, unread, event_type)
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = await session.execute(
        base.order_by(n.c.created_at.desc(), n.c.id.desc()).limit(limit).offset(offset)
    )
    return [_notification_out(r) for r in rows], int(total)


async def inbox_summary(session: AsyncSession, user_id: str) -> dict[str, int]:
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(n.c.read_at.is_(None)),
            ).where(n.c.user_id == user_id)
        )
    ).one()
    return {"total": int(row[0]), "unread": int(row[1])}


async def mark_read(session: AsyncSession, user_id: str, notification_id: str) -> dict[str, Any]:
    # Another user's notification answers 404 like an unknown one: its existence is not revealed.
    await session.execute(
        update(n)
        .where(n.c.id == notification_id, n.c.user_id == user_id, n.c.read_at.is_(None))
        .values(read_at=now())
    )
    row = (await session.execute(select(n).where(n.c.id == notification_id, n.c.user_id == user_id))).first()
    if row is None:
        raise not_found("notification")
    await session.commit()
    return _notification_out(row)


async def mark_all_read(session: AsyncSession, user_id: str) -> int:
    result = await session.execute(
        update(n).where(n.c.user_id == user_id, n.c.read_at.is_(None)).values(read_at=now())
    )
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- preferences -----------------------------------------------------------------------------------------


async def get_preferences(
    session: AsyncSession, settings: NotificationsSettings, user_id: str
) -> dict[str, Any]:
    p, m, r = orm.preferences, orm.muted_types, orm.recipients
    row = (await session.execute(select(p).where(p.c.user_id == user_id))).first()
    muted = sorted(t for (t,) in await session.execute(select(m.c.event_type).where(m.c.user_id == user_id)))
    email = (await session.execute(select(r.c.email).where(r.c.user_id == user_id))).scalar()
    held = (
        await session.execute(
            select(func.count()).select_from(orm.digest_items).where(orm.digest_items.c.user_id == user_id)
        )
    ).scalar_one()
    return {
        "user_id": user_id,
        "muted_event_types": muted,
        "digest": row.digest if row else "off",
        "email": bool(row.email_enabled) if row else True,
        "email_address": email,
        "digest_hour_wib": settings.digest_hour_wib,
        "held_for_digest": int(held),
        "updated_at": utc(row.updated_at) if row else None,
    }


async def put_preferences(
    session: AsyncSession, settings: NotificationsSettings, principal: Principal, data: schemas.PreferencesIn
) -> dict[str, Any]:
    p, m = orm.preferences, orm.muted_types
    user_id = principal.sub
    if data.digest == "daily" and principal.role not in ("officer", "admin"):
        raise unprocessable("digest", "The daily digest is offered to Dinkopdag officers and administrators.")
    moment = now()
    current = (await session.execute(select(p).where(p.c.user_id == user_id))).first()
    digest = data.digest or (current.digest if current else "off")
    values: dict[str, Any] = {
        "user_id": user_id,
        "digest": digest,
        "email_enabled": data.email
        if data.email is not None
        else (bool(current.email_enabled) if current else True),
        "updated_at": moment,
        "digest_since": current.digest_since if current else None,
        "last_digest_at": current.last_digest_at if current else None,
    }
    switched_on = digest == "daily" and (current is None or current.digest != "daily")
    if switched_on:
        # The first digest comes at the next digest hour after choosing it, not at once.
        values.update(digest_since=moment, last_digest_at=None)
    statement = insert_for(session, p).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[p.c.user_id], set_={k: statement.excluded[k] for k in values if k != "user_id"}
        )
    )
    if digest == "off" and current is not None and current.digest == "daily":
        await digests.release_held(session, user_id)
    if data.muted_event_types is not None:
        await session.execute(delete(m).where(m.c.user_id == user_id))
        wanted = sorted(set(data.muted_event_types))
        if wanted:
            await session.execute(m.insert(), [{"user_id": user_id, "event_type": t} for t in wanted])
    await session.commit()
    return await get_preferences(session, settings, user_id)


# --- routing rules ----------------------------------------------------------------------------------------

rr = orm.routing_rules


def _conditions_key(when: dict[str, list[str]]) -> str:
    return json.dumps({k: sorted(v) for k, v in sorted(when.items())}, separators=(",", ":"))[:500]


def _rule_out(row: Any) -> dict[str, Any]:
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


def _rule_values(rule: RoutingRule, *, builtin: bool, created_by: str | None) -> dict[str, Any]:
    moment = now()
    when = {k: list(v) for k, v in rule.when.items()}
    return {
        "id": new_id(),
        "event_type": rule.event_type,
        "audience": rule.audience,
        "match_field": rule.match_field or "",
        "conditions": when,
        "conditions_key": _conditions_key(when),
        "enabled": rule.enabled,
        "builtin": builtin,
        "created_by": created_by,
        "created_at": moment,
        "updated_at": moment,
    }


async def seed_contract_rules(session: AsyncSession) -> int:
    """Insert the contract's rules that are missing; existing ones (maybe disabled) stay as they are."""
    rows = [_rule_values(rule, builtin=True, created_by=None) for rule in CONTRACT_RULES]
    statement = insert_for(session, rr).values(rows).on_conflict_do_nothing()
    result = await session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def list_rules(session: AsyncSession, event_type: str | None) -> list[dict[str, Any]]:
    query = select(rr).order_by(rr.c.event_type, rr.c.created_at, rr.c.id)
    if event_type:
        query = query.where(rr.c.event_type == event_type)
    return [_rule_out(r) for r in await session.execute(query)]


async def create_rule(
    session: AsyncSession, principal: Principal, data: schemas.RoutingRuleIn
) -> dict[str, Any]:
    model = routable_model(data.event_type)
    assert model is not None  # the schema checked it
    fields = set(model.model_fields)
    effective = data.match_field or DEFAULT_MATCH_FIELD.get(data.audience)
    if data.audience == "admins" and data.match_field:
        raise unprocessable("match_field", "The admins audience is not matched on a field.")
    if effective and effective not in fields:
        raise unprocessable(
            "match_field",
            f"{data.event_type} carries no field {effective!r} (it has: {', '.join(sorted(fields))}).",
        )
    for name in data.when:
        if name not in fields:
            raise unprocessable(f"when.{name}", f"{data.event_type} carries no field {name!r}.")
    match_field = (
        "" if data.match_field == DEFAULT_MATCH_FIELD.get(data.audience) else (data.match_field or "")
    )
    rule = RoutingRule(
        data.event_type,
        data.audience,
        match_field or None,
        {k: tuple(v) for k, v in data.when.items()},
        data.enabled,
    )
    values = _rule_values(rule, builtin=False, created_by=principal.sub)
    try:
        await session.execute(rr.insert().values(**values))
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise conflict("duplicate_rule", "An identical routing rule exists already.") from exc
    row = (await session.execute(select(rr).where(rr.c.id == values["id"]))).one()
    return _rule_out(row)


async def set_rule_enabled(session: AsyncSession, rule_id: str, enabled: bool) -> dict[str, Any]:
    result = await session.execute(
        update(rr).where(rr.c.id == rule_id).values(enabled=enabled, updated_at=now())
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise not_found("routing rule")
    await session.commit()
    return _rule_out((await session.execute(select(rr).where(rr.c.id == rule_id))).one())


async def delete_rule(session: AsyncSession, rule_id: str) -> None:
    row = (await session.execute(select(rr.c.builtin).where(rr.c.id == rule_id))).first()
    if row is None:
        raise not_found("routing rule")
    if row.builtin:
        raise conflict("builtin_rule", "A rule of the contract cannot be deleted; disable it instead.")
    await session.execute(delete(rr).where(rr.c.id == rule_id))
    await session.commit()


# --- subscriptions ----------------------------------------------------------------------------------------

s, st, sc = orm.subscriptions, orm.subscription_types, orm.subscription_scopes


async def _subscriptions_out(session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
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


def _may_manage_subscriptions(principal: Principal) -> None:
    if principal.role not in ("admin", "officer"):
        raise forbidden("Subscriptions are managed by Dinkopdag administrators and officers.")


async def create_subscription(
    session: AsyncSession, settings: NotificationsSettings, principal: Principal, data: schemas.SubscriptionIn
) -> dict[str, Any]:
    _may_manage_subscriptions(principal)
    try:
        if data.channel == "webhook":
            target = await check_webhook_target(data.target, allow_internal=settings.allow_internal_webhooks)
        else:
            target = check_email(data.target)
    except TargetRejected as exc:
        raise ApiError(
            422,
            "invalid_target",
            f"The target is refused: {exc}.",
            [{"field": "target", "message": str(exc)}],
        ) from exc
    codes = sorted(set(data.kecamatan_codes)) if data.kecamatan_codes else None
    own = principal.kecamatan_filter()
    if own is not None:
        # An officer subscribes within their own scope; by default to all of it.
        if codes is None:
            codes = sorted(own)
        elif not set(codes) <= set(own):
            raise forbidden("An officer may only subscribe to kecamatan within their own scope.")
    secret = secrets.token_urlsafe(32) if data.channel == "webhook" else None
    sub_id = new_id()
    await session.execute(
        s.insert().values(
            id=sub_id,
            channel=data.channel,
            target=target,
            secret=secret,
            description=data.description,
            owner_id=principal.sub,
            owner_role=principal.role,
            whole_city=codes is None,
            active=True,
            created_at=now(),
        )
    )
    await session.execute(
        st.insert(), [{"subscription_id": sub_id, "event_type": t} for t in sorted(set(data.event_types))]
    )
    if codes:
        await session.execute(sc.insert(), [{"subscription_id": sub_id, "kecamatan_code": c} for c in codes])
    await session.commit()
    out = await get_subscription(session, principal, sub_id)
    return {**out, "secret": secret}


def _visible_subscriptions(principal: Principal) -> Any:
    if principal.role == "admin":
        return literal(True)
    return s.c.owner_id == principal.sub


async def list_subscriptions(
    session: AsyncSession, principal: Principal, active: bool | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    _may_manage_subscriptions(principal)
    query = select(s).where(_visible_subscriptions(principal))
    if active is not None:
        query = query.where(s.c.active == active)
    rows = (
        await session.execute(query.order_by(s.c.created_at.desc(), s.c.id).limit(limit).offset(offset))
    ).all()
    return await _subscriptions_out(session, list(rows))


async def get_subscription(
    session: AsyncSession, principal: Principal, subscription_id: str
) -> dict[str, Any]:
    _may_manage_subscriptions(principal)
    row = (
        await session.execute(select(s).where(s.c.id == subscription_id, _visible_subscriptions(principal)))
    ).first()
    if row is None:
        raise not_found("subscription")
    return (await _subscriptions_out(session, [row]))[0]


async def deactivate_subscription(session: AsyncSession, principal: Principal, subscription_id: str) -> None:
    """Subscriptions are switched off, not erased: their deliveries stay readable."""
    await get_subscription(session, principal, subscription_id)
    await session.execute(update(s).where(s.c.id == subscription_id).values(active=False))
    # Nothing more goes out to it: what was waiting is given up (and recorded as failed by the worker).
    await session.commit()


# --- deliveries --------------------------------------------------------------------------------------------

d, a = orm.deliveries, orm.delivery_attempts


def _visible_deliveries(principal: Principal) -> Any:
    if principal.role == "admin":
        return literal(True)
    if principal.role == "officer":
        # An officer sees the deliveries of the subscriptions they own.
        return exists(select(s.c.id).where(s.c.id == d.c.subscription_id, s.c.owner_id == principal.sub))
    raise forbidden("Deliveries are visible to administrators (and officers for their own subscriptions).")


def _delivery_out(row: Any, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "target": row.target,
        "recipient": row.recipient,
        "user_id": row.user_id,
        "subscription_id": row.subscription_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "cooperative_id": row.cooperative_id,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "next_attempt_at": utc(row.next_attempt_at) if row.status in ("pending", "delivering") else None,
        "last_error": row.last_error,
        "last_status_code": row.last_status_code,
        "created_at": utc(row.created_at),
        "delivered_at": utc(row.delivered_at),
        "failed_at": utc(row.failed_at),
        "attempt_log": attempts,
    }


async def _attempt_logs(session: AsyncSession, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    logs: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for r in await session.execute(
            select(a).where(a.c.delivery_id.in_(ids)).order_by(a.c.delivery_id, a.c.number, a.c.id)
        ):
            logs[r.delivery_id].append(
                {
                    "number": r.number,
                    "started_at": utc(r.started_at),
                    "duration_ms": r.duration_ms,
                    "outcome": r.outcome,
                    "status_code": r.status_code,
                    "error": r.error,
                }
            )
    return logs


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    channel: str | None,
    subscription_id: str | None,
    event_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    query = select(d).where(_visible_deliveries(principal))
    if status:
        query = query.where(d.c.status == status)
    if channel:
        query = query.where(d.c.channel == channel)
    if subscription_id:
        query = query.where(d.c.subscription_id == subscription_id)
    if event_id:
        query = query.where(d.c.event_id == event_id)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        await session.execute(query.order_by(d.c.created_at.desc(), d.c.id).limit(limit).offset(offset))
    ).all()
    logs = await _attempt_logs(session, [r.id for r in rows])
    return {"items": [_delivery_out(r, logs[r.id]) for r in rows], "total": int(total)}


async def get_delivery(session: AsyncSession, principal: Principal, delivery_id: str) -> dict[str, Any]:
    row = (
        await session.execute(select(d).where(d.c.id == delivery_id, _visible_deliveries(principal)))
    ).first()
    if row is None:
        raise not_found("delivery")
    return _delivery_out(row, (await _attempt_logs(session, [row.id]))[row.id])


# --- announcements (pengumuman) -------------------------------------------------------------------


async def announce(
    session: AsyncSession, settings: NotificationsSettings, principal: Principal, data: schemas.AnnouncementIn
) -> dict[str, Any]:
    """Dinkopdag writes to people by role and place: one set-based INSERT ... SELECT, any scale."""
    r, scopes, coops = orm.recipients, orm.recipient_scopes, orm.known_cooperatives
    moment = now()
    created = utc(data.created_at) or moment
    if created > moment:
        raise unprocessable("created_at", "An announcement cannot be dated in the future.")
    codes = sorted(set(data.kecamatan_codes)) if data.kecamatan_codes else None
    own = principal.kecamatan_filter()
    if own is not None:
        if codes is None:
            codes = sorted(own)
        elif not set(codes) <= set(own):
            raise forbidden("An officer may only write to kecamatan within their own scope.")
    clauses = []
    for role in sorted(set(data.roles)):
        clause: Any = r.c.role == role
        if role == "coop_manager":
            if data.cooperative_ids is not None:
                clause = and_(clause, r.c.cooperative_id.in_(data.cooperative_ids))
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
        elif role in ("admin", "supplier") and (codes is not None or data.cooperative_ids is not None):
            continue  # a place-bound announcement is not for the whole-city roles
        clauses.append(clause)
    announcement_id = new_id()
    if not clauses:
        return {"id": announcement_id, "recipients": 0, "created_at": created}
    if not on_sqlite(session):
        row_id: Any = cast(func.gen_random_uuid(), String)
    else:
        row_id = func.lower(func.hex(func.randomblob(16)))
    link = f"{settings.portal_url.rstrip('/')}{data.link}" if data.link else None
    chosen = select(
        row_id,
        r.c.user_id,
        literal(announcement_id, String),
        literal(ANNOUNCEMENT_TYPE, String),
        literal(data.title, String),
        literal(data.body, String),
        literal(link, String),
        literal(created, orm.notifications.c.created_at.type),
    ).where(or_(*clauses))
    result = await session.execute(
        orm.notifications.insert().from_select(
            ["id", "user_id", "event_id", "event_type", "title", "body", "link", "created_at"], chosen
        )
    )
    await session.commit()
    return {"id": announcement_id, "recipients": int(result.rowcount or 0), "created_at": created}  # type: ignore[attr-defined]
