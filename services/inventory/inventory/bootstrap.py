"""Composition root of the inventory: builds the app and wires its dependencies.

Started as `uvicorn inventory.bootstrap:create_app --factory --port 8002`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from kkmp_shared import clock, refdata
from kkmp_shared.app import create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.directory import COOPERATIVE_CHANGED
from kkmp_shared.events.contracts import (
    PriceCeilingExceeded,
    StockLow,
    StockMoved,
    StockRecovered,
    StockStalled,
    StockStockout,
)
from kkmp_shared.messaging.outbox import Outbox
from kkmp_shared.settings import ServiceSettings

from inventory.adapters import orm
from inventory.adapters.repository import STOCK_CHANGED
from inventory.adapters.stock_cache import StockReadCache
from inventory.entrypoints.api import ROUTERS
from inventory.entrypoints.consumers import subscriptions
from inventory.entrypoints.fast_stock import CachedStockPage
from inventory.service_layer.catalogue import seed_catalogue
from inventory.service_layer.detection import detection_loop
from inventory.settings import InventorySettings

log = logging.getLogger("kkmp.inventory")

SERVICE_DIR = Path(__file__).resolve().parent.parent


async def load_catalogue(app: FastAPI) -> None:
    """Seed the commodity catalogue from the reference commodities.csv (new codes only; admin edits stay)."""
    settings: InventorySettings = app.state.settings
    path = settings.commodities_csv or refdata.path(refdata.COMMODITIES)
    async with app.state.db.transaction() as session:
        await seed_catalogue(session, path, clock.now())


def create_app(
    settings: InventorySettings | None = None,
    *,
    key_source: Callable[[ServiceSettings], KeySource] | None = None,
) -> FastAPI:
    settings = settings or InventorySettings()
    # The same outbox table and source the app's own Outbox uses; the consumers stage events with it.
    outbox = Outbox(orm.messaging, source=f"/{settings.service_name}")
    app = create_service_app(
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
        consumers=subscriptions(outbox),
        on_startup=[load_catalogue],
        background=[detection_loop],
        key_source=key_source,
        middleware=[CachedStockPage],
    )
    app.state.scan_lock = asyncio.Lock()
    cache = StockReadCache(ttl_s=settings.stock_cache_ttl_s, size=settings.stock_cache_size)
    app.state.stock_cache = cache
    app.state.db.on_change(STOCK_CHANGED, cache.forget)
    app.state.db.on_change(COOPERATIVE_CHANGED, cache.forget)
    return app
