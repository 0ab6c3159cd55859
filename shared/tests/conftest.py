"""Fixtures for the common library's tests: a real broker (own vhost per test) and real databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import APIRouter
from kkmp_shared import clock
from kkmp_shared.app import OutboxDep, SessionDep, create_service_app
from kkmp_shared.db import new_metadata
from kkmp_shared.events.contracts import MemberJoined
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from kkmp_shared.messaging.tables import add_messaging_tables
from kkmp_shared.settings import ServiceSettings
from kkmp_shared.telemetry import setup_tracing
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.tokens import TokenFactory
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession


@pytest.fixture(scope="session")
def broker_url() -> str:
    return ensure_broker()


@pytest.fixture
def amqp_url(broker_url: str) -> Iterator[str]:
    with temporary_vhost(broker_url, prefix="shared") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"
        return
    ensure_postgres()
    url = await acreate_database("kkmp_shared")
    yield url
    await adrop_database(url)


# A toy service (one table of effects; an item's creation is announced as `member.joined.v1` and the
# same service consumes it) exercises the library exactly as the services use it.
SPANS = InMemorySpanExporter()
setup_tracing("toy", extra_exporter=SPANS)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return SPANS


@pytest.fixture
def toy_app() -> Any:
    return make_toy_app


def make_toy_app(amqp_url: str, database_url: str, **overrides: Any) -> Any:
    metadata = new_metadata()
    tables = add_messaging_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("member_id", String(36)),
        Column("event_id", String(36)),
    )
    router = APIRouter()

    @router.post("/items/{name}", status_code=201)
    async def create(name: str, session: SessionDep, outbox: OutboxDep) -> dict[str, str]:
        member_id = str(uuid.uuid4())
        await outbox.add(
            session,
            MemberJoined(
                cooperative_id="c1",
                kelurahan_code="35.78.01.1001",
                kecamatan_code="35.78.01",
                member_id=member_id,
                kind="resident",
                sector=name,
                member_count=1,
                joined_at=clock.now(),
            ),
        )
        await session.commit()
        return {"member_id": member_id}

    group = ConsumerGroup("toy")

    @group.on("members", MemberJoined)
    async def on_member(session: AsyncSession, event: CloudEvent, data: MemberJoined) -> None:
        if data.sector == "fail":
            raise RuntimeError("handler failure on purpose")
        await session.execute(insert(effects).values(member_id=data.member_id, event_id=event.id))

    os.environ["TOY_DATABASE_URL"] = database_url
    options: dict[str, Any] = {"retry_delays_ms": [100, 200], "relay_poll_interval_s": 0.1, **overrides}
    settings = ServiceSettings(service_name="toy", amqp_url=amqp_url, demo=True, **options)
    app = create_service_app(
        settings,
        title="toy",
        description="toy",
        tables=tables,
        migrations=None,
        metadata=metadata,
        routers=[router],
        publishes=[MemberJoined],
        consumers=group,
        key_source=lambda _s: TokenFactory().key_source(),
    )
    app.state.effects = effects

    async def effect_count(member_id: str | None = None) -> int:
        query = select(func.count()).select_from(effects)
        if member_id:
            query = query.where(effects.c.member_id == member_id)
        async with app.state.db.session() as session:
            return int((await session.execute(query)).scalar_one())

    app.state.effect_count = effect_count
    return app
