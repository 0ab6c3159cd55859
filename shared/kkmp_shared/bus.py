"""A service's internal message bus: which handlers react to which internal event.

Internal events are plain dataclasses named as past-tense facts (`SupplyNeedSubmitted`). They never
leave the process: what other services must hear goes through the outbox (`uow.publish`). A handler
runs in the unit of work that raised the event, so the reaction commits or rolls back with the cause.
Registering a handler here, in the service's bootstrap, is what lets two use cases react to each other
without importing each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kkmp_shared.unit_of_work import UnitOfWork

E = TypeVar("E")
EventHandler = Callable[[Any, UnitOfWork], Awaitable[None]]


class MessageBus:
    def __init__(self) -> None:
        self._handlers: dict[type, list[EventHandler]] = {}

    def subscribe(self, event_type: type[E], handler: Callable[[E, UnitOfWork], Awaitable[None]]) -> None:
        self._handlers.setdefault(event_type, []).append(handler)

    def handlers(self, event_type: type) -> list[EventHandler]:
        return list(self._handlers.get(event_type, []))

    async def handle(self, event: object, uow: UnitOfWork) -> None:
        """Run every handler of `event`'s type, in the order they were subscribed. An event nobody
        handles is a wiring mistake, not something to drop quietly."""
        handlers = self._handlers.get(type(event))
        if not handlers:
            raise LookupError(f"no handler subscribed to {type(event).__name__}")
        for handler in handlers:
            await handler(event, uow)
