"""The unit of work: one business transaction, the events it announces, and its commit.

Use cases take a `UnitOfWork` and never commit: whoever opened the unit of work ends it. An HTTP route
gets one from `UowDep` (committed after the route returns, before the answer is sent); a consumer gets
one from `Platform.joined(session)`, over the transaction the consumer runner commits together with the
inbox row. Internal events (`uow.emit`) are handled by the service's `MessageBus` in the same transaction,
before it commits, so a crash cannot keep the change and lose its follow-up.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from kkmp_shared.events.contracts import EventData
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.outbox import Outbox

if TYPE_CHECKING:
    from kkmp_shared.bus import MessageBus


class UnitOfWork:
    """`async with UnitOfWork(...) as uow:` commits at the end of the block (when it owns the
    transaction), or rolls back if the block raises."""

    def __init__(
        self, session: AsyncSession, outbox: Outbox, bus: MessageBus | None = None, *, owns: bool = True
    ) -> None:
        self.session = session
        self.outbox = outbox
        self.bus = bus
        self.owns = owns
        self._internal: list[object] = []

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is None:
                await self.handle_internal()
                if self.owns:
                    await self.session.commit()
        except BaseException:
            if self.owns:
                await self.session.rollback()
            raise
        finally:
            self._internal.clear()
            if self.owns:
                await self.session.close()

    async def publish(self, data: EventData, *, subject: str | None = None) -> CloudEvent:
        """Stage an integration event in the outbox: it is published only if this unit commits."""
        return await self.outbox.add(self.session, data, subject=subject)

    async def publish_many(self, items: list[EventData], *, subject: str | None = None) -> list[CloudEvent]:
        return await self.outbox.add_many(self.session, items, subject=subject)

    def emit(self, event: object) -> None:
        """Raise an internal event, handled by this service's bus in the same transaction."""
        if self.bus is None:
            raise RuntimeError(f"no message bus to handle {type(event).__name__}")
        self._internal.append(event)

    async def handle_internal(self) -> None:
        """Hand the internal events raised so far (and those their handlers raise) to the bus."""
        while self._internal:
            event = self._internal.pop(0)
            assert self.bus is not None
            await self.bus.handle(event, self)
