"""Daily digests (ringkasan harian): what was held for a user goes out as one message a day."""

from __future__ import annotations

from datetime import datetime

from kkmp_shared.db import Database
from kkmp_shared.events.contracts import NotificationDelivered
from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm
from notifications.domain.digest import digest_due, latest_digest_boundary
from notifications.domain.events import DIGEST_TYPE
from notifications.domain.templates import DigestLine, render_digest
from notifications.service_layer.common import derived_id, now, utc
from notifications.service_layer.fanout import Notifier

items = orm.digest_items
prefs = orm.preferences


async def send_due(db: Database, notifier: Notifier, as_of: datetime | None = None) -> dict[str, int]:
    """Send the digest of every user whose digest moment has passed since their last one."""
    moment = utc(as_of) or now()
    hour = notifier.settings.digest_hour_wib
    boundary = latest_digest_boundary(moment, hour)
    async with db.session() as session:
        # Candidates are the users with a digest and something held: officers, a bounded few.
        candidates = await session.execute(
            select(prefs.c.user_id, prefs.c.last_digest_at, prefs.c.digest_since).where(
                prefs.c.digest == "daily",
                select(items.c.id).where(items.c.user_id == prefs.c.user_id).exists(),
            )
        )
        users = [
            row.user_id
            for row in candidates
            if digest_due(moment, hour, utc(row.last_digest_at), utc(row.digest_since))
        ]
    sent = lines = 0
    for user_id in users:
        # One transaction per user: one user's trouble never holds back another's digest.
        async with db.transaction() as session:
            count = await send_one(session, notifier, user_id, boundary)
        if count:
            sent += 1
            lines += count
    return {"digests": sent, "items": lines}


async def send_one(session: AsyncSession, notifier: Notifier, user_id: str, boundary: datetime) -> int:
    # Replicas: the user's preferences row is locked first, so a second scheduler sending the same
    # digest waits, then finds the items gone (rather than failing on the notification's id).
    await session.execute(select(prefs.c.user_id).where(prefs.c.user_id == user_id).with_for_update())
    rows = (
        await session.execute(
            select(items).where(items.c.user_id == user_id).order_by(items.c.created_at, items.c.id)
        )
    ).all()
    if not rows:
        return 0
    message = render_digest(
        [DigestLine(r.title, r.body, utc(r.created_at) or boundary) for r in rows],
        notifier.settings.digest_max_lines,
        boundary,
    )
    link = message.link(notifier.settings.portal_url)
    moment = now()
    notification_id = derived_id(DIGEST_TYPE, user_id, boundary.isoformat(), rows[-1].id)
    event_id = notification_id
    await session.execute(
        orm.notifications.insert().values(
            id=notification_id,
            user_id=user_id,
            event_id=event_id,
            event_type=DIGEST_TYPE,
            title=message.title,
            body=message.body,
            link=link,
            created_at=moment,
        )
    )
    await session.execute(delete(items).where(items.c.id.in_([r.id for r in rows])))
    await session.execute(update(prefs).where(prefs.c.user_id == user_id).values(last_digest_at=boundary))
    await notifier.outbox.add(
        session,
        NotificationDelivered(
            delivery_id=notification_id,
            channel="inbox",
            recipient=user_id,
            source_event_id=event_id,
            source_event_type=DIGEST_TYPE,
            attempts=1,
            delivered_at=moment,
        ),
    )
    r = orm.recipients
    person = (
        await session.execute(
            select(r.c.email, prefs.c.email_enabled)
            .select_from(r.outerjoin(prefs, prefs.c.user_id == r.c.user_id))
            .where(r.c.user_id == user_id)
        )
    ).first()
    if notifier.email_on and person is not None and person.email and person.email_enabled is not False:
        await notifier.queue(
            session,
            [
                notifier.email_delivery(
                    event_id,
                    DIGEST_TYPE,
                    {},
                    message,
                    link,
                    person.email,
                    f"user:{user_id}",
                    user_id=user_id,
                    notification_id=notification_id,
                )
            ],
        )
    return len(rows)


async def release_held(session: AsyncSession, user_id: str) -> int:
    """A user who stops the digest gets what was held straight into the inbox (nothing is lost)."""
    n = orm.notifications
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
