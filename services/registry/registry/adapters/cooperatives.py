"""Queries of the cooperatives (KKMP), their boards and their status history.

A cooperative leaves here as the dict the API answers with: its kelurahan and kecamatan names, point,
deed and board (ordered by position). Work on many rows is set-based: a fixed number of queries
whatever the size of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import orm
from registry.adapters.rows import Duplicate, as_utc, chunks, like_pattern
from registry.domain.rules import board_position_rank


def _cooperative_query() -> Any:
    return (
        select(
            orm.cooperatives,
            orm.kelurahan.c.name.label("kelurahan_name"),
            orm.kelurahan.c.lat,
            orm.kelurahan.c.lon,
            orm.kecamatan.c.name.label("kecamatan_name"),
        )
        .join(orm.kelurahan, orm.kelurahan.c.code == orm.cooperatives.c.kelurahan_code)
        .join(orm.kecamatan, orm.kecamatan.c.code == orm.cooperatives.c.kecamatan_code)
    )


async def _boards(session: AsyncSession, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    boards: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for chunk in chunks(ids):
        rows = await session.execute(
            select(orm.board_members).where(orm.board_members.c.cooperative_id.in_(chunk))
        )
        for r in rows:
            boards[r.cooperative_id].append(
                {"id": r.id, "name": r.name, "position": r.position, "phone": r.phone, "since": r.since}
            )
    for board in boards.values():
        board.sort(key=lambda m: (board_position_rank(m["position"]), m["name"]))
    return boards


def _cooperative_out(row: Any, board: list[dict[str, Any]]) -> dict[str, Any]:
    deed = None
    if row.deed_number or row.deed_date or row.deed_notary:
        deed = {"number": row.deed_number, "date": row.deed_date, "notary": row.deed_notary}
    return {
        "id": row.id,
        "name": row.name,
        "kelurahan_code": row.kelurahan_code,
        "kelurahan_name": row.kelurahan_name,
        "kecamatan_code": row.kecamatan_code,
        "kecamatan_name": row.kecamatan_name,
        "formation": row.formation,
        "deed": deed,
        "status": row.status,
        "business_units": list(row.business_units or []),
        "board": board,
        "member_count": row.member_count,
        "address": row.address,
        "phone": row.phone,
        "lat": row.lat,
        "lon": row.lon,
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
    }


async def get(session: AsyncSession, cooperative_id: str) -> dict[str, Any] | None:
    row = (await session.execute(_cooperative_query().where(orm.cooperatives.c.id == cooperative_id))).first()
    if row is None:
        return None
    return _cooperative_out(row, (await _boards(session, [row.id]))[row.id])


async def search(
    session: AsyncSession,
    *,
    only_id: str | None,
    kecamatan_scope: Sequence[str] | None,
    kecamatan_code: str | None,
    status: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[dict[str, Any]]]:
    """The total and one page of the cooperatives that match, by kelurahan code. `only_id`: just this
    one (a manager's own); `kecamatan_scope`: only these kecamatan (an officer's)."""
    query = _cooperative_query()
    t = orm.cooperatives
    conditions = []
    if only_id is not None:
        conditions.append(t.c.id == only_id)
    if kecamatan_scope is not None:
        conditions.append(t.c.kecamatan_code.in_(kecamatan_scope))
    if kecamatan_code:
        conditions.append(t.c.kecamatan_code == kecamatan_code)
    if status:
        conditions.append(t.c.status == status)
    if q:
        pattern = like_pattern(q)
        conditions.append(
            or_(
                func.lower(t.c.name).like(pattern, escape="\\"),
                func.lower(orm.kelurahan.c.name).like(pattern, escape="\\"),
            )
        )
    for c in conditions:
        query = query.where(c)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (await session.execute(query.order_by(t.c.kelurahan_code).limit(limit).offset(offset))).all()
    boards = await _boards(session, [r.id for r in rows])
    return total, [_cooperative_out(r, boards[r.id]) for r in rows]


async def registered_in(session: AsyncSession, kelurahan_codes: Sequence[str]) -> dict[str, str]:
    """The cooperative id of each of these kelurahan that has one."""
    taken: dict[str, str] = {}
    for chunk in chunks(kelurahan_codes):
        for code, coop_id in await session.execute(
            select(orm.cooperatives.c.kelurahan_code, orm.cooperatives.c.id).where(
                orm.cooperatives.c.kelurahan_code.in_(chunk)
            )
        ):
            taken[code] = coop_id
    return taken


async def of_kelurahan(session: AsyncSession, code: str) -> str | None:
    return (
        await session.execute(select(orm.cooperatives.c.id).where(orm.cooperatives.c.kelurahan_code == code))
    ).scalar()


async def kelurahan_of(session: AsyncSession, cooperative_id: str) -> str | None:
    return (
        await session.execute(
            select(orm.cooperatives.c.kelurahan_code).where(orm.cooperatives.c.id == cooperative_id)
        )
    ).scalar()


async def kecamatan_of(session: AsyncSession, ids: Sequence[str]) -> dict[str, str]:
    """The kecamatan code of each of these cooperatives that exists."""
    known: dict[str, str] = {}
    for chunk in chunks(ids):
        for coop_id, kecamatan_code in await session.execute(
            select(orm.cooperatives.c.id, orm.cooperatives.c.kecamatan_code).where(
                orm.cooperatives.c.id.in_(chunk)
            )
        ):
            known[coop_id] = kecamatan_code
    return known


async def add_many(
    session: AsyncSession, cooperatives: list[dict[str, Any]], history: list[dict[str, Any]]
) -> None:
    """Insert cooperatives and their first status rows. The unique index on the kelurahan refuses a
    second KKMP (`Duplicate`)."""
    try:
        await session.execute(insert(orm.cooperatives), cooperatives)
    except IntegrityError as exc:
        raise Duplicate(str(exc.orig)) from exc
    await session.execute(insert(orm.status_history), history)


async def add_status_change(
    session: AsyncSession,
    *,
    cooperative_id: str,
    old_status: str | None,
    new_status: str,
    reason: str | None,
    changed_by: str,
    changed_at: datetime,
) -> None:
    await session.execute(
        insert(orm.status_history).values(
            cooperative_id=cooperative_id,
            old_status=old_status,
            new_status=new_status,
            reason=reason,
            changed_by=changed_by,
            changed_at=changed_at,
        )
    )


async def update_if_status(
    session: AsyncSession, cooperative_id: str, expected_status: str, values: dict[str, Any]
) -> bool:
    """Change the row only if its status is still `expected_status` (two officers racing cannot both
    apply a change); False if it was not."""
    result = await session.execute(
        update(orm.cooperatives)
        .where(orm.cooperatives.c.id == cooperative_id, orm.cooperatives.c.status == expected_status)
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def status_history(session: AsyncSession, cooperative_id: str) -> list[dict[str, Any]]:
    h = orm.status_history
    rows = await session.execute(
        select(h, orm.users.c.username.label("changed_by_username"))
        .outerjoin(orm.users, orm.users.c.id == h.c.changed_by)
        .where(h.c.cooperative_id == cooperative_id)
        .order_by(h.c.id)
    )
    out = []
    for r in rows:
        item = dict(r._mapping)
        item["changed_at"] = as_utc(item["changed_at"])
        out.append(item)
    return out


async def replace_board(
    session: AsyncSession, cooperative_id: str, members: list[dict[str, Any]], at: datetime
) -> None:
    await session.execute(
        delete(orm.board_members).where(orm.board_members.c.cooperative_id == cooperative_id)
    )
    if members:
        await session.execute(insert(orm.board_members), members)
    await session.execute(
        update(orm.cooperatives).where(orm.cooperatives.c.id == cooperative_id).values(updated_at=at)
    )


async def add_members(
    session: AsyncSession, cooperative_id: str, members: list[dict[str, Any]], at: datetime
) -> int:
    """Insert members and count them on the cooperative; returns its new member count. The increment
    happens in the database under the row lock, so concurrent joins never lose a count."""
    await session.execute(insert(orm.members), members)
    await session.execute(
        update(orm.cooperatives)
        .where(orm.cooperatives.c.id == cooperative_id)
        .values(member_count=orm.cooperatives.c.member_count + len(members), updated_at=at)
    )
    count: int = (
        await session.execute(
            select(orm.cooperatives.c.member_count).where(orm.cooperatives.c.id == cooperative_id)
        )
    ).scalar_one()
    return count


def member_out(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else row._mapping.get
    sector = get("sector")
    return {
        "id": get("id"),
        "cooperative_id": get("cooperative_id"),
        "name": get("name"),
        "kind": get("kind"),
        "business": {"sector": sector, "products": list(get("products") or [])} if sector else None,
        "joined_at": as_utc(get("joined_at")),
    }


async def members_page(
    session: AsyncSession, cooperative_id: str, kind: str | None, limit: int, offset: int
) -> dict[str, Any]:
    query = select(orm.members).where(orm.members.c.cooperative_id == cooperative_id)
    if kind:
        query = query.where(orm.members.c.kind == kind)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        await session.execute(
            query.order_by(orm.members.c.joined_at, orm.members.c.id).limit(limit).offset(offset)
        )
    ).all()
    return {"items": [member_out(r) for r in rows], "total": total}
