"""Registry use cases. Each takes a session (one per request), checks who may do it, does its change and
stages its events in the outbox within the same transaction, then commits.

Work on many rows (a batch of cooperatives, a register of members, a training's participants) is done
with set-based statements: a fixed number of queries whatever the size, as the national scale (80,000
KKMP) needs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from kkmp_shared import clock
from kkmp_shared.auth import Principal, ensure_can_read, ensure_can_write
from kkmp_shared.errors import ApiError, conflict, forbidden, not_found, unprocessable
from kkmp_shared.events.contracts import (
    CooperativeRegistered,
    CooperativeUpdated,
    MemberJoined,
    PotentialMapped,
    TrainingCompleted,
    UserCreated,
)
from kkmp_shared.messaging.outbox import Outbox
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import orm
from registry.domain.rules import (
    IllegalStatusChange,
    accepts_new_members,
    board_position_rank,
    board_problems,
    check_status_change,
)
from registry.entrypoints import schemas
from registry.entrypoints.schemas import as_utc


class _Passwords:
    """argon2id with the registry's parameters (`PASSWORD_HASH_*`); a hash carries its own, so hashes
    made under other parameters still verify. Verifying against a fixed hash when the user does not
    exist keeps the timing of both paths alike."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        self.dummy_hash = hasher.hash("not-a-real-password")


_passwords = _Passwords(PasswordHasher())


def configure_password_hashing(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Set once at start from the settings, before the first request."""
    global _passwords
    current = _passwords.hasher
    if (current.time_cost, current.memory_cost, current.parallelism) != (time_cost, memory_kib, parallelism):
        hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        _passwords = _Passwords(hasher)


# Lists of ids in IN (...) are sent in chunks: both databases cap the number of bound parameters.
_IN_CHUNK = 1000


def _now() -> datetime:
    return clock.now()


def _id() -> str:
    return str(uuid.uuid4())


def is_id(value: str) -> bool:
    """Every id the registry hands out is a UUID; anything else names nothing (and never reaches SQL)."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow (~0.1 s of CPU): run it off the event loop so one login does not
    # stall every other request and the outbox relay.
    return await asyncio.to_thread(_passwords.hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(_passwords.hasher.verify, password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --- regions ------------------------------------------------------------------------------------


async def kelurahan_by_code(session: AsyncSession, code: str) -> Any:
    return (
        await session.execute(
            select(orm.kelurahan, orm.kecamatan.c.name.label("kecamatan_name"))
            .join(orm.kecamatan, orm.kecamatan.c.code == orm.kelurahan.c.kecamatan_code)
            .where(orm.kelurahan.c.code == code)
        )
    ).first()


# --- cooperatives -------------------------------------------------------------------------------


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
    for chunk in _chunks(ids):
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


async def load_cooperative(session: AsyncSession, cooperative_id: str) -> dict[str, Any] | None:
    if not is_id(cooperative_id):
        return None
    row = (await session.execute(_cooperative_query().where(orm.cooperatives.c.id == cooperative_id))).first()
    if row is None:
        return None
    return _cooperative_out(row, (await _boards(session, [row.id]))[row.id])


async def readable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> dict[str, Any]:
    """The cooperative if the caller may see it; 404 alike for unknown and not-yours (no leak)."""
    if principal.role == "supplier" or (
        principal.role == "coop_manager" and principal.cooperative_id != cooperative_id
    ):
        raise not_found("cooperative")
    coop = await load_cooperative(session, cooperative_id)
    if coop is None:
        raise not_found("cooperative")
    ensure_can_read(principal, coop["id"], coop["kecamatan_code"])
    return coop


async def writable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> dict[str, Any]:
    """The cooperative if the caller may change it: 403 for another's (whether or not it exists)."""
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot change a cooperative's data.")
    if principal.role == "coop_manager" and principal.cooperative_id != cooperative_id:
        raise forbidden("You may only change your own cooperative's data.")
    coop = await load_cooperative(session, cooperative_id)
    if coop is None:
        raise not_found("cooperative")
    ensure_can_write(principal, coop["id"], coop["kecamatan_code"])
    return coop


def _updated_event(coop: dict[str, Any], changed: list[str]) -> CooperativeUpdated:
    return CooperativeUpdated(
        cooperative_id=coop["id"],
        kelurahan_code=coop["kelurahan_code"],
        kecamatan_code=coop["kecamatan_code"],
        name=coop["name"],
        kelurahan_name=coop["kelurahan_name"],
        formation=coop["formation"],
        status=coop["status"],
        business_units=coop["business_units"],
        lat=coop["lat"],
        lon=coop["lon"],
        member_count=coop["member_count"],
        changed=changed,
        updated_at=coop["updated_at"],
    )


@dataclass(frozen=True)
class RegistrationProblem:
    """Why one item of a registration batch cannot be registered (`index` into the batch)."""

    index: int
    field: str
    code: str
    message: str


async def registration_problems(
    session: AsyncSession, items: Sequence[schemas.CooperativeCreate]
) -> tuple[list[RegistrationProblem], dict[str, Any]]:
    """Check a batch against the regions and the cooperatives already registered, in a few queries.

    Returns the problems and the kelurahan rows by code (for the registration itself)."""
    codes = list(dict.fromkeys(item.kelurahan_code for item in items))
    regions: dict[str, Any] = {}
    taken: dict[str, str] = {}
    for chunk in _chunks(codes):
        for row in await session.execute(
            select(orm.kelurahan, orm.kecamatan.c.name.label("kecamatan_name"))
            .join(orm.kecamatan, orm.kecamatan.c.code == orm.kelurahan.c.kecamatan_code)
            .where(orm.kelurahan.c.code.in_(chunk))
        ):
            regions[row.code] = row
        for code, coop_id in await session.execute(
            select(orm.cooperatives.c.kelurahan_code, orm.cooperatives.c.id).where(
                orm.cooperatives.c.kelurahan_code.in_(chunk)
            )
        ):
            taken[code] = coop_id
    problems: list[RegistrationProblem] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        code = item.kelurahan_code
        if code not in regions:
            problems.append(
                RegistrationProblem(
                    index, "kelurahan_code", "unknown_kelurahan", f"Unknown kelurahan code {code}."
                )
            )
        elif code in taken:
            problems.append(
                RegistrationProblem(
                    index,
                    "kelurahan_code",
                    "kelurahan_taken",
                    f"Kelurahan {regions[code].name} ({code}) already has a KKMP.",
                )
            )
        elif code in first_seen:
            problems.append(
                RegistrationProblem(
                    index,
                    "kelurahan_code",
                    "duplicate_kelurahan",
                    f"{code} is already used by item {first_seen[code]}.",
                )
            )
        first_seen.setdefault(code, index)
    return problems, regions


async def register_cooperatives(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    items: Sequence[schemas.CooperativeCreate],
    regions: dict[str, Any],
) -> list[str]:
    """Insert checked registrations (see `registration_problems`) with their history rows and their
    `cooperative.registered.v1` events, in bulk; the caller commits."""
    now = _now()
    coops: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    events: list[CooperativeRegistered] = []
    for item in items:
        kel = regions[item.kelurahan_code]
        coop_id = _id()
        at = item.registered_at or now
        units = list(dict.fromkeys(item.business_units))
        coops.append(
            {
                "id": coop_id,
                "name": item.name,
                "kelurahan_code": item.kelurahan_code,
                "kecamatan_code": kel.kecamatan_code,
                "formation": item.formation,
                "deed_number": item.deed.number if item.deed else None,
                "deed_date": item.deed.date if item.deed else None,
                "deed_notary": item.deed.notary if item.deed else None,
                "status": "formed",
                "business_units": units,
                "member_count": 0,
                "address": item.address,
                "phone": item.phone,
                "created_at": at,
                "updated_at": at,
            }
        )
        history.append(
            {
                "cooperative_id": coop_id,
                "old_status": None,
                "new_status": "formed",
                "reason": "registered",
                "changed_by": principal.sub,
                "changed_at": at,
            }
        )
        events.append(
            CooperativeRegistered(
                cooperative_id=coop_id,
                kelurahan_code=item.kelurahan_code,
                kecamatan_code=kel.kecamatan_code,
                name=item.name,
                kelurahan_name=kel.name,
                formation=item.formation,
                status="formed",
                business_units=units,
                lat=kel.lat,
                lon=kel.lon,
                registered_at=at,
            )
        )
    if coops:
        await session.execute(insert(orm.cooperatives), coops)
        await session.execute(insert(orm.status_history), history)
        await outbox.add_many(session, list(events))
    return [c["id"] for c in coops]


async def register_cooperative(
    session: AsyncSession, outbox: Outbox, principal: Principal, data: schemas.CooperativeCreate
) -> dict[str, Any]:
    problems, regions = await registration_problems(session, [data])
    if problems:
        problem = problems[0]
        if problem.code == "kelurahan_taken":
            raise conflict(problem.code, problem.message, {"kelurahan_code": data.kelurahan_code})
        raise unprocessable(problem.field, problem.message, problem.code)
    try:
        # On PostgreSQL the unique index refuses the INSERT itself; on SQLite the commit.
        [coop_id] = await register_cooperatives(session, outbox, principal, [data], regions)
        await session.commit()
    except IntegrityError as exc:  # a concurrent registration for the same kelurahan won the race
        await session.rollback()
        raise conflict("kelurahan_taken", f"Kelurahan {data.kelurahan_code} already has a KKMP.") from exc
    coop = await load_cooperative(session, coop_id)
    assert coop is not None
    return coop


async def register_batch(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    items: Sequence[schemas.CooperativeCreate],
    *,
    describe: Any = None,
) -> list[str]:
    """All of the batch or nothing. `describe(problem)` turns a problem into an error detail."""
    problems, regions = await registration_problems(session, items)
    if problems:
        details = [
            describe(p)
            if describe
            else {"field": f"cooperatives.{p.index}.{p.field}", "message": p.message, "type": p.code}
            for p in problems
        ]
        only_taken = all(p.code == "kelurahan_taken" for p in problems)
        raise ApiError(
            409 if only_taken else 422,
            "batch_conflict" if only_taken else "batch_rejected",
            f"{len(problems)} problem(s) found; nothing was registered.",
            details,
        )
    try:
        ids = await register_cooperatives(session, outbox, principal, items, regions)
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise conflict(
            "batch_conflict", "Another registration took one of these kelurahan meanwhile."
        ) from exc
    return ids


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_cooperatives(
    session: AsyncSession,
    principal: Principal,
    *,
    kecamatan_code: str | None,
    status: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot list cooperatives.")
    query = _cooperative_query()
    t = orm.cooperatives
    conditions = []
    if principal.role == "coop_manager":
        conditions.append(t.c.id == (principal.cooperative_id or ""))
    scope = principal.kecamatan_filter()
    if scope is not None:
        conditions.append(t.c.kecamatan_code.in_(scope))
    if kecamatan_code:
        conditions.append(t.c.kecamatan_code == kecamatan_code)
    if status:
        conditions.append(t.c.status == status)
    if q:
        pattern = _like_pattern(q)
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
    return {
        "items": [_cooperative_out(r, boards[r.id]) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


# Who may change which fields of a cooperative: the profile and the deed are Dinkopdag's records;
# officers move the status within their scope; a manager keeps its own contact details and units.
EDITABLE_FIELDS: dict[str, frozenset[str]] = {
    "admin": frozenset(schemas.CooperativeUpdate.model_fields),
    "service": frozenset(schemas.CooperativeUpdate.model_fields),
    "officer": frozenset({"status", "status_reason", "business_units", "address", "phone"}),
    "coop_manager": frozenset({"business_units", "address", "phone"}),
}


async def update_cooperative(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    cooperative_id: str,
    data: schemas.CooperativeUpdate,
) -> dict[str, Any]:
    coop = await writable_cooperative(session, principal, cooperative_id)
    changes = data.model_dump(exclude_unset=True)
    refused = sorted(set(changes) - EDITABLE_FIELDS.get(principal.role, frozenset()))
    if refused:
        raise forbidden(f"Your role may not change: {', '.join(refused)}.")
    for field in ("name", "formation", "business_units"):
        if field in changes and changes[field] is None:
            raise unprocessable(field, f"{field} cannot be emptied.")
    values: dict[str, Any] = {}
    now = _now()
    for field in ("name", "formation"):
        if changes.get(field) is not None and changes[field] != coop[field]:
            values[field] = changes[field]
    for field in ("address", "phone"):  # these may be cleared with null
        if field in changes and changes[field] != coop[field]:
            values[field] = changes[field]
    if data.business_units is not None and list(dict.fromkeys(data.business_units)) != coop["business_units"]:
        values["business_units"] = list(dict.fromkeys(data.business_units))
    if data.deed is not None:
        values.update(deed_number=data.deed.number, deed_date=data.deed.date, deed_notary=data.deed.notary)
    if data.status is not None and data.status != coop["status"]:
        try:
            check_status_change(coop["status"], data.status)
        except IllegalStatusChange as exc:
            raise conflict("illegal_status_change", str(exc), {"from": exc.old, "to": exc.new}) from exc
        values["status"] = data.status
        await session.execute(
            insert(orm.status_history).values(
                cooperative_id=cooperative_id,
                old_status=coop["status"],
                new_status=data.status,
                reason=data.status_reason,
                changed_by=principal.sub,
                changed_at=now,
            )
        )
    if not values:
        return coop
    values["updated_at"] = now
    # Only move the status if it is still what we read: two officers racing cannot both apply a change.
    result = await session.execute(
        update(orm.cooperatives)
        .where(orm.cooperatives.c.id == cooperative_id, orm.cooperatives.c.status == coop["status"])
        .values(**values)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.rollback()
        raise conflict("concurrent_change", "The cooperative changed meanwhile; reload and try again.")
    updated = await load_cooperative(session, cooperative_id)
    assert updated is not None
    changed = sorted({"deed" if k.startswith("deed_") else k for k in values if k != "updated_at"})
    await outbox.add(session, _updated_event(updated, changed))
    await session.commit()
    return updated


async def status_history(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> list[dict[str, Any]]:
    await readable_cooperative(session, principal, cooperative_id)
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


async def set_board(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    cooperative_id: str,
    data: schemas.BoardIn,
) -> dict[str, Any]:
    """Replace the board (pengurus and pengawas) as a whole, as a new deed or RAT decision does."""
    await writable_cooperative(session, principal, cooperative_id)
    problems = board_problems(m.position for m in data.members)
    if problems:
        raise ApiError(
            422,
            "invalid_board",
            "The board is not valid: " + "; ".join(problems) + ".",
            [{"field": "members", "message": p, "type": "invalid_board"} for p in problems],
        )
    await session.execute(
        delete(orm.board_members).where(orm.board_members.c.cooperative_id == cooperative_id)
    )
    if data.members:
        await session.execute(
            insert(orm.board_members),
            [{"id": _id(), "cooperative_id": cooperative_id, **m.model_dump()} for m in data.members],
        )
    await session.execute(
        update(orm.cooperatives).where(orm.cooperatives.c.id == cooperative_id).values(updated_at=_now())
    )
    coop = await load_cooperative(session, cooperative_id)
    assert coop is not None
    await outbox.add(session, _updated_event(coop, ["board"]))
    await session.commit()
    return coop


# --- members ------------------------------------------------------------------------------------


async def add_members(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    cooperative_id: str,
    items: Sequence[schemas.MemberCreate],
    *,
    batch: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """Register members (residents, UMKM with their business) all or none; one `member.joined.v1`
    each. Returns the members and the cooperative's new member count."""
    coop = await writable_cooperative(session, principal, cooperative_id)
    if not accepts_new_members(coop["status"]):
        raise conflict("cooperative_dissolved", "A dissolved cooperative takes no new members.")
    missing = [i for i, m in enumerate(items) if m.kind == "umkm" and m.business is None]
    if missing:
        raise ApiError(
            422,
            "validation_error",
            "An UMKM member needs its business (sector and products).",
            [
                {
                    "field": f"members.{i}.business" if batch else "business",
                    "message": "required for an UMKM member",
                    "type": "missing",
                }
                for i in missing
            ],
        )
    now = _now()
    rows: list[dict[str, Any]] = [
        {
            "id": _id(),
            "cooperative_id": cooperative_id,
            "name": m.name,
            "kind": m.kind,
            "sector": m.business.sector if m.business else None,
            "products": m.business.products if m.business else [],
            "joined_at": m.joined_at or now,
        }
        for m in items
    ]
    await session.execute(insert(orm.members), rows)
    # The increment happens in the database under the row lock, so concurrent joins never lose a count.
    await session.execute(
        update(orm.cooperatives)
        .where(orm.cooperatives.c.id == cooperative_id)
        .values(member_count=orm.cooperatives.c.member_count + len(rows), updated_at=now)
    )
    count = (
        await session.execute(
            select(orm.cooperatives.c.member_count).where(orm.cooperatives.c.id == cooperative_id)
        )
    ).scalar_one()
    first = count - len(rows)
    await outbox.add_many(
        session,
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
    await session.commit()
    return [_member_out(row) for row in rows], count


def _member_out(row: Any) -> dict[str, Any]:
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


async def list_members(
    session: AsyncSession,
    principal: Principal,
    cooperative_id: str,
    kind: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    await readable_cooperative(session, principal, cooperative_id)
    query = select(orm.members).where(orm.members.c.cooperative_id == cooperative_id)
    if kind:
        query = query.where(orm.members.c.kind == kind)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        await session.execute(
            query.order_by(orm.members.c.joined_at, orm.members.c.id).limit(limit).offset(offset)
        )
    ).all()
    return {"items": [_member_out(r) for r in rows], "total": total}


# --- potentials ---------------------------------------------------------------------------------


async def _cooperative_of_kelurahan(session: AsyncSession, code: str) -> str | None:
    return (
        await session.execute(select(orm.cooperatives.c.id).where(orm.cooperatives.c.kelurahan_code == code))
    ).scalar()


async def _managed_kelurahan(session: AsyncSession, principal: Principal) -> str | None:
    if not principal.cooperative_id or not is_id(principal.cooperative_id):
        return None
    return (
        await session.execute(
            select(orm.cooperatives.c.kelurahan_code).where(orm.cooperatives.c.id == principal.cooperative_id)
        )
    ).scalar()


async def add_potential(
    session: AsyncSession, outbox: Outbox, principal: Principal, code: str, data: schemas.PotentialCreate
) -> dict[str, Any]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot map potentials.")
    kel = await kelurahan_by_code(session, code)
    if kel is None:
        raise not_found("kelurahan")
    coop_id = await _cooperative_of_kelurahan(session, code)
    if principal.role == "coop_manager":
        if coop_id is None or principal.cooperative_id != coop_id:
            raise forbidden("You may only map the potential of your own kelurahan.")
    elif principal.role == "officer":
        if not principal.covers_kecamatan(kel.kecamatan_code):
            raise forbidden("This kelurahan is outside your kecamatan scope.")
    elif principal.role not in ("admin", "service"):
        raise forbidden()
    now = _now()
    potential_id = _id()
    await session.execute(
        insert(orm.potentials).values(
            id=potential_id,
            kelurahan_code=code,
            sector=data.sector,
            description=data.description,
            priority=data.priority,
            created_by=principal.sub,
            created_at=now,
        )
    )
    await outbox.add(
        session,
        PotentialMapped(
            potential_id=potential_id,
            kelurahan_code=code,
            kecamatan_code=kel.kecamatan_code,
            cooperative_id=coop_id,
            sector=data.sector,
            description=data.description,
            priority=data.priority,
        ),
        subject=coop_id,
    )
    await session.commit()
    return {
        "id": potential_id,
        "kelurahan_code": code,
        "kecamatan_code": kel.kecamatan_code,
        "cooperative_id": coop_id,
        "sector": data.sector,
        "description": data.description,
        "priority": data.priority,
        "created_at": now,
    }


def _potentials_query() -> Any:
    p = orm.potentials
    return (
        select(
            p,
            orm.kelurahan.c.kecamatan_code,
            orm.cooperatives.c.id.label("cooperative_id"),
        )
        .join(orm.kelurahan, orm.kelurahan.c.code == p.c.kelurahan_code)
        .outerjoin(orm.cooperatives, orm.cooperatives.c.kelurahan_code == p.c.kelurahan_code)
    )


def _potential_out(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["created_at"] = as_utc(out["created_at"])
    return out


async def list_potentials(session: AsyncSession, principal: Principal, code: str) -> list[dict[str, Any]]:
    """A kelurahan's potentials: a manager sees its own kelurahan's, an officer those in scope."""
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot read potentials.")
    kel = await kelurahan_by_code(session, code)
    if kel is None:
        raise not_found("kelurahan")
    if principal.role == "coop_manager" and await _managed_kelurahan(session, principal) != code:
        raise not_found("kelurahan")
    if not principal.covers_kecamatan(kel.kecamatan_code) and principal.role != "coop_manager":
        raise not_found("kelurahan")
    rows = await session.execute(
        _potentials_query()
        .where(orm.potentials.c.kelurahan_code == code)
        .order_by(orm.potentials.c.priority, orm.potentials.c.created_at)
    )
    return [_potential_out(r) for r in rows]


async def search_potentials(
    session: AsyncSession,
    principal: Principal,
    *,
    kecamatan_code: str | None,
    sector: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """Potentials across kelurahan (one request for a map or a table instead of one per kelurahan)."""
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot read potentials.")
    query = _potentials_query()
    if principal.role == "coop_manager":
        query = query.where(
            orm.potentials.c.kelurahan_code == (await _managed_kelurahan(session, principal) or "")
        )
    scope = principal.kecamatan_filter()
    if scope is not None:
        query = query.where(orm.kelurahan.c.kecamatan_code.in_(scope))
    if kecamatan_code:
        query = query.where(orm.kelurahan.c.kecamatan_code == kecamatan_code)
    if sector:
        query = query.where(func.lower(orm.potentials.c.sector) == sector.lower())
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.execute(
        query.order_by(orm.potentials.c.kelurahan_code, orm.potentials.c.priority, orm.potentials.c.id)
        .limit(limit)
        .offset(offset)
    )
    return {"items": [_potential_out(r) for r in rows], "total": total}


# --- trainings ----------------------------------------------------------------------------------


async def _trainings(session: AsyncSession, training_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Trainings with their participants (and each participant's kecamatan), in two queries per chunk."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(training_ids):
        for row in await session.execute(select(orm.trainings).where(orm.trainings.c.id.in_(chunk))):
            training = dict(row._mapping)
            if training["completed_at"] is not None:
                training["completed_at"] = as_utc(training["completed_at"])
            training["participants"] = []
            out[row.id] = training
        tp = orm.training_participants
        parts = await session.execute(
            select(
                tp,
                orm.cooperatives.c.kecamatan_code,
                orm.cooperatives.c.kelurahan_code,
            )
            .join(orm.cooperatives, orm.cooperatives.c.id == tp.c.cooperative_id)
            .where(tp.c.training_id.in_(chunk))
            .order_by(tp.c.cooperative_id, tp.c.name)
        )
        for p in parts:
            out[p.training_id]["participants"].append(dict(p._mapping))
    return out


async def _training(session: AsyncSession, training_id: str) -> dict[str, Any] | None:
    if not is_id(training_id):
        return None
    return (await _trainings(session, [training_id])).get(training_id)


def _visible_training(principal: Principal, training: dict[str, Any]) -> dict[str, Any]:
    """Trainings are Dinkopdag's programme, open to read; participants are cooperatives' data: a manager
    sees only its own, an officer those in its scope."""
    if principal.role == "coop_manager":
        keep = [p for p in training["participants"] if p["cooperative_id"] == principal.cooperative_id]
    else:
        keep = [p for p in training["participants"] if principal.covers_kecamatan(p["kecamatan_code"])]
    return {**training, "participants": keep}


def _ensure_officer_covers_training(principal: Principal, training: dict[str, Any]) -> None:
    """A scoped officer runs the trainings of its kecamatan; city-wide ones need whole-city staff."""
    if principal.role == "officer" and not principal.covers_kecamatan(training["kecamatan_code"]):
        raise forbidden("This training is outside your kecamatan scope.")


async def create_training(
    session: AsyncSession, principal: Principal, data: schemas.TrainingCreate
) -> dict[str, Any]:
    if data.ends_on is not None and data.ends_on < data.starts_on:
        raise unprocessable("ends_on", "A training cannot end before it starts.")
    if data.kecamatan_code is not None:
        exists = (
            await session.execute(
                select(orm.kecamatan.c.code).where(orm.kecamatan.c.code == data.kecamatan_code)
            )
        ).scalar()
        if not exists:
            raise unprocessable("kecamatan_code", f"Unknown kecamatan code {data.kecamatan_code}.")
    if principal.role == "officer":
        # An officer with a scope plans trainings inside it; city-wide ones are for the whole-city staff.
        if data.kecamatan_code is None and principal.kecamatan_codes:
            raise forbidden("A city-wide training needs an officer without a kecamatan scope.")
        if data.kecamatan_code is not None and not principal.covers_kecamatan(data.kecamatan_code):
            raise forbidden("This kecamatan is outside your scope.")
    training_id = _id()
    await session.execute(
        insert(orm.trainings).values(
            id=training_id, **data.model_dump(), status="planned", created_by=principal.sub, created_at=_now()
        )
    )
    await session.commit()
    result = await _training(session, training_id)
    assert result is not None
    return result


async def add_participants(
    session: AsyncSession, principal: Principal, training_id: str, data: schemas.ParticipantsIn
) -> dict[str, Any]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot register training participants.")
    training = await _training(session, training_id)
    if training is None:
        raise not_found("training")
    if principal.role == "coop_manager":
        others = [p.cooperative_id for p in data.participants if p.cooperative_id != principal.cooperative_id]
        if others:
            raise forbidden("You may only register your own cooperative's people.")
    if training["status"] == "completed":
        raise conflict("training_completed", "Participants cannot be added to a completed training.")
    wanted = list(dict.fromkeys(p.cooperative_id for p in data.participants))
    known: dict[str, str] = {}
    valid_ids = [i for i in wanted if is_id(i)]
    for chunk in _chunks(valid_ids):
        for coop_id, kecamatan_code in await session.execute(
            select(orm.cooperatives.c.id, orm.cooperatives.c.kecamatan_code).where(
                orm.cooperatives.c.id.in_(chunk)
            )
        ):
            known[coop_id] = kecamatan_code
    unknown = [
        {
            "field": f"participants.{i}.cooperative_id",
            "message": f"Unknown cooperative {p.cooperative_id}.",
            "type": "unknown_cooperative",
        }
        for i, p in enumerate(data.participants)
        if p.cooperative_id not in known
    ]
    if unknown:
        raise ApiError(422, "validation_error", "Some participants name unknown cooperatives.", unknown)
    for coop_id in wanted:
        ensure_can_write(principal, coop_id, known[coop_id])
    try:
        await session.execute(
            insert(orm.training_participants),
            [
                {"id": _id(), "training_id": training_id, "attended": False, **p.model_dump()}
                for p in data.participants
            ],
        )
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise conflict(
            "duplicate_participant", "A participant is already registered for this training."
        ) from exc
    result = await _training(session, training_id)
    assert result is not None
    return _visible_training(principal, result)


async def complete_training(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    training_id: str,
    data: schemas.TrainingComplete,
) -> dict[str, Any]:
    """Close a training: who attended is recorded, and each cooperative with attendees gets one
    `training.completed.v1`."""
    training = await _training(session, training_id)
    if training is None:
        raise not_found("training")
    _ensure_officer_covers_training(principal, training)
    if training["status"] == "completed":
        raise conflict("training_completed", "The training is already completed.")
    completed_at = data.completed_at or _now()
    # starts_on is a local calendar day: compare with the day it is in the east (WIT), where it begins
    # first, so that a training of today in Surabaya can be closed after midnight WIB (still UTC's yesterday).
    if completed_at.astimezone(clock.WIT).date() < training["starts_on"]:
        raise unprocessable("completed_at", "A training cannot be completed before it starts.")
    participant_ids = {p["id"] for p in training["participants"]}
    attended = set(data.attended) if data.attended is not None else participant_ids
    unknown = attended - participant_ids
    if unknown:
        raise unprocessable("attended", f"Unknown participant ids: {', '.join(sorted(unknown)[:20])}.")
    for chunk in _chunks(sorted(attended)):
        await session.execute(
            update(orm.training_participants)
            .where(
                orm.training_participants.c.training_id == training_id,
                orm.training_participants.c.id.in_(chunk),
            )
            .values(attended=True)
        )
    result = await session.execute(
        update(orm.trainings)
        .where(orm.trainings.c.id == training_id, orm.trainings.c.status != "completed")
        .values(status="completed", completed_at=completed_at)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.rollback()
        raise conflict("training_completed", "The training is already completed.")
    per_coop: dict[str, dict[str, Any]] = {}
    for p in training["participants"]:
        if p["id"] in attended:
            entry = per_coop.setdefault(
                p["cooperative_id"],
                {"kelurahan_code": p["kelurahan_code"], "kecamatan_code": p["kecamatan_code"], "count": 0},
            )
            entry["count"] += 1
    await outbox.add_many(
        session,
        [
            TrainingCompleted(
                cooperative_id=coop_id,
                kelurahan_code=entry["kelurahan_code"],
                kecamatan_code=entry["kecamatan_code"],
                training_id=training_id,
                title=training["title"],
                topic=training["topic"],
                participants=entry["count"],
                completed_at=completed_at,
            )
            for coop_id, entry in per_coop.items()
        ],
    )
    await session.commit()
    done = await _training(session, training_id)
    assert done is not None
    return _visible_training(principal, done)


async def list_trainings(
    session: AsyncSession,
    principal: Principal,
    cooperative_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot read trainings.")
    if cooperative_id is not None:
        await readable_cooperative(session, principal, cooperative_id)
    query = select(orm.trainings.c.id).order_by(orm.trainings.c.starts_on.desc(), orm.trainings.c.id)
    if cooperative_id:
        query = query.where(
            orm.trainings.c.id.in_(
                select(orm.training_participants.c.training_id).where(
                    orm.training_participants.c.cooperative_id == cooperative_id
                )
            )
        )
    if status:
        query = query.where(orm.trainings.c.status == status)
    ids = list((await session.execute(query.limit(limit).offset(offset))).scalars())
    trainings = await _trainings(session, ids)
    return [_visible_training(principal, trainings[i]) for i in ids]


async def get_training(session: AsyncSession, principal: Principal, training_id: str) -> dict[str, Any]:
    if principal.role == "supplier":
        raise not_found("training")
    training = await _training(session, training_id)
    if training is None:
        raise not_found("training")
    return _visible_training(principal, training)


# --- users --------------------------------------------------------------------------------------


def _user_out(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out.pop("password_hash", None)
    out["kecamatan_codes"] = list(out.get("kecamatan_codes") or [])
    out["created_at"] = as_utc(out["created_at"])
    return out


async def create_user(
    session: AsyncSession, outbox: Outbox, data: schemas.UserCreate, *, commit: bool = True
) -> dict[str, Any]:
    cooperative: dict[str, Any] | None = None
    if data.role == "coop_manager":
        if not data.cooperative_id:
            raise unprocessable("cooperative_id", "A coop_manager must be bound to a cooperative.")
        cooperative = await load_cooperative(session, data.cooperative_id)
        if cooperative is None:
            raise unprocessable("cooperative_id", f"Unknown cooperative {data.cooperative_id}.")
    elif data.cooperative_id:
        raise unprocessable("cooperative_id", "Only a coop_manager is bound to a cooperative.")
    if data.role == "supplier" and not data.supplier_id:
        raise unprocessable("supplier_id", "A supplier user must name its supplier_id.")
    if data.role != "supplier" and data.supplier_id:
        raise unprocessable("supplier_id", "Only a supplier user has a supplier_id.")
    if data.role != "officer" and data.kecamatan_codes:
        raise unprocessable("kecamatan_codes", "Only officers have a kecamatan scope.")
    if data.role != "officer" and data.supervisor:
        raise unprocessable("supervisor", "Only officers can be supervisors.")
    if data.kecamatan_codes:
        known = set(
            (
                await session.execute(
                    select(orm.kecamatan.c.code).where(orm.kecamatan.c.code.in_(data.kecamatan_codes))
                )
            ).scalars()
        )
        for i, code in enumerate(data.kecamatan_codes):
            if code not in known:
                raise unprocessable(f"kecamatan_codes.{i}", f"Unknown kecamatan code {code}.")
    taken = (
        await session.execute(select(orm.users.c.id).where(orm.users.c.username == data.username))
    ).scalar()
    if taken:
        raise conflict("username_taken", f"The username {data.username} is taken.")
    user_id = _id()
    now = _now()
    values = {
        "id": user_id,
        "username": data.username,
        "password_hash": await hash_password(data.password),
        "role": data.role,
        "cooperative_id": data.cooperative_id,
        "supplier_id": data.supplier_id,
        "kecamatan_codes": list(dict.fromkeys(data.kecamatan_codes)),
        "full_name": data.full_name,
        "email": data.email,
        "supervisor": data.supervisor,
        "active": True,
        "created_at": now,
    }
    try:
        await session.execute(insert(orm.users).values(**values))
    except IntegrityError as exc:  # a concurrent creation of the same username won the race
        await session.rollback()
        raise conflict("username_taken", f"The username {data.username} is taken.") from exc
    await outbox.add(
        session,
        UserCreated(
            user_id=user_id,
            username=data.username,
            full_name=data.full_name,
            email=data.email,
            role=data.role,
            cooperative_id=data.cooperative_id,
            kelurahan_code=cooperative["kelurahan_code"] if cooperative else None,
            kecamatan_code=cooperative["kecamatan_code"] if cooperative else None,
            supplier_id=data.supplier_id,
            kecamatan_codes=list(dict.fromkeys(data.kecamatan_codes)),
            supervisor=data.supervisor,
        ),
        subject=data.cooperative_id,
    )
    if commit:
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise conflict("username_taken", f"The username {data.username} is taken.") from exc
    values.pop("password_hash")
    return values


async def list_users(
    session: AsyncSession,
    *,
    role: str | None,
    cooperative_id: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    query = select(orm.users).order_by(orm.users.c.username)
    if role:
        query = query.where(orm.users.c.role == role)
    if cooperative_id:
        query = query.where(orm.users.c.cooperative_id == cooperative_id)
    return [_user_out(r) for r in (await session.execute(query.limit(limit).offset(offset))).all()]


async def get_user(session: AsyncSession, user_id: str) -> dict[str, Any]:
    if not is_id(user_id):
        raise not_found("user")
    row = (await session.execute(select(orm.users).where(orm.users.c.id == user_id))).first()
    if row is None:
        raise not_found("user")
    return _user_out(row)


async def change_password(session: AsyncSession, user_id: str, data: schemas.PasswordChange) -> None:
    if not is_id(user_id):
        raise not_found("user")
    row = (await session.execute(select(orm.users).where(orm.users.c.id == user_id))).first()
    if row is None:
        raise not_found("user")
    if not await verify_password(row.password_hash, data.current_password):
        raise ApiError(
            403,
            "wrong_password",
            "The current password is wrong.",
            [{"field": "current_password", "message": "wrong password"}],
        )
    await session.execute(
        update(orm.users)
        .where(orm.users.c.id == user_id)
        .values(password_hash=await hash_password(data.new_password))
    )
    await session.commit()


async def ensure_admin(session: AsyncSession, outbox: Outbox, password: str) -> bool:
    """Create the bootstrap admin on first start; returns whether it was created."""
    exists = (await session.execute(select(orm.users.c.id).where(orm.users.c.username == "admin"))).scalar()
    if exists:
        return False
    try:
        await create_user(
            session,
            outbox,
            schemas.UserCreate(
                username="admin", password=password, role="admin", full_name="Administrator Dinkopdag"
            ),
        )
    except ApiError as exc:
        # Another replica starting at the same moment created it first.
        if exc.status == 409:
            return False
        raise
    return True


# --- login --------------------------------------------------------------------------------------


async def recent_failures(session: AsyncSession, key: str, since: datetime) -> int:
    return (
        await session.execute(
            select(func.count()).where(orm.login_failures.c.key == key, orm.login_failures.c.at >= since)
        )
    ).scalar_one()


async def record_failure(session: AsyncSession, keys: list[str], forget_before: datetime) -> None:
    """Count a failed login against each key; failures older than the window are dropped on the way,
    so the table holds only what the throttle still looks at."""
    now = _now()
    await session.execute(
        delete(orm.login_failures).where(
            orm.login_failures.c.key.in_(keys), orm.login_failures.c.at < forget_before
        )
    )
    await session.execute(insert(orm.login_failures), [{"key": k, "at": now} for k in keys])
    await session.commit()


async def clear_failures(session: AsyncSession, key: str) -> None:
    await session.execute(delete(orm.login_failures).where(orm.login_failures.c.key == key))
    await session.commit()


async def authenticate(session: AsyncSession, username: str, password: str) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(orm.users).where(orm.users.c.username == username.lower(), orm.users.c.active.is_(True))
        )
    ).first()
    ok = await verify_password(row.password_hash if row else _passwords.dummy_hash, password)
    return _user_out(row) if row is not None and ok else None


def claims_for(user: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": user["id"], "role": user["role"], "username": user["username"]}
    if user["role"] == "coop_manager":
        claims["cooperative_id"] = user["cooperative_id"]
    if user["role"] == "supplier":
        claims["supplier_id"] = user["supplier_id"]
    if user["role"] == "officer":
        claims["kecamatan_codes"] = user["kecamatan_codes"]
        claims["supervisor"] = bool(user.get("supervisor"))
    return claims
