"""Orders as their readers see them: a manager its own share of a pooled order, an officer the shares in
its kecamatan, a supplier its own orders. Reads only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import not_found
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orders as order_rows
from sourcing.service_layer.common import dec


def _visible_lines(principal: Principal, lines: list[Any]) -> list[Any]:
    """A manager sees its own share of a pooled order; an officer the shares in its kecamatan."""
    if principal.role == "coop_manager":
        return [line for line in lines if line.cooperative_id == principal.cooperative_id]
    if principal.role == "officer":
        return [line for line in lines if principal.covers_kecamatan(line.kecamatan_code)]
    return lines


async def _orders_out(
    session: AsyncSession, principal: Principal, rows: list[Any], with_deliveries: bool
) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    lines: dict[str, list[Any]] = defaultdict(list)
    delivered: dict[str, list[Any]] = defaultdict(list)
    if ids:
        for line in await order_rows.lines_of(session, ids):
            lines[line.order_id].append(line)
        if with_deliveries:
            for d in await order_rows.deliveries_of(session, ids):
                delivered[d.order_id].append(d)
    columns = [c for c in order_rows.columns() if c not in order_rows.PRIVATE]
    out = []
    for r in rows:
        all_lines = lines[r.id]
        visible = _visible_lines(principal, all_lines)
        seen = {line.cooperative_id for line in visible}
        single = all_lines[0] if len(all_lines) == 1 else None
        out.append(
            {
                **{c: getattr(r, c) for c in columns},
                "supplier_name": r.supplier_name,
                "quantity": dec(r.quantity),
                "delivered_quantity": dec(r.delivered_quantity),
                "total_price": round(dec(r.quantity) * r.unit_price),
                "need_id": single.need_id if single else None,
                "need_ids": [line.need_id for line in visible if line.need_id],
                "cooperative_id": single.cooperative_id if single else None,
                "created_at": r.placed_at,
                "lines": [
                    {
                        **dict(line._mapping),
                        "quantity": dec(line.quantity),
                        "delivered_quantity": dec(line.delivered_quantity),
                    }
                    for line in visible
                ],
                "deliveries": [
                    {
                        "delivery_id": d.id,
                        "cooperative_id": d.cooperative_id,
                        "quantity": dec(d.quantity),
                        "complete": d.complete,
                        "delivered_at": d.delivered_at,
                    }
                    for d in delivered[r.id]
                    if d.cooperative_id in seen
                ],
            }
        )
    return out


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    *,
    need_id: str | None,
    status: str | None,
    supplier_id: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    total, rows = await order_rows.page(
        session,
        principal,
        need_id=need_id,
        status=status,
        supplier_id=supplier_id,
        cooperative_id=cooperative_id,
        limit=limit,
        offset=offset,
    )
    return {
        "items": await _orders_out(session, principal, rows, False),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


async def get_order(session: AsyncSession, principal: Principal, order_id: str) -> dict[str, Any]:
    row = await order_rows.get(session, order_id)
    if row is None or not await order_rows.in_scope(session, principal, order_id):
        raise not_found("order")
    return (await _orders_out(session, principal, [row], True))[0]
