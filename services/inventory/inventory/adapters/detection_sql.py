"""The detection rules of `domain/detection.py`, stated in SQL for every stock item at once.

One statement classifies all items (joined to the per-commodity thresholds, each item's 28-day sales
read from its row) and keeps only those whose condition differs from the episode last announced. The
changes are then recorded with a guard on each item's version: an item a movement changed meanwhile is
left to that movement's own evaluation, so nothing is announced twice or from a stale reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from kkmp_shared.db import note_change, on_sqlite
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import orm
from inventory.adapters.repository import STOCK_CHANGED
from inventory.domain.detection import LOOKBACK_DAYS, Thresholds, sales_window

# pg advisory lock key of the detection scan ("KKMPINV" as an integer): one scan at a time per database.
SCAN_LOCK_KEY = int.from_bytes(b"KKMPINV", "big")
# The 28-day sales of every item are aggregated in memory rather than spilled to disk.
SCAN_WORK_MEM = "256MB"


async def begin_scan(session: AsyncSession, *, wait: bool) -> bool:
    """Take this database's scan lock for the transaction (waiting for it, or False at once if another
    replica holds it) and give the scan its memory. SQLite is single-process: nothing to take."""
    if on_sqlite(session):
        return True
    if wait:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCAN_LOCK_KEY})
    else:
        got = (
            await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SCAN_LOCK_KEY})
        ).scalar()
        if not got:
            return False
    await session.execute(text(f"SET LOCAL work_mem = '{SCAN_WORK_MEM}'"))
    return True


def thresholds_table(as_of: datetime, thresholds: Mapping[str, tuple[Thresholds, str]]) -> Any:
    """Per commodity: the instant before which an unmoved stall clock means stalled, the low threshold
    and the unit; computed here so the SQL needs no date arithmetic (which SQLite and PostgreSQL spell
    differently)."""
    rows = [
        select(
            literal(code, String).label("commodity"),
            literal(as_of - timedelta(days=t.stall_days), DateTime(timezone=True)).label("stall_cutoff"),
            literal(t.low_cover_days, Integer).label("low_cover_days"),
            literal(unit, String).label("unit"),
        )
        for code, (t, unit) in sorted(thresholds.items())
    ]
    return union_all(*rows).subquery("thresholds")


def classified_items(
    as_of: datetime,
    thresholds: Mapping[str, tuple[Thresholds, str]],
    *,
    kecamatan_codes: list[str] | None = None,
    only_changed: bool = True,
) -> Select[Any]:
    """Every stock item (in scope) with its condition as of `as_of` and the episode last announced.
    The items' 28-day sales must have been rolled to as_of's day (`roll_sales_window`)."""
    th = thresholds_table(as_of, thresholds)
    s = orm.stock_items.alias("s")
    k = orm.known_cooperatives
    sold_milli = func.coalesce(s.c.sold_window_milli, literal(0, BigInteger))
    new_condition = case(
        (s.c.on_hand_milli <= 0, case((sold_milli > 0, literal("stockout", String)), else_=null())),
        (
            and_(s.c.stall_clock_at.is_not(None), s.c.stall_clock_at < th.c.stall_cutoff),
            literal("stalled", String),
        ),
        (
            and_(sold_milli > 0, s.c.on_hand_milli * LOOKBACK_DAYS < th.c.low_cover_days * sold_milli),
            literal("low", String),
        ),
        else_=null(),
    )
    query = (
        select(
            s.c.cooperative_id,
            s.c.commodity,
            s.c.on_hand_milli,
            s.c.stock_value,
            s.c.last_unit_cost,
            s.c.last_sale_at,
            s.c.stall_clock_at,
            s.c.condition.label("previous_condition"),
            s.c.version,
            sold_milli.label("sold_milli"),
            new_condition.label("new_condition"),
            k.c.kelurahan_code,
            k.c.kecamatan_code,
            th.c.unit,
            th.c.low_cover_days,
        )
        .select_from(s)
        .join(th, th.c.commodity == s.c.commodity)
        .join(k, k.c.id == s.c.cooperative_id)
    )
    if kecamatan_codes is not None:
        query = query.where(k.c.kecamatan_code.in_(kecamatan_codes))
    if only_changed:
        query = query.where(new_condition.is_distinct_from(s.c.condition))
    return query


async def roll_sales_window(session: AsyncSession, day: date) -> int:
    """Bring the 28-day sales of every item to the window ending on `day`; items a movement already
    brought there are left alone. Returns how many items were rolled (most of them at the first scan of
    a day, none at the next ones).

    On PostgreSQL the sums come from one aggregate joined into the UPDATE. An item a movement changed
    after the aggregate was read (its version moved on) is left alone: the movement wrote the exact sum
    for its own day, and if that is not this day the next scan rolls the item with a fresh reading."""
    if await _rolled_already(session, day):
        return 0
    first_day = day - timedelta(days=LOOKBACK_DAYS - 1)
    s, d = orm.stock_items, orm.daily_sales
    stale = s.c.sold_window_day.is_distinct_from(day)
    if on_sqlite(session):
        summed = (
            select(func.coalesce(func.sum(d.c.quantity_milli), 0))
            .where(
                d.c.cooperative_id == s.c.cooperative_id,
                d.c.commodity == s.c.commodity,
                d.c.day >= first_day,
                d.c.day <= day,
            )
            .scalar_subquery()
        )
        result = await session.execute(
            update(s).where(stale).values(sold_window_milli=summed, sold_window_day=day)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
    items = s.alias("stale_items")
    sums = (
        select(
            items.c.cooperative_id,
            items.c.commodity,
            items.c.version,
            func.coalesce(func.sum(d.c.quantity_milli), 0).label("sold_milli"),
        )
        .select_from(items)
        .outerjoin(
            d,
            and_(
                d.c.cooperative_id == items.c.cooperative_id,
                d.c.commodity == items.c.commodity,
                d.c.day >= first_day,
                d.c.day <= day,
            ),
        )
        .where(items.c.sold_window_day.is_distinct_from(day))
        .group_by(items.c.cooperative_id, items.c.commodity, items.c.version)
        .subquery("sums")
    )
    result = await session.execute(
        update(s)
        .where(
            s.c.cooperative_id == sums.c.cooperative_id,
            s.c.commodity == sums.c.commodity,
            s.c.version == sums.c.version,
            stale,
        )
        .values(sold_window_milli=sums.c.sold_milli, sold_window_day=day)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _rolled_already(session: AsyncSession, day: date) -> bool:
    """Whether every item's window ends on `day` already (every scan but the day's first): the
    lowest `sold_window_day`, and the highest or a missing one, are two probes of its index (in the
    index's own orders, which put NULL last going up and first going down), instead of the roll's
    UPDATE reading every item to find nothing to do."""
    s = orm.stock_items
    column = s.c.sold_window_day
    lowest = (await session.execute(select(column).order_by(column.asc().nulls_last()).limit(1))).first()
    if lowest is None:
        return True  # no items
    highest = (await session.execute(select(column).order_by(column.desc().nulls_first()).limit(1))).scalar()
    return lowest.sold_window_day == day and highest == day


GUARDED_UPDATE = text(
    """
    UPDATE stock_items AS s
    SET condition = v.new_condition,
        condition_since = CASE WHEN v.new_condition IS NULL THEN NULL ELSE CAST(:since AS TIMESTAMPTZ) END
    FROM unnest(
        CAST(:cooperative_ids AS VARCHAR[]), CAST(:commodities AS VARCHAR[]),
        CAST(:versions AS BIGINT[]), CAST(:conditions AS VARCHAR[])
    ) AS v(cooperative_id, commodity, version, new_condition)
    WHERE s.cooperative_id = v.cooperative_id AND s.commodity = v.commodity
      AND s.version = v.version AND s.condition IS DISTINCT FROM v.new_condition
    RETURNING s.cooperative_id, s.commodity
    """
)


async def apply_changed_conditions(
    session: AsyncSession,
    as_of: datetime,
    thresholds: Mapping[str, tuple[Thresholds, str]],
    kecamatan_codes: list[str] | None = None,
) -> list[Any]:
    """Record every item's new episode; returns the rows that changed (with the previous condition).

    The classification is a plain SELECT of the changed items (the heavy part, which PostgreSQL may run
    in parallel); the few changes are then written with a guard on each item's version, and only those
    written are returned: an item a movement changed in between is that movement's to judge."""
    await roll_sales_window(session, sales_window(as_of)[1])
    rows = list(
        (await session.execute(classified_items(as_of, thresholds, kecamatan_codes=kecamatan_codes))).all()
    )
    if not rows:
        return []
    t = orm.stock_items
    if on_sqlite(session):  # one writer at a time: nothing can have changed since the SELECT
        await session.execute(
            update(t)
            .where(t.c.cooperative_id == bindparam("k_coop"), t.c.commodity == bindparam("k_commodity"))
            .values(condition=bindparam("b_condition"), condition_since=bindparam("b_since")),
            [
                {
                    "k_coop": r.cooperative_id,
                    "k_commodity": r.commodity,
                    "b_condition": r.new_condition,
                    "b_since": as_of if r.new_condition else None,
                }
                for r in rows
            ],
        )
        note_change(session, STOCK_CHANGED, {r.cooperative_id for r in rows})
        return rows
    written = await session.execute(
        GUARDED_UPDATE,
        {
            "since": as_of,
            "cooperative_ids": [r.cooperative_id for r in rows],
            "commodities": [r.commodity for r in rows],
            "versions": [int(r.version) for r in rows],
            "conditions": [r.new_condition for r in rows],
        },
    )
    done = {(c, m) for c, m in written.all()}
    note_change(session, STOCK_CHANGED, {c for c, _ in done})
    return [r for r in rows if (r.cooperative_id, r.commodity) in done]


async def condition_totals(
    session: AsyncSession, kecamatan_codes: list[str] | None = None
) -> dict[str | None, int]:
    """How many items (in these kecamatan, or all) are in each condition (`None`: fine)."""
    s = orm.stock_items
    query = select(s.c.condition, func.count()).group_by(s.c.condition)
    if kecamatan_codes is not None:
        k = orm.known_cooperatives
        query = query.join(k, k.c.id == s.c.cooperative_id).where(k.c.kecamatan_code.in_(kecamatan_codes))
    return {c: int(n) for c, n in (await session.execute(query)).all()}


async def record_run(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(orm.detection_runs).values(**values))
