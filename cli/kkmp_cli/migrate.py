"""`kkmp migrate`: bring services' databases to their code's schema, as a one-off job.

Replicas may then start with `MIGRATE_ON_START=false`. Each service's database is the one its settings
name (`<SERVICE>_DATABASE_URL`, then `DATABASE_URL`, then the SQLite file in `KKMP_DATA_DIR`), reached
as `DATABASE_POOLER` says. On PostgreSQL the upgrade takes the same advisory lock as a starting
replica, so running this while replicas start is safe.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kkmp_shared.db import run_migrations
from kkmp_shared.settings import ServiceSettings

from kkmp_cli.services import available


def migrated_services() -> list[str]:
    """The services that own a database (those with an Alembic directory), in start order."""
    return [spec.name for spec in available() if migrations_dir(spec.name).is_dir()]


def migrations_dir(service: str) -> Path:
    spec = importlib.util.find_spec(service)
    if spec is None or not spec.submodule_search_locations:
        raise KeyError(service)
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent / "migrations"


def migrate(services: list[str]) -> list[tuple[str, str]]:
    """Upgrade each service's database to head; returns (service, database URL without password)."""
    done = []
    for service in services:
        # The base settings: only the database is needed, not the service's own secrets.
        settings = ServiceSettings(service_name=service, broker_enabled=False)  # migrating needs no broker
        url = settings.database_url
        run_migrations(migrations_dir(service), url, pooler=settings.database_pooler)
        done.append((service, _hide_password(url)))
    return done


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
