"""Projections: how each event changes reporting's read model.

The same `Projector.apply` runs for a live event (from the consumers, inside the inbox transaction)
and for a stored one during a rebuild, so a replay from a clean state arrives at the same rows. A
projection uses only the event (never the clock), and the rules that could be upset by redelivery or
reordering live in the pure domain functions (`domain.stock`, `domain.needs`).

Events reporting keeps but does not project (potentials, users, supplier matches, redistributions,
orders, notifications, its own events) are still stored, so a later projection can be added and
filled by a rebuild.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from kkmp_shared.db import upsert_insert
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
from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.sql import add_to, add_to_many, mark_dirty, replace_statement
from reporting.domain import needs as need_rules
from reporting.domain import stock as stock_rules
from reporting.domain.periods import as_utc, local_date, week_start

log = logging.getLogger("kkmp.reporting.projections")

Projection = Callable[[AsyncSession, CloudEvent, Any], Awaitable[None]]
# Movements applied in one go at most (keeps a statement's parameters well under the drivers' limits).
MOVED_RUN = 500


def shared_directory_handlers(directory: CooperativeDirectory) -> dict[str, Projection]:
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
        self.directory = CooperativeDirectory(orm.known_cooperatives)
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

    async def apply(self, session: AsyncSession, event: CloudEvent, data: EventData) -> None:
        projection = self._projections.get(event.type)
        if projection is not None:
            await projection(session, event, data)

    async def apply_many(self, session: AsyncSession, events: Sequence[tuple[CloudEvent, EventData]]) -> None:
        """The same effect as `apply` on each event in order, with runs of `stock.moved` (the
        high-volume stream) and of `stock.stalled` (a detection scan's burst) applied set-based: one
        read and one write per table per run."""
        run: list[tuple[CloudEvent, Any]] = []
        kind: type | None = None
        for event, data in events:
            batched = type(data) if isinstance(data, (StockMoved, StockStalled)) else None
            if run and (batched is not kind or len(run) >= MOVED_RUN):
                await self._apply_run(session, run)
                run = []
            if batched is None:
                await self.apply(session, event, data)
            else:
                kind = batched
                run.append((event, data))
        if run:
            await self._apply_run(session, run)

    async def _apply_run(self, session: AsyncSession, run: list[tuple[CloudEvent, Any]]) -> None:
        if isinstance(run[0][1], StockMoved):
            await self.stock_moved_many(session, run)
        else:
            await self.stock_stalled_many(session, run)

    # --- cooperatives -----------------------------------------------------------------------

    async def _facts(self, session: AsyncSession, data: Any, registered_at: datetime | None) -> None:
        values: dict[str, Any] = {
            "cooperative_id": data.cooperative_id,
            "kecamatan_code": data.kecamatan_code,
            "formation": data.formation,
        }
        statement = upsert_insert(session)(orm.cooperative_facts).values(
            **values, registered_at=registered_at
        )
        update_set: dict[str, Any] = {
            "kecamatan_code": statement.excluded.kecamatan_code,
            "formation": statement.excluded.formation,
        }
        if registered_at is not None:
            update_set["registered_at"] = statement.excluded.registered_at
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[orm.cooperative_facts.c.cooperative_id], set_=update_set
            )
        )

    async def cooperative_registered(
        self, session: AsyncSession, event: CloudEvent, data: CooperativeRegistered
    ) -> None:
        await self._directory[event.type](session, event, data)
        await self._facts(session, data, as_utc(data.registered_at))
        await mark_dirty(session, data.cooperative_id, data.kecamatan_code)

    async def cooperative_updated(
        self, session: AsyncSession, event: CloudEvent, data: CooperativeUpdated
    ) -> None:
        await self._directory[event.type](session, event, data)
        # An update that overtook the registration leaves registered_at unknown until it arrives.
        await self._facts(session, data, None)
        await mark_dirty(session, data.cooperative_id, data.kecamatan_code)

    async def member_joined(self, session: AsyncSession, event: CloudEvent, data: MemberJoined) -> None:
        await self._directory[event.type](session, event, data)
        await add_to(
            session,
            orm.coop_members_daily,
            {"cooperative_id": data.cooperative_id, "day": local_date(data.joined_at, self.tz)},
            {"members_joined": 1},
            kecamatan_code=data.kecamatan_code,
        )
        await mark_dirty(session, data.cooperative_id, data.kecamatan_code)

    async def training_completed(
        self, session: AsyncSession, event: CloudEvent, data: TrainingCompleted
    ) -> None:
        statement = upsert_insert(session)(orm.coop_trainings).values(
            cooperative_id=data.cooperative_id,
            training_id=data.training_id,
            kecamatan_code=data.kecamatan_code,
            title=data.title[:200],
            topic=data.topic[:100],
            participants=data.participants,
            completed_at=as_utc(data.completed_at),
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[orm.coop_trainings.c.cooperative_id, orm.coop_trainings.c.training_id],
                set_={c: statement.excluded[c] for c in ("title", "topic", "participants", "completed_at")},
            )
        )
        await mark_dirty(session, data.cooperative_id, data.kecamatan_code)

    # --- stock ------------------------------------------------------------------------------

    async def _load_item(
        self, session: AsyncSession, cooperative_id: str, commodity: str
    ) -> stock_rules.StockItem | None:
        return (await self._load_items(session, [(cooperative_id, commodity)])).get(
            (cooperative_id, commodity)
        )

    async def _load_items(
        self, session: AsyncSession, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], stock_rules.StockItem]:
        """The stock items of these (cooperative, commodity) keys, locked for the transaction."""
        t = orm.stock_items
        rows = (
            await session.execute(
                select(t)
                .where(tuple_(t.c.cooperative_id, t.c.commodity).in_(sorted(keys)))
                .order_by(t.c.cooperative_id, t.c.commodity)
                .with_for_update()
            )
        ).all()
        return {(row.cooperative_id, row.commodity): _item_from_row(row) for row in rows}

    async def _save_item(self, session: AsyncSession, data: Any, item: stock_rules.StockItem) -> None:
        await self._save_items(session, [(data, item)])

    async def _save_items(
        self, session: AsyncSession, changes: list[tuple[Any, stock_rules.StockItem]]
    ) -> None:
        """Upsert stock items (one row per key: the latest event's data names its kecamatan)."""
        rows = [_item_values(data, item) for data, item in changes]
        keys = ("cooperative_id", "commodity")
        columns = [k for k in rows[0] if k not in keys]
        await session.execute(replace_statement(session, orm.stock_items, keys, columns), rows)
        for data, _ in changes:
            await mark_dirty(session, data.cooperative_id, data.kecamatan_code)

    async def stock_moved(self, session: AsyncSession, event: CloudEvent, data: StockMoved) -> None:
        await self.stock_moved_many(session, [(event, data)])

    async def stock_moved_many(self, session: AsyncSession, run: list[tuple[CloudEvent, StockMoved]]) -> None:
        """Movements in order: each item's state folded in memory, sales summed per counter row."""
        keys = list(dict.fromkeys((data.cooperative_id, data.commodity) for _, data in run))
        items = await self._load_items(session, keys)
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
        await self._save_items(session, [(latest[key], items[key]) for key in keys])
        await add_to_many(
            session,
            orm.coop_sales_daily,
            ["cooperative_id", "day"],
            list(daily.values()),
            ["sale_count", "sale_value"],
        )
        await add_to_many(
            session,
            orm.coop_sales_weekly,
            ["cooperative_id", "commodity", "week_start"],
            [
                {"cooperative_id": coop, "commodity": commodity, "week_start": week, **totals}
                for (coop, commodity, week), totals in coop_weekly.items()
            ],
            list(WEEKLY_COUNTERS),
        )
        await add_to_many(
            session,
            orm.sales_weekly,
            ["scope", "commodity", "week_start"],
            [
                {"scope": scope, "commodity": commodity, "week_start": week, **totals}
                for (scope, commodity, week), totals in city_weekly.items()
            ],
            list(WEEKLY_COUNTERS),
        )

    async def stock_stalled(self, session: AsyncSession, event: CloudEvent, data: StockStalled) -> None:
        await self.stock_stalled_many(session, [(event, data)])

    async def stock_stalled_many(
        self, session: AsyncSession, run: list[tuple[CloudEvent, StockStalled]]
    ) -> None:
        """Stalls in order (a detection scan announces hundreds at once): each item's state folded in
        memory, then one write of the items and one of the episodes."""
        keys = list(dict.fromkeys((data.cooperative_id, data.commodity) for _, data in run))
        items = await self._load_items(session, keys)
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
        await self._save_items(session, list(changed.values()))
        t = orm.stalled_episodes
        statement = upsert_insert(session)(t)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[t.c.cooperative_id, t.c.commodity, t.c.started_at],
                set_={"value": statement.excluded.value},
            ),
            list(episodes.values()),
        )

    async def stock_low(self, session: AsyncSession, event: CloudEvent, data: StockLow) -> None:
        await self._condition(session, data, "low", as_utc(data.detected_at), start=True)

    async def stock_stockout(self, session: AsyncSession, event: CloudEvent, data: StockStockout) -> None:
        await self._condition(session, data, "stockout", as_utc(data.detected_at), start=True)

    async def stock_recovered(self, session: AsyncSession, event: CloudEvent, data: StockRecovered) -> None:
        await self._condition(session, data, data.condition, as_utc(data.detected_at), start=False)

    async def _condition(
        self, session: AsyncSession, data: Any, condition: str, detected_at: datetime, *, start: bool
    ) -> None:
        item = await self._load_item(session, data.cooperative_id, data.commodity) or stock_rules.StockItem(
            unit=getattr(data, "unit", None)
        )
        if start:
            updated = stock_rules.start_condition(item, condition, detected_at)  # type: ignore[arg-type]
        else:
            updated = stock_rules.end_condition(item, condition, detected_at)  # type: ignore[arg-type]
        if updated is item:
            return
        await self._save_item(session, data, updated)
        if condition == "stalled" and not start and item.stalled:
            t = orm.stalled_episodes
            await session.execute(
                update(t)
                .where(
                    t.c.cooperative_id == data.cooperative_id,
                    t.c.commodity == data.commodity,
                    t.c.ended_at.is_(None),
                    t.c.started_at <= detected_at,
                )
                .values(ended_at=detected_at)
            )

    async def price_ceiling_exceeded(
        self, session: AsyncSession, event: CloudEvent, data: PriceCeilingExceeded
    ) -> None:
        statement = upsert_insert(session)(orm.price_violations).values(
            movement_id=data.movement_id,
            cooperative_id=data.cooperative_id,
            kecamatan_code=data.kecamatan_code,
            commodity=data.commodity,
            unit=data.unit,
            quantity_milli=stock_rules.to_milli(data.quantity),
            unit_price=data.unit_price,
            price_ceiling=data.price_ceiling,
            excess=data.excess,
            occurred_at=as_utc(data.occurred_at),
        )
        await session.execute(statement.on_conflict_do_nothing())

    # --- needs ------------------------------------------------------------------------------

    async def _load_need(self, session: AsyncSession, need_id: str) -> need_rules.NeedState | None:
        t = orm.needs
        row = (await session.execute(select(t).where(t.c.need_id == need_id).with_for_update())).first()
        if row is None:
            return None
        return need_rules.NeedState(
            status=row.status,
            submitted_at=row.submitted_at,
            status_changed_at=row.status_changed_at,
            first_response_at=row.first_response_at,
            closed_at=row.closed_at,
        )

    async def _save_need(
        self, session: AsyncSession, data: Any, state: need_rules.NeedState, description: str | None
    ) -> None:
        values = {
            "need_id": data.need_id,
            "cooperative_id": data.cooperative_id,
            "kecamatan_code": data.kecamatan_code,
            "kind": data.kind,
            "commodity": data.commodity,
            "status": state.status,
            "submitted_at": state.submitted_at,
            "status_changed_at": state.status_changed_at,
            "first_response_at": state.first_response_at,
            "response_seconds": state.response_seconds,
            "closed_at": state.closed_at,
        }
        if description is not None:
            values["description"] = description
        statement = upsert_insert(session)(orm.needs).values(**values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[orm.needs.c.need_id],
                set_={k: statement.excluded[k] for k in values if k != "need_id"},
            )
        )
        await mark_dirty(session, data.cooperative_id, data.kecamatan_code)

    async def need_submitted(self, session: AsyncSession, event: CloudEvent, data: NeedSubmitted) -> None:
        existing = await self._load_need(session, data.need_id)
        state = need_rules.submitted(existing, as_utc(data.submitted_at))
        await self._save_need(session, data, state, data.description)

    async def need_status_changed(
        self, session: AsyncSession, event: CloudEvent, data: NeedStatusChanged
    ) -> None:
        existing = await self._load_need(session, data.need_id)
        state = need_rules.status_changed(
            existing,
            new_status=data.new_status,
            changed_at=as_utc(data.changed_at),
            submitted_at=as_utc(data.submitted_at),
        )
        await self._save_need(session, data, state, None)


WEEKLY_COUNTERS = ("quantity_milli", "value", "transactions")


def _weekly_zero() -> dict[str, int]:
    return dict.fromkeys(WEEKLY_COUNTERS, 0)


def _item_from_row(row: Any) -> stock_rules.StockItem:
    details = None
    if row.stalled:
        details = stock_rules.StalledDetails(
            on_hand_milli=row.stalled_on_hand_milli or 0,
            value=row.stalled_value or 0,
            days_since_sale=row.stalled_days_since_sale or 0,
            last_sale_at=row.stalled_last_sale_at,
            unit_cost=row.stalled_unit_cost,
        )
    return stock_rules.StockItem(
        unit=row.unit,
        on_hand_milli=row.on_hand_milli,
        on_hand_at=row.on_hand_at,
        last_sale_at=row.last_sale_at,
        stalled=row.stalled,
        stalled_since=row.stalled_since,
        stalled_changed_at=row.stalled_changed_at,
        stalled_details=details,
        low=row.low,
        low_since=row.low_since,
        low_changed_at=row.low_changed_at,
        stockout=row.stockout,
        stockout_since=row.stockout_since,
        stockout_changed_at=row.stockout_changed_at,
    )


def _item_values(data: Any, item: stock_rules.StockItem) -> dict[str, Any]:
    details = item.stalled_details
    return {
        "cooperative_id": data.cooperative_id,
        "commodity": data.commodity,
        "kecamatan_code": data.kecamatan_code,
        "unit": item.unit,
        "on_hand_milli": item.on_hand_milli,
        "on_hand_at": item.on_hand_at,
        "last_sale_at": item.last_sale_at,
        "stalled": item.stalled,
        "stalled_since": item.stalled_since,
        "stalled_changed_at": item.stalled_changed_at,
        "stalled_on_hand_milli": details.on_hand_milli if details else None,
        "stalled_value": details.value if details else 0,
        "stalled_days_since_sale": details.days_since_sale if details else None,
        "stalled_last_sale_at": details.last_sale_at if details else None,
        "stalled_unit_cost": details.unit_cost if details else None,
        "low": item.low,
        "low_since": item.low_since,
        "low_changed_at": item.low_changed_at,
        "stockout": item.stockout,
        "stockout_since": item.stockout_since,
        "stockout_changed_at": item.stockout_changed_at,
    }
