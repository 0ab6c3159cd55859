"""The platform a bench measures: a private vhost of the real broker, one throwaway PostgreSQL
database per service, and the services started as processes (`Platform`); all removed afterwards."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.processes import Platform
from kkmp_testkit.rabbit import create_vhost, delete_vhost, ensure_broker, vhost_url


@asynccontextmanager
async def running_platform(
    prefix: str, services: Sequence[str], env: dict[str, str] | None = None
) -> AsyncIterator[tuple[Platform, str]]:
    """The started platform and its broker URL; `env` is added to the services' environment."""
    base = ensure_broker()
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_vhost(vhost)
    databases: dict[str, str] = {}
    try:
        ensure_postgres()
        for name in services:
            databases[name] = await acreate_database(f"{prefix}_{name}")
        work = Path(tempfile.mkdtemp(prefix=f"kkmp-{prefix}-"))
        amqp_url = vhost_url(base, vhost)
        plat = Platform(amqp_url, work, databases, extra_env={"LOG_LEVEL": "WARNING", **(env or {})})
        try:
            await asyncio.to_thread(plat.start, services)
            yield plat, amqp_url
        finally:
            await asyncio.to_thread(plat.stop)
    finally:
        for url in databases.values():
            await adrop_database(url)
        delete_vhost(vhost)
