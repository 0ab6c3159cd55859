"""Composition root of the notifications service: builds the platform, the delivery worker and the
fan-out, hands them to the consumers, the background jobs and the routes, then builds the app.

Started as `uvicorn notifications.bootstrap:create_app --factory --port 8005`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from kkmp_shared import refdata
from kkmp_shared.app import AppHook, create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.bootstrap import Platform, build_platform
from kkmp_shared.events.contracts import NotificationDelivered, NotificationFailed
from kkmp_shared.settings import ServiceSettings

from notifications.adapters import orm, reference
from notifications.entrypoints.api import ROUTERS
from notifications.entrypoints.consumers import build_consumers
from notifications.service_layer import delivery_log, digests, escalation, routing_rules
from notifications.service_layer.deliveries import DeliveryWorker
from notifications.service_layer.fanout import Notifier
from notifications.settings import NotificationsSettings

log = logging.getLogger("kkmp.notifications")

SERVICE_DIR = Path(__file__).resolve().parent.parent


def seed_routing_rules(platform: Platform) -> AppHook:
    async def seed_routing_rules(_app: FastAPI) -> None:
        async with platform.unit_of_work() as uow:
            added = await routing_rules.seed_contract_rules(uow)
        if added:
            log.info("routing table: %d contract rules added", added)

    return seed_routing_rules


def delivery_loop(worker: DeliveryWorker) -> AppHook:
    async def delivery_loop(_app: FastAPI) -> None:
        await worker.run()

    return delivery_loop


def scheduler_loop(platform: Platform, notifier: Notifier) -> AppHook:
    async def scheduler_loop(_app: FastAPI) -> None:
        """Escalations and digests, every SCHEDULER_INTERVAL_S; a failing round is logged and retried."""
        while True:
            try:
                escalated = await escalation.escalate_due(platform.unit_of_work, notifier)
                sent = await digests.send_due(platform.unit_of_work, notifier)
                async with platform.db.session() as session:
                    await delivery_log.pending_count(session)
                if escalated or sent["digests"]:
                    log.info("scheduler: %d needs escalated, %d digests sent", escalated, sent["digests"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler round failed")
            await asyncio.sleep(notifier.settings.scheduler_interval_s)

    return scheduler_loop


def create_app(
    settings: NotificationsSettings | None = None,
    *,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or NotificationsSettings()
    data_dir = settings.reference_data_dir or refdata.directory()
    platform = build_platform(settings, orm.messaging)
    worker = DeliveryWorker(platform.unit_of_work, settings)
    notifier = Notifier(
        settings=settings,
        commodity_names=reference.commodity_names(data_dir),
        kelurahan_names=reference.kelurahan_names(data_dir),
        worker=worker,
    )
    return create_service_app(
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
        consumers=build_consumers(platform, notifier),
        on_startup=[seed_routing_rules(platform)],
        background=[delivery_loop(worker), scheduler_loop(platform, notifier)],
        key_source=key_source,
        platform=platform,
        state={"notifier": notifier, "delivery_worker": worker},
        # The inbox's `notification.delivered` events are published once a burst's webhooks are out.
        relay_before_drain=worker.sends_first,
    )
