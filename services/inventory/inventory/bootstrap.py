"""Composition root of the inventory, and the reference for every service's (docs/architecture.md):
settings, then the platform (database, outbox, bus), then what the use cases and consumers need, then
the app, given all of it at once. Started as `uvicorn inventory.bootstrap:create_app --factory`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from kkmp_shared import refdata
from kkmp_shared.app import create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.bootstrap import build_platform
from kkmp_shared.directory import COOPERATIVE_CHANGED
from kkmp_shared.events.contracts import (
    PriceCeilingExceeded,
    StockLow,
    StockMoved,
    StockRecovered,
    StockStalled,
    StockStockout,
)
from kkmp_shared.settings import ServiceSettings

from inventory.adapters import orm, repository
from inventory.adapters.stock_cache import StockReadCache
from inventory.entrypoints.api import ROUTERS
from inventory.entrypoints.consumers import subscriptions
from inventory.entrypoints.fast_stock import CachedStockPage
from inventory.service_layer.catalogue import seed_catalogue
from inventory.service_layer.commands import SeedCatalogue
from inventory.service_layer.detection import scheduled_detection
from inventory.settings import InventorySettings

SERVICE_DIR = Path(__file__).resolve().parent.parent


def create_app(
    settings: InventorySettings | None = None,
    *,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or InventorySettings()
    platform = build_platform(settings, orm.messaging)
    stock_cache = StockReadCache(ttl_s=settings.stock_cache_ttl_s, size=settings.stock_cache_size)
    scan_lock = asyncio.Lock()  # one detection scan at a time in this process
    # This process's read copies go when a commit of this process changes what they were read from.
    platform.db.on_change(repository.STOCK_CHANGED, stock_cache.forget)
    platform.db.on_change(COOPERATIVE_CHANGED, stock_cache.forget)
    platform.db.on_change(
        repository.CATALOGUE_CHANGED, lambda _: repository.forget_catalogue(platform.db.engine)
    )

    async def load_catalogue(_app: FastAPI) -> None:
        """Seed the commodity catalogue (new codes only; an admin's changes stay)."""
        command = SeedCatalogue(settings.commodities_csv or refdata.path(refdata.COMMODITIES))
        async with platform.unit_of_work() as uow:
            await seed_catalogue(uow, command)

    async def detection_loop(_app: FastAPI) -> None:
        await scheduled_detection(platform, scan_lock, settings)

    return create_service_app(
        settings,
        title="KKMP Inventory",
        description=(
            "Commodity catalogue (HET/HAP ceilings), each cooperative's stock ledger and stock on hand, and "
            "detection of stalled (stok macet), low and out-of-stock items and of sales above the ceiling."
        ),
        tables=orm.messaging,
        migrations=SERVICE_DIR / "migrations",
        routers=ROUTERS,
        publishes=[StockMoved, StockLow, StockStockout, StockStalled, StockRecovered, PriceCeilingExceeded],
        consumers=subscriptions(platform),
        on_startup=[load_catalogue],
        background=[detection_loop],
        key_source=key_source,
        middleware=[CachedStockPage],
        platform=platform,
        state={"stock_cache": stock_cache, "scan_lock": scan_lock},
    )
