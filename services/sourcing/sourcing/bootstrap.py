"""Composition root of sourcing: builds the platform and the context, wires the internal bus and the
consumers to them, then the app.

`uvicorn sourcing.bootstrap:create_app --factory --port 8003`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from kkmp_shared.app import create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.bootstrap import build_platform
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
from sourcing.service_layer import proposals
from sourcing.service_layer.common import Context
from sourcing.service_layer.events import SupplyNeedSubmitted
from sourcing.settings import SourcingSettings

SERVICE_DIR = Path(__file__).resolve().parent.parent


def create_app(
    settings: SourcingSettings | None = None,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or SourcingSettings()
    platform = build_platform(settings, orm.messaging)
    ctx = Context(
        settings=settings,
        reference=load_reference(settings.commodities_csv, settings.coords_csv),
        directory=CooperativeDirectory(orm.cooperatives),
    )
    platform.bus.subscribe(SupplyNeedSubmitted, partial(proposals.offer_stalled_for_need, ctx=ctx))
    return create_service_app(
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
        consumers=subscriptions(platform, ctx),
        key_source=key_source,
        platform=platform,
        state={"ctx": ctx},
    )
