"""Reporting's subscriptions: every event type of the contract, listed here in one place.

Reporting binds every type so that each publisher's relay (which publishes with `mandatory`) always
has a route. Queues are grouped so that events whose order matters share one queue (one worker, in
order): a cooperative's registration before its members, a stock item's `stalled` before its
`recovered`, a need's submission before its status changes. Every handler stores the event in the
event store and applies its projection, in the inbox transaction; a batch of new events is stored in
one statement and projected with `Projector.apply_many` (runs of `stock.moved` set-based).
"""

from __future__ import annotations

from kkmp_shared.bootstrap import Platform
from kkmp_shared.events.contracts import (
    EVENT_MODELS,
    CooperativeHealthChanged,
    CooperativeRegistered,
    CooperativeUpdated,
    EventData,
    MemberJoined,
    NeedStatusChanged,
    NeedSubmitted,
    NotificationDelivered,
    NotificationFailed,
    OrderDelivered,
    OrderPlaced,
    PotentialMapped,
    PriceCeilingExceeded,
    RedistributionAccepted,
    RedistributionProposed,
    ReportOverdue,
    ReportSubmitted,
    StockLow,
    StockMoved,
    StockRecovered,
    StockStalled,
    StockStockout,
    SupplierMatched,
    TrainingCompleted,
    UserCreated,
)
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import BatchHandler, ConsumerGroup, Handler
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.service_layer.projections import Projector, record, record_many

# queue purpose → event types ("reporting.<purpose>")
SUBSCRIPTIONS: dict[str, tuple[type[EventData], ...]] = {
    "directory": (CooperativeRegistered, CooperativeUpdated, MemberJoined),
    "registry": (PotentialMapped, TrainingCompleted, UserCreated),
    "stock": (StockMoved, StockLow, StockStockout, StockStalled, StockRecovered, PriceCeilingExceeded),
    "sourcing": (
        NeedSubmitted,
        NeedStatusChanged,
        SupplierMatched,
        RedistributionProposed,
        RedistributionAccepted,
        OrderPlaced,
        OrderDelivered,
    ),
    "own": (CooperativeHealthChanged, ReportSubmitted, ReportOverdue),
    "notifications": (NotificationDelivered, NotificationFailed),
}
# A type added to the contract later is still bound (and stored) before anyone writes a projection.
OTHER = "other"


def make_handler(platform: Platform, projector: Projector) -> Handler:
    async def store_and_project(session: AsyncSession, event: CloudEvent, data: EventData) -> None:
        async with platform.joined(session) as uow:
            await record(uow, projector, event, data)

    return store_and_project


def make_batch_handler(platform: Platform, projector: Projector) -> BatchHandler:
    async def store_and_project_many(
        session: AsyncSession, events: list[tuple[CloudEvent, EventData]]
    ) -> None:
        async with platform.joined(session) as uow:
            await record_many(uow, projector, events)

    return store_and_project_many


def build_consumers(platform: Platform, projector: Projector) -> ConsumerGroup:
    group = ConsumerGroup("reporting")
    handler = make_handler(platform, projector)
    batch_handler = make_batch_handler(platform, projector)
    bound = {model.event_type for models in SUBSCRIPTIONS.values() for model in models}
    others = tuple(model for event_type, model in sorted(EVENT_MODELS.items()) if event_type not in bound)
    for purpose, models in {**SUBSCRIPTIONS, OTHER: others}.items():
        for model in models:
            group.add(purpose, model, handler)
        if models:
            group.in_batches(purpose, batch_handler)
    return group
