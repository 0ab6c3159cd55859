"""Recording movements in the stock ledger: `record_movements` behind the API (single and batch), and
`apply_movements`, which it and the consumers of deliveries and redistributions share.

Everything happens in the caller's unit of work: the ledger rows, the stock items and their lots, the
daily sales, the incremental detection of the items moved just now, and the outgoing events (outbox). Any
refusal raises before the unit commits, so a batch is applied entirely or not at all.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import conflict, unprocessable
from kkmp_shared.events.contracts import EventData, PriceCeilingExceeded, StockMoved
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import repository
from inventory.adapters.repository import CommodityInfo, Key
from inventory.domain.catalogue import ceiling_excess
from inventory.domain.detection import classify_stock, episode_change, sales_window
from inventory.domain.ledger import (
    InsufficientStock,
    MovementDraft,
    StockState,
    apply_movement,
    from_milli,
    to_milli,
    utc,
)
from inventory.service_layer import idempotency
from inventory.service_layer.access import writable_cooperative
from inventory.service_layer.announcements import ItemSnapshot, episode_events
from inventory.service_layer.commands import RecordMovements

# How old a movement may be and still be judged by the incremental detection (older: by the scan).
RECENT = timedelta(days=1)


@dataclass(frozen=True)
class MovementOrder:
    """One movement to record for a cooperative the directory knows; `index` is its place in a batch."""

    cooperative: KnownCooperative
    draft: MovementDraft
    index: int | None = None


@dataclass(frozen=True)
class Recorded:
    batch_id: str | None
    movements: list[dict[str, Any]]  # as `movement_out` shows them


@dataclass(frozen=True)
class Answer:
    """What the request is answered: the first answer again when its Idempotency-Key was seen."""

    status: int
    body: Any
    replayed: bool = False


async def record_movements(
    uow: UnitOfWork, principal: Principal, command: RecordMovements, present: Callable[[Recorded], Any]
) -> Answer:
    """A client's movements for one cooperative. `present` writes the answer's JSON body (the
    entrypoint's format), which an Idempotency-Key keeps for the request's retries."""
    coop = await writable_cooperative(uow.session, principal, command.cooperative_id)
    scope = f"{'batch' if command.batch else 'movement'}:{coop.id}"
    if command.idempotency is not None:
        stored = await idempotency.claim(uow, scope, command.idempotency, command.now)
        if stored is not None:
            return Answer(*stored, replayed=True)
    batch_id = str(uuid.uuid4()) if command.batch else None
    orders = [
        MovementOrder(coop, draft, index=i if command.batch else None)
        for i, draft in enumerate(command.movements)
    ]
    recorded = await apply_movements(
        uow, orders, recorded_by=command.recorded_by, batch_id=batch_id, now=command.now
    )
    body = present(Recorded(batch_id, recorded))
    if command.idempotency is not None:
        await idempotency.remember(uow, scope, command.idempotency, 201, body)
    return Answer(201, body)


def _field(order: MovementOrder, name: str) -> str:
    return f"movements.{order.index}.{name}" if order.index is not None else name


async def apply_movements(
    uow: UnitOfWork,
    orders: list[MovementOrder],
    *,
    recorded_by: str,
    batch_id: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Apply the movements in order; returns them as recorded. Raises ApiError (422 unknown commodity,
    409 insufficient_stock or duplicate_reference) before anything is written."""
    now = now or clock.now()
    session = uow.session
    catalogue = await repository.cached_catalogue(session)
    for order in orders:
        info = catalogue.get(order.draft.commodity)
        if info is None or not info.active:
            raise unprocessable(
                _field(order, "commodity"),
                f"Unknown commodity {order.draft.commodity!r}; see GET /commodities.",
                code="unknown_commodity",
            )
    await _refuse_duplicate_references(session, orders)

    keys = {(o.cooperative.id, o.draft.commodity) for o in orders}
    states = await repository.lock_stock(session, keys, now)
    rows: list[dict[str, Any]] = []
    events: list[EventData] = []
    sold: dict[tuple[str, str, date], tuple[int, int]] = defaultdict(lambda: (0, 0))
    for order in orders:
        draft, coop = order.draft, order.cooperative
        info = catalogue[draft.commodity]
        state = states[(coop.id, draft.commodity)]
        try:
            applied = apply_movement(state, draft, info.typical_price)
        except InsufficientStock as exc:
            raise conflict(
                "insufficient_stock",
                f"Only {exc.on_hand} {info.unit} of {draft.commodity} on hand; {exc.requested} requested.",
                [
                    {
                        "field": _field(order, "quantity"),
                        "index": order.index,
                        "commodity": draft.commodity,
                        "on_hand": str(exc.on_hand),
                        "requested": str(exc.requested),
                    }
                ],
            ) from exc
        occurred_at = utc(draft.occurred_at)
        ceiling = info.ceiling_at(occurred_at) if draft.kind == "sale" else None
        excess = ceiling_excess(draft.unit_price, ceiling.price_ceiling if ceiling else None)
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "cooperative_id": coop.id,
            "commodity": draft.commodity,
            "kind": draft.kind,
            "quantity_milli": to_milli(draft.quantity),
            "delta_milli": to_milli(applied.delta),
            "unit_price": draft.unit_price,
            "unit_cost": applied.unit_cost,
            "value": applied.value,
            "on_hand_after_milli": to_milli(applied.on_hand_after),
            "price_ceiling": ceiling.price_ceiling if excess is not None and ceiling else None,
            "ceiling_excess": excess,
            "occurred_at": occurred_at,
            "recorded_at": now,
            "reference": draft.reference,
            "reason": draft.reason,
            "note": draft.note,
            "recorded_by": recorded_by,
            "batch_id": batch_id,
        }
        rows.append(row)
        events.append(_moved_event(row, coop, info))
        if excess is not None and ceiling is not None and ceiling.price_ceiling is not None:
            events.append(
                PriceCeilingExceeded(
                    cooperative_id=coop.id,
                    kelurahan_code=coop.kelurahan_code,
                    kecamatan_code=coop.kecamatan_code,
                    movement_id=row["id"],
                    commodity=draft.commodity,
                    unit=info.unit,
                    quantity=draft.quantity,
                    unit_price=draft.unit_price,  # type: ignore[arg-type]
                    price_ceiling=ceiling.price_ceiling,
                    excess=excess,
                    occurred_at=occurred_at,
                    ceiling_kind=ceiling.ceiling_kind,
                    total_excess=int((Decimal(excess) * draft.quantity).to_integral_value()),
                )
            )
        if draft.kind == "sale":
            quantity, takings = sold[(coop.id, draft.commodity, occurred_at.date())]
            sold[(coop.id, draft.commodity, occurred_at.date())] = (
                quantity + row["quantity_milli"],
                takings + (row["value"] or 0 if draft.unit_price is not None else 0),
            )

    try:
        await repository.insert_movements(session, rows)
    except repository.DuplicateReference as exc:  # a concurrent request booked the same reference first
        raise conflict("duplicate_reference", "A movement with this reference was just recorded.") from exc
    await repository.add_daily_sales(session, dict(sold))
    coops = {o.cooperative.id: o.cooperative for o in orders}
    latest: dict[Key, datetime] = {}
    for order in orders:
        key = (order.cooperative.id, order.draft.commodity)
        occurred_at = utc(order.draft.occurred_at)
        latest[key] = max(latest.get(key, occurred_at), occurred_at)
    # Items moved just now are judged at once; an item whose movements here are all back-dated (a
    # shop's history imported, a late sync) is left to the next scan, so importing history does not
    # announce episodes that began and ended long ago.
    first_day, last_day = sales_window(now)
    sold_now = await repository.sold_between(session, states.keys(), first_day, last_day)
    for key, state in states.items():
        state.sold_in_window, state.sold_window_day = sold_now[key], last_day
    current = {k: s for k, s in states.items() if latest[k] >= now - RECENT}
    events.extend(evaluate_items(current, catalogue, coops, now))
    await repository.save_stock(session, list(states.values()), now)
    await uow.publish_many(events)
    return [movement_out(row, catalogue[row["commodity"]].unit) for row in rows]


def evaluate_items(
    states: dict[Key, StockState],
    catalogue: dict[str, CommodityInfo],
    coops: dict[str, KnownCooperative],
    now: datetime,
) -> list[EventData]:
    """Incremental detection: the items' conditions now (their 28-day sales already counted for today);
    changed episodes are recorded on the states (saved by the caller) and announced."""
    sold = {key: state.sold_in_window or Decimal(0) for key, state in states.items()}
    events: list[EventData] = []
    for key, state in sorted(states.items()):
        info = catalogue[key[1]]
        current = classify_stock(state.on_hand, state.stall_clock_at, sold[key], now, info.thresholds)
        change = episode_change(state.condition, current)
        if not change.changed:
            continue
        state.condition = current
        state.condition_since = now if current else None
        coop = coops[key[0]]
        snapshot = ItemSnapshot(
            cooperative_id=coop.id,
            kelurahan_code=coop.kelurahan_code,
            kecamatan_code=coop.kecamatan_code,
            commodity=info.code,
            unit=info.unit,
            on_hand=state.on_hand,
            stock_value=state.stock_value,
            last_unit_cost=state.last_unit_cost,
            last_sale_at=state.last_sale_at,
            stall_clock_at=state.stall_clock_at,
            sold_in_window=sold[key],
            stall_days=info.stall_days,
            low_cover_days=info.low_cover_days,
        )
        events.extend(episode_events(snapshot, change, now))
    return events


async def _refuse_duplicate_references(session: AsyncSession, orders: list[MovementOrder]) -> None:
    seen: dict[tuple[str, str, str], MovementOrder] = {}
    wanted: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for order in orders:
        reference = order.draft.reference
        if reference is None:
            continue
        key = (order.cooperative.id, order.draft.kind, reference)
        if key in seen:
            raise conflict(
                "duplicate_reference",
                f"Reference {reference!r} is used twice for {order.draft.kind} in this request.",
                [{"field": _field(order, "reference"), "index": order.index}],
            )
        seen[key] = order
        wanted[order.cooperative.id].add((order.draft.kind, reference))
    for cooperative_id, pairs in wanted.items():
        taken = await repository.existing_references(session, cooperative_id, pairs)
        if taken:
            kind, reference = sorted(taken)[0]
            order = seen[(cooperative_id, kind, reference)]
            raise conflict(
                "duplicate_reference",
                f"A {kind} with reference {reference!r} is already recorded for this cooperative.",
                [{"field": _field(order, "reference"), "index": order.index}],
            )


def _moved_event(row: dict[str, Any], coop: KnownCooperative, info: CommodityInfo) -> StockMoved:
    return StockMoved(
        cooperative_id=coop.id,
        kelurahan_code=coop.kelurahan_code,
        kecamatan_code=coop.kecamatan_code,
        movement_id=row["id"],
        commodity=row["commodity"],
        kind=row["kind"],
        quantity=from_milli(row["quantity_milli"]),
        unit=info.unit,
        unit_price=row["unit_price"],
        value=row["value"],
        on_hand_after=from_milli(row["on_hand_after_milli"]),
        occurred_at=row["occurred_at"],
        reference=row["reference"],
        delta=from_milli(row["delta_milli"]),
        unit_cost=row["unit_cost"],
        reason=row["reason"],
        note=row["note"],
    )


def movement_out(row: Any, unit: str) -> dict[str, Any]:
    """A ledger row as the API shows it (quantities in the commodity's unit)."""
    get: Callable[[str], Any] = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return {
        "id": get("id"),
        "cooperative_id": get("cooperative_id"),
        "commodity": get("commodity"),
        "kind": get("kind"),
        "quantity": from_milli(get("quantity_milli")),
        "delta": from_milli(get("delta_milli")),
        "unit": unit,
        "unit_price": get("unit_price"),
        "unit_cost": get("unit_cost"),
        "value": get("value"),
        "on_hand_after": from_milli(get("on_hand_after_milli")),
        "price_ceiling": get("price_ceiling"),
        "ceiling_excess": get("ceiling_excess"),
        "occurred_at": repository.aware(get("occurred_at")),
        "recorded_at": repository.aware(get("recorded_at")),
        "reference": get("reference"),
        "reason": get("reason"),
        "note": get("note"),
        "batch_id": get("batch_id"),
    }
