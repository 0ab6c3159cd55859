"""The read model's writes for the projections: stock items, sales counters, stalled episodes, needs,
trainings, price violations and cooperative facts.

Each function is one statement (executemany where it takes rows), so the batch path stays one read
and one write per table per run; every write that moves a cooperative's figures marks it dirty.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm
from reporting.adapters.sql import add_to, add_to_many, mark_dirty, replace_statement
from reporting.domain import needs as need_rules
from reporting.domain import stock as stock_rules

WEEKLY_COUNTERS = ("quantity_milli", "value", "transactions")

# --- cooperatives ---------------------------------------------------------------------------------


async def save_facts(session: AsyncSession, data: Any, registered_at: datetime | None) -> None:
    """A cooperative's kecamatan and formation; its registration time when known."""
    values: dict[str, Any] = {
        "cooperative_id": data.cooperative_id,
        "kecamatan_code": data.kecamatan_code,
        "formation": data.formation,
    }
    statement = upsert_insert(session)(orm.cooperative_facts).values(**values, registered_at=registered_at)
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


async def count_member_joined(
    session: AsyncSession, cooperative_id: str, day: date, kecamatan_code: str
) -> None:
    await add_to(
        session,
        orm.coop_members_daily,
        {"cooperative_id": cooperative_id, "day": day},
        {"members_joined": 1},
        kecamatan_code=kecamatan_code,
    )


async def save_training(session: AsyncSession, values: dict[str, Any]) -> None:
    statement = upsert_insert(session)(orm.coop_trainings).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[orm.coop_trainings.c.cooperative_id, orm.coop_trainings.c.training_id],
            set_={c: statement.excluded[c] for c in ("title", "topic", "participants", "completed_at")},
        )
    )


# --- stock ----------------------------------------------------------------------------------------


async def load_items(
    session: AsyncSession, keys: list[tuple[str, str]]
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


async def save_items(session: AsyncSession, changes: list[tuple[Any, stock_rules.StockItem]]) -> None:
    """Upsert stock items (one row per key: the latest event's data names its kecamatan)."""
    rows = [_item_values(data, item) for data, item in changes]
    keys = ("cooperative_id", "commodity")
    columns = [k for k in rows[0] if k not in keys]
    await session.execute(replace_statement(session, orm.stock_items, keys, columns), rows)
    for data, _ in changes:
        await mark_dirty(session, data.cooperative_id, data.kecamatan_code)


async def add_sales(
    session: AsyncSession,
    daily: list[dict[str, Any]],
    coop_weekly: list[dict[str, Any]],
    city_weekly: list[dict[str, Any]],
) -> None:
    """Add to the sales counters: per cooperative and day, per cooperative, commodity and week, and
    per kecamatan (or city), commodity (or all) and week. Each key appears once per list."""
    await add_to_many(
        session, orm.coop_sales_daily, ["cooperative_id", "day"], daily, ["sale_count", "sale_value"]
    )
    await add_to_many(
        session,
        orm.coop_sales_weekly,
        ["cooperative_id", "commodity", "week_start"],
        coop_weekly,
        list(WEEKLY_COUNTERS),
    )
    await add_to_many(
        session, orm.sales_weekly, ["scope", "commodity", "week_start"], city_weekly, list(WEEKLY_COUNTERS)
    )


async def save_episodes(session: AsyncSession, episodes: list[dict[str, Any]]) -> None:
    """Start stalled episodes (a repeat of one already started only refreshes its value)."""
    t = orm.stalled_episodes
    statement = upsert_insert(session)(t)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[t.c.cooperative_id, t.c.commodity, t.c.started_at],
            set_={"value": statement.excluded.value},
        ),
        episodes,
    )


async def end_episodes(
    session: AsyncSession, cooperative_id: str, commodity: str, ended_at: datetime
) -> None:
    t = orm.stalled_episodes
    await session.execute(
        update(t)
        .where(
            t.c.cooperative_id == cooperative_id,
            t.c.commodity == commodity,
            t.c.ended_at.is_(None),
            t.c.started_at <= ended_at,
        )
        .values(ended_at=ended_at)
    )


async def add_price_violation(session: AsyncSession, values: dict[str, Any]) -> None:
    statement = upsert_insert(session)(orm.price_violations).values(**values)
    await session.execute(statement.on_conflict_do_nothing())


# --- needs ----------------------------------------------------------------------------------------


async def load_need(session: AsyncSession, need_id: str) -> need_rules.NeedState | None:
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


async def save_need(
    session: AsyncSession, data: Any, state: need_rules.NeedState, description: str | None
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


async def wipe(session: AsyncSession) -> None:
    """Empty every projection (a rebuild replays the event store into them)."""
    for table in orm.PROJECTION_TABLES:
        await session.execute(delete(table))


async def forget_unknown_health(session: AsyncSession) -> None:
    """Health rows of cooperatives the directory no longer knows would count in no kecamatan."""
    h = orm.cooperative_health
    await session.execute(delete(h).where(h.c.cooperative_id.not_in(select(orm.known_cooperatives.c.id))))


async def cooperative_count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(orm.known_cooperatives))).scalar_one())
