"""Daily digests (ringkasan harian): what was held for a user goes out as one message a day."""

from __future__ import annotations

from datetime import datetime

from kkmp_shared.events.contracts import NotificationDelivered
from kkmp_shared.timeutil import as_utc as utc
from kkmp_shared.unit_of_work import UnitOfWork

from notifications.adapters import inbox, preferences
from notifications.domain.digest import digest_due, latest_digest_boundary
from notifications.domain.events import DIGEST_TYPE
from notifications.domain.templates import DigestLine, render_digest
from notifications.service_layer.common import UnitOfWorkFactory, derived_id, now
from notifications.service_layer.fanout import Notifier


async def send_due(
    unit_of_work: UnitOfWorkFactory, notifier: Notifier, as_of: datetime | None = None
) -> dict[str, int]:
    """Send the digest of every user whose digest moment has passed since their last one."""
    moment = utc(as_of) or now()
    hour = notifier.settings.digest_hour_wib
    boundary = latest_digest_boundary(moment, hour)
    async with unit_of_work() as uow:
        candidates = await preferences.digest_candidates(uow.session)
    users = [
        row.user_id
        for row in candidates
        if digest_due(moment, hour, utc(row.last_digest_at), utc(row.digest_since))
    ]
    sent = lines = 0
    for user_id in users:
        # One transaction per user: one user's trouble never holds back another's digest.
        async with unit_of_work() as uow:
            count = await send_one(uow, notifier, user_id, boundary)
        if count:
            sent += 1
            lines += count
    return {"digests": sent, "items": lines}


async def send_one(uow: UnitOfWork, notifier: Notifier, user_id: str, boundary: datetime) -> int:
    # Replicas: the user's preferences row is locked first, so a second scheduler sending the same
    # digest waits, then finds the items gone (rather than failing on the notification's id).
    await preferences.lock(uow.session, user_id)
    rows = await inbox.held_for(uow.session, user_id)
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
    await inbox.add_digest(
        uow.session,
        {
            "id": notification_id,
            "user_id": user_id,
            "event_id": event_id,
            "event_type": DIGEST_TYPE,
            "title": message.title,
            "body": message.body,
            "link": link,
            "created_at": moment,
        },
        [r.id for r in rows],
    )
    await preferences.set_last_digest(uow.session, user_id, boundary)
    await uow.publish(
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
    person = await preferences.email_for_digest(uow.session, user_id)
    if notifier.email_on and person is not None and person.email and person.email_enabled is not False:
        await notifier.queue(
            uow,
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
