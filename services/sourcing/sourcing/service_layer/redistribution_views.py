"""Redistribution as its readers see it: proposals and stalled items in the caller's scope. Reads only."""

from __future__ import annotations

from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import not_found
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import redistribution as rows
from sourcing.service_layer.common import dec

_SIDE_COLUMNS = ("from_decision", "from_decided", "from_note", "to_decision", "to_decided", "to_note")


def _side(row: Any, side: str) -> dict[str, Any]:
    return {
        "decision": getattr(row, f"{side}_decision"),
        "decided_by": getattr(row, f"{side}_decided_by"),
        "decided_at": getattr(row, f"{side}_decided_at"),
        "note": getattr(row, f"{side}_note"),
    }


def proposal_out(row: Any) -> dict[str, Any]:
    out = {c: getattr(row, c) for c in rows.proposal_columns() if not c.startswith(_SIDE_COLUMNS)}
    out["quantity"] = dec(row.quantity)
    out["from_side"] = _side(row, "from")
    out["to_side"] = _side(row, "to")
    return out


def can_read_proposal(principal: Principal, row: Any) -> bool:
    return principal.role != "supplier" and (
        principal.can_read_cooperative(row.from_cooperative_id, row.from_kecamatan_code)
        or principal.can_read_cooperative(row.to_cooperative_id, row.to_kecamatan_code)
    )


async def list_proposals(
    session: AsyncSession,
    principal: Principal,
    *,
    commodity: str | None,
    status: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    total, found = await rows.proposal_page(
        session,
        principal,
        commodity=commodity,
        status=status,
        cooperative_id=cooperative_id,
        limit=limit,
        offset=offset,
    )
    return {"items": [proposal_out(r) for r in found], "total": total, "limit": limit, "offset": offset}


async def get_proposal(session: AsyncSession, principal: Principal, proposal_id: str) -> dict[str, Any]:
    row = await rows.get_proposal(session, proposal_id)
    if row is None or not can_read_proposal(principal, row):
        raise not_found("redistribution proposal")
    return proposal_out(row)


def stalled_out(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["on_hand"] = dec(row.on_hand)
    out["allocated_quantity"] = dec(out.pop("allocated", None))
    return out


async def list_stalled(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    commodity: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    total, found = await rows.stalled_page(
        session,
        principal,
        status=status,
        commodity=commodity,
        cooperative_id=cooperative_id,
        limit=limit,
        offset=offset,
    )
    return {"items": [stalled_out(r) for r in found], "total": total, "limit": limit, "offset": offset}


async def answered_proposal(session: AsyncSession, proposal_id: str) -> dict[str, Any]:
    """The proposal as it stands after the caller answered it (the answer proved the caller's right)."""
    row = await rows.get_proposal(session, proposal_id)
    assert row is not None, "answered in this transaction"
    return proposal_out(row)
