"""Composition root of the registry: builds the app and wires its dependencies.

`uvicorn registry.bootstrap:create_app --factory --port 8001` runs it; tests call `create_app(settings,
key_source=...)` with their own settings and, optionally, extra token keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from kkmp_shared import refdata
from kkmp_shared.app import create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.db import upsert_insert
from kkmp_shared.events.contracts import (
    CooperativeRegistered,
    CooperativeUpdated,
    MemberJoined,
    PotentialMapped,
    TrainingCompleted,
    UserCreated,
)
from sqlalchemy import select

from registry.adapters import orm
from registry.adapters.keys import CLOCK_LEEWAY_S, KeyStore, starting_key
from registry.domain.rules import load_regions
from registry.entrypoints.api import ROUTERS
from registry.service_layer import handlers
from registry.settings import RegistrySettings

log = logging.getLogger("kkmp.registry")

SERVICE_DIR = Path(__file__).resolve().parent.parent
DEMO_SERVICE_CLIENTS = "kkmp-service:kkmp-demo-service-secret"
# Rows per INSERT of the region upsert: both databases cap bound parameters per statement (a province's
# or the country's 83,000 kelurahan would not fit in one).
REGION_CHUNK = 1000


class OwnKeyFirst(KeySource):
    """The registry's own public key, then (tests, key rotation) any further source."""

    def __init__(self, own: KeySource, extra: KeySource | None = None) -> None:
        self.own = own
        self.extra = extra

    async def get(self, kid: str | None) -> Any:
        key = await self.own.get(kid)
        if key is None and self.extra is not None:
            key = await self.extra.get(kid)
        return key


def parse_clients(spec: str | None) -> dict[str, str]:
    clients = {}
    for item in (spec or "").split(","):
        if ":" in item:
            cid, secret = item.split(":", 1)
            clients[cid.strip()] = secret.strip()
    return clients


async def load_reference_regions(app: FastAPI) -> None:
    """Upsert the regions from the reference CSVs: restarting never duplicates, a new list extends."""
    settings: RegistrySettings = app.state.settings
    kelurahan_csv = settings.regions_csv or refdata.path(refdata.KELURAHAN)
    coords_csv = settings.coords_csv or refdata.path(refdata.COORDS)
    kecamatan, kelurahan = load_regions(kelurahan_csv, coords_csv)
    db = app.state.db
    insert = upsert_insert(db)
    async with db.transaction() as session:
        for table, rows in (
            (
                orm.kecamatan,
                [
                    {"code": r.code, "name": r.name, "city_code": r.parent_code, "lat": r.lat, "lon": r.lon}
                    for r in kecamatan
                ],
            ),
            (
                orm.kelurahan,
                [
                    {
                        "code": r.code,
                        "name": r.name,
                        "kecamatan_code": r.parent_code,
                        "lat": r.lat,
                        "lon": r.lon,
                    }
                    for r in kelurahan
                ],
            ),
        ):
            for start in range(0, len(rows), REGION_CHUNK):
                chunk = rows[start : start + REGION_CHUNK]
                stmt = insert(table).values(chunk)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[table.c.code], set_={c: stmt.excluded[c] for c in chunk[0] if c != "code"}
                )
                await session.execute(stmt)
    log.info("regions loaded: %d kecamatan, %d kelurahan", len(kecamatan), len(kelurahan))


async def install_signing_key(app: FastAPI) -> None:
    """Add the key this registry starts with to the shared key store, unless it is there already (a
    replica, a restart): added, it signs from now on, and the keys that signed until now verify the
    tokens they signed until those have expired."""
    settings: RegistrySettings = app.state.settings
    added = await app.state.keys.install(
        app.state.signing_key, retire_after_s=settings.token_ttl_s + CLOCK_LEEWAY_S
    )
    if added:
        log.info("signing key %s added to the key store", app.state.signing_key.kid)


async def ensure_admin(app: FastAPI) -> None:
    settings: RegistrySettings = app.state.settings
    async with app.state.db.session() as session:
        existing = (
            await session.execute(select(orm.users.c.id).where(orm.users.c.username == "admin"))
        ).scalar()
        if existing:
            return
        created = await handlers.ensure_admin(session, app.state.outbox, settings.effective_admin_password())
    if created and settings.demo and not settings.admin_password:
        log.warning(
            "demo admin created: username 'admin', password '%s'", settings.effective_admin_password()
        )


def create_app(
    settings: RegistrySettings | None = None,
    *,
    key_source: Callable[[RegistrySettings], KeySource] | None = None,
) -> FastAPI:
    """The registry app. `key_source` adds keys that verify tokens besides the registry's own (tests
    mint tokens with their own key; an operator rotating keys can accept the previous one a while)."""
    settings = settings or RegistrySettings()
    handlers.configure_password_hashing(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    try:
        signing_key = starting_key(
            pem=settings.signing_key,
            path=settings.signing_key_path,
            demo=settings.demo,
            data_dir=settings.data_dir,
        )
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    extra = key_source(settings) if key_source is not None else None
    app = create_service_app(
        settings,
        title="KKMP Registry",
        description="Regions, cooperatives (KKMP), boards, members, potentials, trainings, users and tokens.",
        tables=orm.messaging,
        migrations=SERVICE_DIR / "migrations",
        routers=ROUTERS,
        publishes=[
            CooperativeRegistered,
            CooperativeUpdated,
            MemberJoined,
            PotentialMapped,
            TrainingCompleted,
            UserCreated,
        ],
        on_startup=[install_signing_key, load_reference_regions, ensure_admin],
        # The registry verifies its own tokens with its key store: no JWKS round trip to itself.
        key_source=lambda _settings: OwnKeyFirst(app.state.keys, extra),
    )
    # The key this registry started with; the key store (in the database) has it once started.
    app.state.signing_key = signing_key
    app.state.keys = KeyStore(app.state.db)
    clients = parse_clients(settings.service_clients)
    if not clients and settings.demo:
        clients = parse_clients(DEMO_SERVICE_CLIENTS)
    app.state.service_clients = clients
    return app
