"""A cooperative's people: its board (pengurus and pengawas) and its members (residents, UMKM)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.errors import ApiError, conflict
from kkmp_shared.events.contracts import MemberJoined
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import cooperatives
from registry.domain.ids import new_id
from registry.domain.rules import accepts_new_members, board_problems
from registry.service_layer.commands import AddMembers, ReplaceBoard
from registry.service_layer.cooperatives import (
    load_cooperative,
    readable_cooperative,
    updated_event,
    writable_cooperative,
)


async def set_board(uow: UnitOfWork, principal: Principal, command: ReplaceBoard) -> dict[str, Any]:
    """Replace the board as a whole, as a new deed or RAT decision does."""
    cooperative_id = command.cooperative_id
    await writable_cooperative(uow.session, principal, cooperative_id)
    problems = board_problems(m.position for m in command.members)
    if problems:
        raise ApiError(
            422,
            "invalid_board",
            "The board is not valid: " + "; ".join(problems) + ".",
            [{"field": "members", "message": p, "type": "invalid_board"} for p in problems],
        )
    await cooperatives.replace_board(
        uow.session,
        cooperative_id,
        [{"id": new_id(), "cooperative_id": cooperative_id, **asdict(m)} for m in command.members],
        clock.now(),
    )
    coop = await load_cooperative(uow.session, cooperative_id)
    assert coop is not None
    await uow.publish(updated_event(coop, ["board"]))
    return coop


async def add_members(
    uow: UnitOfWork, principal: Principal, command: AddMembers
) -> tuple[list[dict[str, Any]], int]:
    """Register members (residents, UMKM with their business) all or none; one `member.joined.v1`
    each. Returns the members and the cooperative's new member count."""
    cooperative_id = command.cooperative_id
    coop = await writable_cooperative(uow.session, principal, cooperative_id)
    if not accepts_new_members(coop["status"]):
        raise conflict("cooperative_dissolved", "A dissolved cooperative takes no new members.")
    missing = [i for i, m in enumerate(command.members) if m.kind == "umkm" and m.business is None]
    if missing:
        raise ApiError(
            422,
            "validation_error",
            "An UMKM member needs its business (sector and products).",
            [
                {
                    "field": f"members.{i}.business" if command.batch else "business",
                    "message": "required for an UMKM member",
                    "type": "missing",
                }
                for i in missing
            ],
        )
    now = clock.now()
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "cooperative_id": cooperative_id,
            "name": m.name,
            "kind": m.kind,
            "sector": m.business.sector if m.business else None,
            "products": list(m.business.products) if m.business else [],
            "joined_at": m.joined_at or now,
        }
        for m in command.members
    ]
    count = await cooperatives.add_members(uow.session, cooperative_id, rows, now)
    first = count - len(rows)
    await uow.publish_many(
        [
            MemberJoined(
                cooperative_id=cooperative_id,
                kelurahan_code=coop["kelurahan_code"],
                kecamatan_code=coop["kecamatan_code"],
                member_id=row["id"],
                kind=row["kind"],
                sector=row["sector"],
                products=row["products"],
                member_count=first + i + 1,
                joined_at=row["joined_at"],
            )
            for i, row in enumerate(rows)
        ],
    )
    return [cooperatives.member_out(row) for row in rows], count


async def list_members(
    session: AsyncSession,
    principal: Principal,
    cooperative_id: str,
    kind: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    await readable_cooperative(session, principal, cooperative_id)
    return await cooperatives.members_page(session, cooperative_id, kind, limit, offset)
