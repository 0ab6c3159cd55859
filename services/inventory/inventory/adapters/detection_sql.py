"""The detection rules of `domain/detection.py`, stated in SQL for every stock item at once.

One statement classifies all items (joined to the per-commodity thresholds and the 28-day sales) and
keeps only those whose condition differs from the episode last announced. On PostgreSQL that statement
is the FROM of an UPDATE that records the new episodes and returns them, guarded by the item's version:
an item a movement changed meanwhile is left to that movement's own evaluation, so nothing is announced
twice or from a stale reading. SQLite (single process, writers serialised) selects, then updates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

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
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import orm
from inventory.adapters.repository import is_sqlite
from inventory.domain.detection import LOOKBACK_DAYS, Thresholds, sales_window


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
    """Every stock item (in scope) with its condition as of `as_of` and the episode last announced."""
    first_day, last_day = sales_window(as_of)
    ds = orm.daily_sales
    sold = (
        select(ds.c.cooperative_id, ds.c.commodity, func.sum(ds.c.quantity_milli).label("sold_milli"))
        .where(ds.c.day >= first_day, ds.c.day <= last_day)
        .group_by(ds.c.cooperative_id, ds.c.commodity)
        .subquery("sold")
    )
    th = thresholds_table(as_of, thresholds)
    s = orm.stock_items.alias("s")
    k = orm.known_cooperatives
    sold_milli = func.coalesce(sold.c.sold_milli, literal(0, BigInteger))
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
        .outerjoin(sold, and_(sold.c.cooperative_id == s.c.cooperative_id, sold.c.commodity == s.c.commodity))
    )
    if kecamatan_codes is not None:
        query = query.where(k.c.kecamatan_code.in_(kecamatan_codes))
    if only_changed:
        query = query.where(new_condition.is_distinct_from(s.c.condition))
    return query


async def apply_changed_conditions(
    session: AsyncSession,
    as_of: datetime,
    thresholds: Mapping[str, tuple[Thresholds, str]],
    kecamatan_codes: list[str] | None = None,
) -> list[Any]:
    """Record every item's new episode; returns the rows that changed (with the previous condition)."""
    changed = classified_items(as_of, thresholds, kecamatan_codes=kecamatan_codes).subquery("changed")
    t = orm.stock_items
    since = case((changed.c.new_condition.is_(None), null()), else_=literal(as_of, DateTime(timezone=True)))
    if not is_sqlite(session):
        statement = (
            update(t)
            .where(
                t.c.cooperative_id == changed.c.cooperative_id,
                t.c.commodity == changed.c.commodity,
                t.c.version == changed.c.version,
                t.c.condition.is_distinct_from(changed.c.new_condition),
            )
            .values(condition=changed.c.new_condition, condition_since=since)
            .returning(*changed.c)
        )
        return list((await session.execute(statement)).all())
    rows = list((await session.execute(select(changed))).all())
    if rows:
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
    return rows


def condition_totals_query(kecamatan_codes: list[str] | None = None) -> Select[Any]:
    s = orm.stock_items
    query = select(s.c.condition, func.count()).group_by(s.c.condition)
    if kecamatan_codes is not None:
        k = orm.known_cooperatives
        query = query.join(k, k.c.id == s.c.cooperative_id).where(k.c.kecamatan_code.in_(kecamatan_codes))
    return query
