"""Composition root of sourcing: builds the app and wires its dependencies.

`uvicorn sourcing.bootstrap:create_app --factory --port 8003`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from kkmp_shared.app import create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.directory import CooperativeDirectory
from kkmp_shared.events.contracts import (
    NeedStatusChanged,
    NeedSubmitted,
    OrderDelivered,
    OrderPlaced,
    RedistributionAccepted,
    RedistributionProposed,
    SupplierMatched,
)
from kkmp_shared.settings import ServiceSettings

from sourcing.adapters import orm
from sourcing.adapters.reference import load_reference
from sourcing.entrypoints.api import ROUTERS
from sourcing.entrypoints.consumers import subscriptions
from sourcing.service_layer.common import Context
from sourcing.settings import SourcingSettings

SERVICE_DIR = Path(__file__).resolve().parent.parent


def create_app(
    settings: SourcingSettings | None = None,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or SourcingSettings()
    ctx = Context(
        settings=settings,
        reference=load_reference(settings.commodities_csv, settings.coords_csv),
        directory=CooperativeDirectory(orm.cooperatives),
    )
    app = create_service_app(
        settings,
        title="KKMP Sourcing",
        description=(
            "Suppliers, needs (kebutuhan/kendala), supplier matching, redistribution of stalled stock "
            "(stok macet) and orders."
        ),
        tables=orm.messaging,
        migrations=SERVICE_DIR / "migrations",
        routers=ROUTERS,
        publishes=[
            NeedSubmitted,
            NeedStatusChanged,
            SupplierMatched,
            RedistributionProposed,
            RedistributionAccepted,
            OrderPlaced,
            OrderDelivered,
        ],
        consumers=subscriptions(ctx),
        key_source=key_source,
    )
    # Consumers reach the same outbox as the routes (it exists only once the app is built).
    ctx.outbox = app.state.outbox
    app.state.ctx = ctx
    return app
