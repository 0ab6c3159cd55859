"""The read side: the stock page, the valuation, the city's stock lines, the ledger and the detection
runs, as the API shows them. Reads take a read session (no transaction) and never write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from kkmp_shared.auth import Principal, ensure_can_read
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import not_found
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import queries, repository
from inventory.adapters.queries import CityStockFilter, MovementFilter
from inventory.adapters.stock_cache import StockReadCache
from inventory.domain.detection import (
    average_daily_sales,
    classify_stock,
    days_of_cover,
    days_unmoved,
    sales_window,
    status_of,
)
from inventory.domain.ledger import StockState
from inventory.service_layer.access import readable_cooperative
from inventory.service_layer.movements import movement_out

# --- stock ------------------------------------------------------------------------------------------


async def stock_page(
    session: AsyncSession,
    cache: StockReadCache,
    principal: Principal,
    cooperative_id: str,
    now: datetime,
    commodity: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """A cooperative's stock lines at `now`; the whole page's reading is kept in `cache`, from which
    `entrypoints.fast_stock` answers the next reads."""
    ticket = cache.ticket()
    coop, states, sold, last_day = await stock_of(session, cooperative_id, now, commodity)
    if coop is None or principal.role == "supplier":
        raise not_found("cooperative")
    ensure_can_read(principal, coop.id, coop.kecamatan_code)
    catalogue = await repository.cached_catalogue(session)
    if commodity is None:  # all of its items: what `fast_stock` answers from
        cache.store(ticket, coop, states, sold, last_day)
    return stock_lines(states, catalogue, sold, now, status)


async def stock_of(
    session: AsyncSession, cooperative_id: str, now: datetime, commodity: str | None = None
) -> tuple[KnownCooperative | None, list[StockState], dict[tuple[str, str], Decimal], date]:
    """What the stock page is computed from: the cooperative (None if unknown), its items (or the one
    commodity's) and their sales over the 28-day window ending on the last day returned."""
    first_day, last_day = sales_window(now)
    coop, states = await repository.cooperative_stock(session, cooperative_id, commodity)
    if coop is None:
        return None, [], {}, last_day
    return coop, states, await repository.sold_in_window(session, states, first_day, last_day), last_day


def stock_lines(
    states: Iterable[StockState],
    catalogue: dict[str, repository.CommodityInfo],
    sold: Mapping[tuple[str, str], Decimal],
    now: datetime,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The stock page's lines at `now` (those with this status, when given)."""
    lines = []
    for state in states:
        info = catalogue[state.commodity]
        key = (state.cooperative_id, state.commodity)
        current = status_of(
            classify_stock(state.on_hand, state.stall_clock_at, sold[key], now, info.thresholds)
        )
        if status is None or status == current:
            lines.append(stock_line(state, info, sold[key], now, current))
    return lines


def stock_line(
    state: StockState, info: repository.CommodityInfo, sold: Decimal, now: datetime, status: str
) -> dict[str, Any]:
    ceiling = info.ceiling_at(now)
    cover = days_of_cover(state.on_hand, sold)
    return {
        "commodity": info.code,
        "name": info.name,
        "unit": info.unit,
        "on_hand": state.on_hand,
        "last_sale_at": state.last_sale_at,
        "avg_daily_sales": average_daily_sales(sold).quantize(Decimal("0.001")),
        "days_of_cover": cover.quantize(Decimal("0.01")) if cover is not None else None,
        "status": status,
        "unmoved_since": state.stall_clock_at,
        "days_since_sale": days_unmoved(state.stall_clock_at, now) if state.stall_clock_at else None,
        "unit_cost": state.unit_cost,
        "value": state.stock_value,
        "price_ceiling": ceiling.price_ceiling if ceiling else None,
        "episode": state.condition,
        "episode_since": state.condition_since,
    }


async def valuation(session: AsyncSession, principal: Principal, cooperative_id: str) -> dict[str, Any]:
    coop = await readable_cooperative(session, principal, cooperative_id)
    states = await repository.stock_rows(session, coop.id)
    catalogue = await repository.cached_catalogue(session)
    items = [
        {
            "commodity": s.commodity,
            "unit": catalogue[s.commodity].unit,
            "on_hand": s.on_hand,
            "unit_cost": s.unit_cost if s.on_hand > 0 else None,
            "value": s.stock_value,
        }
        for s in states
        if s.on_hand > 0
    ]
    return {"cooperative_id": coop.id, "total_value": sum(i["value"] for i in items), "items": items}


async def city_stock(
    session: AsyncSession, where: CityStockFilter, limit: int, offset: int, now: datetime
) -> dict[str, Any]:
    """Stock lines across cooperatives, each with the status of its announced episode."""
    rows, total = await queries.city_stock_page(session, where, limit, offset)
    catalogue = await repository.cached_catalogue(session)
    first_day, last_day = sales_window(now)
    states = [repository.state_from_row(r) for r in rows]
    sold = await repository.sold_in_window(session, states, first_day, last_day)
    items = []
    for r, state in zip(rows, states, strict=True):
        key = (r.cooperative_id, r.commodity)
        line = stock_line(state, catalogue[r.commodity], sold[key], now, status_of(state.condition))
        items.append(
            {
                **line,
                "cooperative_id": r.cooperative_id,
                "kelurahan_code": r.kelurahan_code,
                "kecamatan_code": r.kecamatan_code,
            }
        )
    return {"items": items, "total": total}


# --- ledger -----------------------------------------------------------------------------------------


async def movements_page(
    session: AsyncSession, principal: Principal, where: MovementFilter, limit: int, offset: int
) -> dict[str, Any]:
    await readable_cooperative(session, principal, where.cooperative_id)
    rows, total = await queries.movements_page(session, where, limit, offset)
    return {"items": [movement_out(r, r.unit) for r in rows], "total": total}


async def movement(
    session: AsyncSession, principal: Principal, cooperative_id: str, movement_id: str
) -> dict[str, Any]:
    coop = await readable_cooperative(session, principal, cooperative_id)
    row = await queries.movement(session, coop.id, movement_id)
    if row is None:
        raise not_found("movement")
    return movement_out(row, row.unit)


# --- detection --------------------------------------------------------------------------------------


async def detection_runs(session: AsyncSession, limit: int, offset: int) -> list[dict[str, Any]]:
    return [
        {**dict(r._mapping), "as_of": repository.aware(r.as_of), "started_at": repository.aware(r.started_at)}
        for r in await queries.detection_runs(session, limit, offset)
    ]
