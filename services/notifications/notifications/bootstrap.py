"""Composition root of the notifications service: builds the app and wires its dependencies.

Besides the routes and the consumers, two background jobs run in the process: the delivery workers
(email and webhook sends, from the `deliveries` table) and the scheduler (escalations and daily
digests). Started as `uvicorn notifications.bootstrap:create_app --factory --port 8005`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from kkmp_shared import refdata
from kkmp_shared.app import create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.events.contracts import NotificationDelivered, NotificationFailed
from kkmp_shared.messaging.outbox import Outbox
from kkmp_shared.settings import ServiceSettings

from notifications.adapters import orm, reference
from notifications.entrypoints.api import ROUTERS
from notifications.entrypoints.consumers import build_consumers
from notifications.service_layer import deliveries, digests, escalation, handlers
from notifications.service_layer.fanout import Notifier
from notifications.settings import NotificationsSettings

log = logging.getLogger("kkmp.notifications")

SERVICE_DIR = Path(__file__).resolve().parent.parent


async def seed_routing_rules(app: FastAPI) -> None:
    async with app.state.db.transaction() as session:
        added = await handlers.seed_contract_rules(session)
    if added:
        log.info("routing table: %d contract rules added", added)


async def delivery_loop(app: FastAPI) -> None:
    await app.state.delivery_worker.run()


async def scheduler_loop(app: FastAPI) -> None:
    """Escalations and digests, every SCHEDULER_INTERVAL_S; a failing round is logged and retried."""
    settings: NotificationsSettings = app.state.settings
    notifier: Notifier = app.state.notifier
    while True:
        try:
            escalated = await escalation.escalate_due(app.state.db, notifier)
            sent = await digests.send_due(app.state.db, notifier)
            async with app.state.db.session() as session:
                await deliveries.pending_count(session)
            if escalated or sent["digests"]:
                log.info("scheduler: %d needs escalated, %d digests sent", escalated, sent["digests"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler round failed")
        await asyncio.sleep(settings.scheduler_interval_s)


def create_app(
    settings: NotificationsSettings | None = None,
    *,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or NotificationsSettings()
    data_dir = settings.reference_data_dir or refdata.directory()
    # The same outbox the app factory builds (same table, same source): the consumers need it first.
    outbox = Outbox(orm.messaging, source=f"/{settings.service_name}")
    notifier = Notifier(
        settings=settings,
        outbox=outbox,
        commodity_names=reference.commodity_names(data_dir),
        kelurahan_names=reference.kelurahan_names(data_dir),
    )
    app = create_service_app(
        settings,
        title="KKMP Notifications",
        description=(
            "Who hears about which event, once, on the channel they use: the in-app inbox, email and "
            "signed webhooks (a WhatsApp or SMS gateway is a webhook subscription). The routing table "
            "is data the administrator extends."
        ),
        tables=orm.messaging,
        migrations=SERVICE_DIR / "migrations",
        routers=ROUTERS,
        publishes=[NotificationDelivered, NotificationFailed],
        consumers=build_consumers(notifier),
        on_startup=[seed_routing_rules],
        background=[delivery_loop, scheduler_loop],
        key_source=key_source,
    )
    worker = deliveries.DeliveryWorker(app.state.db, outbox, settings)
    notifier.worker = worker
    if app.state.relay is not None:
        # The inbox's `notification.delivered` events are published once a burst's webhooks are out.
        app.state.relay.before_drain = worker.sends_first
    app.state.notifier = notifier
    app.state.delivery_worker = worker
    return app
