"""Projections: how each event changes reporting's read model.

The same `Projector` runs for a live event (in the consumer's transaction) and for a stored one in a
rebuild, so a replay arrives at the same rows. A projection uses only the event, never the clock; the
rules that redelivery or reordering could upset live in `domain.stock` and `domain.needs`. Events kept
but not projected are still stored, for a projection added later and filled by a rebuild.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from kkmp_shared.directory import CooperativeDirectory
from kkmp_shared.events.contracts import (
    CooperativeRegistered,
    CooperativeUpdated,
    EventData,
    MemberJoined,
    NeedStatusChanged,
    NeedSubmitted,
    PriceCeilingExceeded,
    StockLow,
    StockMoved,
    StockRecovered,
    StockStalled,
    StockStockout,
    TrainingCompleted,
)
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import event_store, orm
from reporting.adapters import projection_store as store
from reporting.adapters.directory import directory
from reporting.adapters.sql import mark_dirty
from reporting.domain import needs as need_rules
from reporting.domain import stock as stock_rules
from reporting.domain.periods import as_utc, local_date, week_start

log = logging.getLogger("kkmp.reporting.projections")

Projection = Callable[[UnitOfWork, CloudEvent, Any], Awaitable[None]]
DirectoryHandler = Callable[[AsyncSession, CloudEvent, Any], Awaitable[None]]
# Movements applied in one go at most (keeps a statement's parameters well under the drivers' limits).
MOVED_RUN = 500


def shared_directory_handlers(directory: CooperativeDirectory) -> dict[str, DirectoryHandler]:
    """The common library's directory handlers, taken from a throw-away subscription list so that
    reporting runs them inside its own handlers (which also store the event and feed a rebuild)."""
    staging = ConsumerGroup("staging")
    directory.subscribe(staging, purpose="directory")
    return {
        event_type: handler
        for event_type, (_model, handler) in staging.subscriptions["staging.directory"].handlers.items()
    }


class Projector:
    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.directory = directory
        self._directory = shared_directory_handlers(self.directory)
        self._projections: dict[str, Projection] = {
            CooperativeRegistered.event_type: self.cooperative_registered,
            CooperativeUpdated.event_type: self.cooperative_updated,
            MemberJoined.event_type: self.member_joined,
            TrainingCompleted.event_type: self.training_completed,
            StockMoved.event_type: self.stock_moved,
            StockStalled.event_type: self.stock_stalled,
            StockLow.event_type: self.stock_low,
            StockStockout.event_type: self.stock_stockout,
            StockRecovered.event_type: self.stock_recovered,
            PriceCeilingExceeded.event_type: self.price_ceiling_exceeded,
            NeedSubmitted.event_type: self.need_submitted,
            NeedStatusChanged.event_type: self.need_status_changed,
        }

    @property
    def projected_types(self) -> set[str]:
        return set(self._projections)

    async def apply(self, uow: UnitOfWork, event: CloudEvent, data: EventData) -> None:
        projection = self._projections.get(event.type)
        if projection is not None:
            await projection(uow, event, data)

    async def apply_many(self, uow: UnitOfWork, events: Sequence[tuple[CloudEvent, EventData]]) -> None:
        """The same effect as `apply` on each event in order, with runs of `stock.moved` (the
        high-volume stream) and of `stock.stalled` (a detection scan's burst) applied set-based: one
        read and one write per table per run."""
        run: list[tuple[CloudEvent, Any]] = []
        kind: type | None = None
        for event, data in events:
            batched = type(data) if isinstance(data, (StockMoved, StockStalled)) else None
            if run and (batched is not kind or len(run) >= MOVED_RUN):
                await self._apply_run(uow, run)
                run = []
            if batched is None:
                await self.apply(uow, event, data)
            else:
                kind = batched
                run.append((event, data))
        if run:
            await self._apply_run(uow, run)

    async def _apply_run(self, uow: UnitOfWork, run: list[tuple[CloudEvent, Any]]) -> None:
        if isinstance(run[0][1], StockMoved):
            await self.stock_moved_many(uow, run)
        else:
            await self.stock_stalled_many(uow, run)

    # --- cooperatives -----------------------------------------------------------------------

    async def cooperative_registered(
        self, uow: UnitOfWork, event: CloudEvent, data: CooperativeRegistered
    ) -> None:
        await self._directory[event.type](uow.session, event, data)
        await store.save_facts(uow.session, data, as_utc(data.registered_at))
        await mark_dirty(uow.session, data.cooperative_id, data.kecamatan_code)

    async def cooperative_updated(self, uow: UnitOfWork, event: CloudEvent, data: CooperativeUpdated) -> None:
        await self._directory[event.type](uow.session, event, data)
        # An update that overtook the registration leaves registered_at unknown until it arrives.
        await store.save_facts(uow.session, data, None)
        await mark_dirty(uow.session, data.cooperative_id, data.kecamatan_code)

    async def member_joined(self, uow: UnitOfWork, event: CloudEvent, data: MemberJoined) -> None:
        await self._directory[event.type](uow.session, event, data)
        day = local_date(data.joined_at, self.tz)
        await store.count_member_joined(uow.session, data.cooperative_id, day, data.kecamatan_code)
        await mark_dirty(uow.session, data.cooperative_id, data.kecamatan_code)

    async def training_completed(self, uow: UnitOfWork, event: CloudEvent, data: TrainingCompleted) -> None:
        await store.save_training(
            uow.session,
            {
                "cooperative_id": data.cooperative_id,
                "training_id": data.training_id,
                "kecamatan_code": data.kecamatan_code,
                "title": data.title[:200],
                "topic": data.topic[:100],
                "participants": data.participants,
                "completed_at": as_utc(data.completed_at),
            },
        )
        await mark_dirty(uow.session, data.cooperative_id, data.kecamatan_code)

    # --- stock ------------------------------------------------------------------------------

    async def stock_moved(self, uow: UnitOfWork, event: CloudEvent, data: StockMoved) -> None:
        await self.stock_moved_many(uow, [(event, data)])

    async def stock_moved_many(self, uow: UnitOfWork, run: list[tuple[CloudEvent, StockMoved]]) -> None:
        """Movements in order: each item's state folded in memory, sales summed per counter row."""
        keys = list(dict.fromkeys((data.cooperative_id, data.commodity) for _, data in run))
        items = await store.load_items(uow.session, keys)
        latest: dict[tuple[str, str], StockMoved] = {}
        daily: dict[tuple[str, Any], dict[str, Any]] = {}
        coop_weekly: dict[tuple[str, str, Any], dict[str, int]] = defaultdict(_weekly_zero)
        city_weekly: dict[tuple[str, str, Any], dict[str, int]] = defaultdict(_weekly_zero)
        for event, data in run:
            key = (data.cooperative_id, data.commodity)
            is_sale = data.kind == "sale"
            occurred_at = as_utc(data.occurred_at)
            items[key] = stock_rules.apply_movement(
                items.get(key) or stock_rules.StockItem(),
                unit=data.unit,
                on_hand_after_milli=stock_rules.to_milli(data.on_hand_after),
                recorded_at=as_utc(event.time),
                sold_at=occurred_at if is_sale else None,
            )
            latest[key] = data
            if not is_sale:
                continue
            quantity = stock_rules.to_milli(data.quantity)
            value = data.value
            if value is None:
                value = round(data.unit_price * data.quantity) if data.unit_price is not None else 0
            day = local_date(occurred_at, self.tz)
            counter = daily.setdefault(
                (data.cooperative_id, day),
                {
                    "cooperative_id": data.cooperative_id,
                    "day": day,
                    "kecamatan_code": data.kecamatan_code,
                    "sale_count": 0,
                    "sale_value": 0,
                },
            )
            counter["sale_count"] += 1
            counter["sale_value"] += int(value)
            week = week_start(day)
            for totals in (
                coop_weekly[(data.cooperative_id, data.commodity, week)],
                *(
                    city_weekly[(scope, commodity, week)]
                    for scope in (data.kecamatan_code, orm.ALL)
                    for commodity in (data.commodity, orm.ALL)
                ),
            ):
                totals["quantity_milli"] += quantity
                totals["value"] += int(value)
                totals["transactions"] += 1
        await store.save_items(uow.session, [(latest[key], items[key]) for key in keys])
        await store.add_sales(
            uow.session,
            list(daily.values()),
            [
                {"cooperative_id": coop, "commodity": commodity, "week_start": week, **totals}
                for (coop, commodity, week), totals in coop_weekly.items()
            ],
            [
                {"scope": scope, "commodity": commodity, "week_start": week, **totals}
                for (scope, commodity, week), totals in city_weekly.items()
            ],
        )

    async def stock_stalled(self, uow: UnitOfWork, event: CloudEvent, data: StockStalled) -> None:
        await self.stock_stalled_many(uow, [(event, data)])

    async def stock_stalled_many(self, uow: UnitOfWork, run: list[tuple[CloudEvent, StockStalled]]) -> None:
        """Stalls in order (a detection scan announces hundreds at once): each item's state folded in
        memory, then one write of the items and one of the episodes."""
        keys = list(dict.fromkeys((data.cooperative_id, data.commodity) for _, data in run))
        items = await store.load_items(uow.session, keys)
        changed: dict[tuple[str, str], tuple[StockStalled, stock_rules.StockItem]] = {}
        episodes: dict[tuple[str, str, datetime], dict[str, Any]] = {}
        for _, data in run:
            key = (data.cooperative_id, data.commodity)
            item = items.get(key) or stock_rules.StockItem()
            details = stock_rules.StalledDetails(
                on_hand_milli=stock_rules.to_milli(data.on_hand),
                value=int(data.value),
                days_since_sale=int(data.days_since_sale),
                last_sale_at=as_utc(data.last_sale_at) if data.last_sale_at else None,
                unit_cost=data.unit_cost,
            )
            updated = stock_rules.start_stalled(item, as_utc(data.detected_at), details, data.unit)
            if updated is item:
                continue
            items[key] = updated
            changed[key] = (data, updated)
            started = updated.stalled_since or as_utc(data.detected_at)  # set by start_stalled
            episode_key = (data.cooperative_id, data.commodity, started)
            if episode_key in episodes:
                # One by one, a repeat would find the episode and only refresh its value.
                episodes[episode_key]["value"] = int(data.value)
                continue
            episodes[episode_key] = {
                "cooperative_id": data.cooperative_id,
                "commodity": data.commodity,
                "started_at": started,
                "kecamatan_code": data.kecamatan_code,
                "value": int(data.value),
                "ended_at": None,
            }
        if not changed:
            return
        await store.save_items(uow.session, list(changed.values()))
        await store.save_episodes(uow.session, list(episodes.values()))

    async def stock_low(self, uow: UnitOfWork, event: CloudEvent, data: StockLow) -> None:
        await self._condition(uow, data, "low", as_utc(data.detected_at), start=True)

    async def stock_stockout(self, uow: UnitOfWork, event: CloudEvent, data: StockStockout) -> None:
        await self._condition(uow, data, "stockout", as_utc(data.detected_at), start=True)

    async def stock_recovered(self, uow: UnitOfWork, event: CloudEvent, data: StockRecovered) -> None:
        await self._condition(uow, data, data.condition, as_utc(data.detected_at), start=False)

    async def _condition(
        self, uow: UnitOfWork, data: Any, condition: str, detected_at: datetime, *, start: bool
    ) -> None:
        key = (data.cooperative_id, data.commodity)
        item = (await store.load_items(uow.session, [key])).get(key) or stock_rules.StockItem(
            unit=getattr(data, "unit", None)
        )
        if start:
            updated = stock_rules.start_condition(item, condition, detected_at)  # type: ignore[arg-type]
        else:
            updated = stock_rules.end_condition(item, condition, detected_at)  # type: ignore[arg-type]
        if updated is item:
            return
        await store.save_items(uow.session, [(data, updated)])
        if condition == "stalled" and not start and item.stalled:
            await store.end_episodes(uow.session, data.cooperative_id, data.commodity, detected_at)

    async def price_ceiling_exceeded(
        self, uow: UnitOfWork, event: CloudEvent, data: PriceCeilingExceeded
    ) -> None:
        await store.add_price_violation(
            uow.session,
            {
                "movement_id": data.movement_id,
                "cooperative_id": data.cooperative_id,
                "kecamatan_code": data.kecamatan_code,
                "commodity": data.commodity,
                "unit": data.unit,
                "quantity_milli": stock_rules.to_milli(data.quantity),
                "unit_price": data.unit_price,
                "price_ceiling": data.price_ceiling,
                "excess": data.excess,
                "occurred_at": as_utc(data.occurred_at),
            },
        )

    # --- needs ------------------------------------------------------------------------------

    async def need_submitted(self, uow: UnitOfWork, event: CloudEvent, data: NeedSubmitted) -> None:
        existing = await store.load_need(uow.session, data.need_id)
        state = need_rules.submitted(existing, as_utc(data.submitted_at))
        await store.save_need(uow.session, data, state, data.description)

    async def need_status_changed(self, uow: UnitOfWork, event: CloudEvent, data: NeedStatusChanged) -> None:
        existing = await store.load_need(uow.session, data.need_id)
        state = need_rules.status_changed(
            existing,
            new_status=data.new_status,
            changed_at=as_utc(data.changed_at),
            submitted_at=as_utc(data.submitted_at),
        )
        await store.save_need(uow.session, data, state, None)


async def record(uow: UnitOfWork, projector: Projector, event: CloudEvent, data: EventData) -> None:
    """A consumed event: stored in the event store and projected, in the consumer's transaction."""
    await event_store.append(uow.session, event)
    await projector.apply(uow, event, data)


async def record_many(
    uow: UnitOfWork, projector: Projector, events: list[tuple[CloudEvent, EventData]]
) -> None:
    """A batch of consumed events: stored in one statement, projected with `Projector.apply_many`."""
    await event_store.append_many(uow.session, [event for event, _ in events])
    await projector.apply_many(uow, events)


def _weekly_zero() -> dict[str, int]:
    return dict.fromkeys(store.WEEKLY_COUNTERS, 0)
