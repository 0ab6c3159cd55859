"""What every service builds first, before its app: the database, the outbox and the internal bus.

A service's `bootstrap.py` calls `build_platform`, hands the platform to its consumers and use cases,
then passes it to `create_service_app`; nothing is built twice and nothing is patched afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from kkmp_shared.bus import MessageBus
from kkmp_shared.db import Database
from kkmp_shared.messaging.outbox import Outbox
from kkmp_shared.messaging.tables import MessagingTables
from kkmp_shared.settings import ServiceSettings
from kkmp_shared.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Platform:
    settings: ServiceSettings
    tables: MessagingTables
    db: Database
    outbox: Outbox
    bus: MessageBus = field(default_factory=MessageBus)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A new transaction, committed at the end of the block (rolled back if it raises)."""
        async with UnitOfWork(self.db.session(), self.outbox, self.bus) as uow:
            yield uow

    @asynccontextmanager
    async def joined(self, session: AsyncSession) -> AsyncIterator[UnitOfWork]:
        """A unit of work over a transaction someone else commits (the consumer runner, with the
        inbox row): internal events are handled at the end of the block, nothing is committed."""
        async with UnitOfWork(session, self.outbox, self.bus, owns=False) as uow:
            yield uow


def build_platform(
    settings: ServiceSettings, tables: MessagingTables, bus: MessageBus | None = None
) -> Platform:
    db = Database(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pooler=settings.database_pooler,
    )
    outbox = Outbox(tables, source=f"/{settings.service_name}")
    return Platform(settings=settings, tables=tables, db=db, outbox=outbox, bus=bus or MessageBus())
