"""Composition root of the registry: builds its dependencies, then the app around them.

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
from kkmp_shared.app import AppHook, create_service_app
from kkmp_shared.auth import KeySource
from kkmp_shared.bootstrap import Platform, build_platform
from kkmp_shared.errors import ApiError
from kkmp_shared.events.contracts import (
    CooperativeRegistered,
    CooperativeUpdated,
    MemberJoined,
    PotentialMapped,
    TrainingCompleted,
    UserCreated,
)

from registry.adapters import orm
from registry.adapters.keys import CLOCK_LEEWAY_S, KeyStore, SigningKey, starting_key
from registry.adapters.passwords import configure_password_hashing
from registry.entrypoints.api import ROUTERS
from registry.service_layer import regions, users
from registry.service_layer.login import Login, Throttle, TokenIssuer
from registry.settings import RegistrySettings

log = logging.getLogger("kkmp.registry")

SERVICE_DIR = Path(__file__).resolve().parent.parent
DEMO_SERVICE_CLIENTS = "kkmp-service:kkmp-demo-service-secret"


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


def install_signing_key(keys: KeyStore, key: SigningKey, settings: RegistrySettings) -> AppHook:
    async def install_signing_key(_app: FastAPI) -> None:
        """Add the key this registry starts with to the shared key store, unless it is there already (a
        replica, a restart): added, it signs from now on, and the keys that signed until now verify the
        tokens they signed until those have expired."""
        if await keys.install(key, retire_after_s=settings.token_ttl_s + CLOCK_LEEWAY_S):
            log.info("signing key %s added to the key store", key.kid)

    return install_signing_key


def load_reference_regions(platform: Platform, settings: RegistrySettings) -> AppHook:
    async def load_reference_regions(_app: FastAPI) -> None:
        kelurahan_csv = settings.regions_csv or refdata.path(refdata.KELURAHAN)
        coords_csv = settings.coords_csv or refdata.path(refdata.COORDS)
        async with platform.unit_of_work() as uow:
            kecamatan, kelurahan = await regions.load_reference_regions(uow, kelurahan_csv, coords_csv)
        log.info("regions loaded: %d kecamatan, %d kelurahan", kecamatan, kelurahan)

    return load_reference_regions


def ensure_admin(platform: Platform, settings: RegistrySettings) -> AppHook:
    async def ensure_admin(_app: FastAPI) -> None:
        try:
            async with platform.unit_of_work() as uow:
                created = await users.ensure_admin(uow, settings.effective_admin_password())
        except ApiError as exc:
            if exc.status != 409:  # 409: another replica starting at the same moment created it first
                raise
            created = False
        if created and settings.demo and not settings.admin_password:
            log.warning(
                "demo admin created: username 'admin', password '%s'", settings.effective_admin_password()
            )

    return ensure_admin


def create_app(
    settings: RegistrySettings | None = None,
    *,
    key_source: Callable[[RegistrySettings], KeySource] | None = None,
) -> FastAPI:
    """The registry app. `key_source` adds keys that verify tokens besides the registry's own (tests
    mint tokens with their own key; an operator rotating keys can accept the previous one a while)."""
    settings = settings or RegistrySettings()
    configure_password_hashing(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    try:
        # The key this registry started with; the key store (in the database) has it once started.
        signing_key = starting_key(
            pem=settings.signing_key,
            path=settings.signing_key_path,
            demo=settings.demo,
            data_dir=settings.data_dir,
        )
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    extra = key_source(settings) if key_source is not None else None
    platform = build_platform(settings, orm.messaging)
    keys = KeyStore(platform.db)
    clients = parse_clients(settings.service_clients)
    if not clients and settings.demo:
        clients = parse_clients(DEMO_SERVICE_CLIENTS)
    login = Login(
        units=platform.unit_of_work,
        throttle=Throttle(
            max_failures=settings.login_max_failures,
            max_failures_per_ip=settings.login_max_failures_per_ip,
            window_s=settings.login_window_s,
        ),
        tokens=TokenIssuer(
            keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=settings.token_ttl_s
        ),
        clients=clients,
    )
    return create_service_app(
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
        on_startup=[
            install_signing_key(keys, signing_key, settings),
            load_reference_regions(platform, settings),
            ensure_admin(platform, settings),
        ],
        # The registry verifies its own tokens with its key store: no JWKS round trip to itself.
        key_source=lambda _settings: OwnKeyFirst(keys, extra),
        platform=platform,
        state={"signing_key": signing_key, "keys": keys, "service_clients": clients, "login": login},
    )
