"""Registry use cases. Each takes a session (one per request), does its change and stages its events
in the outbox within the same transaction, then commits."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
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
from registry.domain.rules import IllegalStatusChange, board_problems, check_status_change
from registry.entrypoints import schemas

hasher = PasswordHasher()
# Verifying against a fixed hash when the user does not exist keeps the timing of both paths alike.
_DUMMY_HASH = hasher.hash("not-a-real-password")


def _now() -> datetime:
    return datetime.now(UTC)


def _id() -> str:
    return str(uuid.uuid4())


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
    if not ids:
        return boards
    rows = await session.execute(
        select(orm.board_members)
        .where(orm.board_members.c.cooperative_id.in_(ids))
        .order_by(orm.board_members.c.position)
    )
    for r in rows:
        boards[r.cooperative_id].append(
            {"id": r.id, "name": r.name, "position": r.position, "phone": r.phone, "since": r.since}
        )
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
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def load_cooperative(session: AsyncSession, cooperative_id: str) -> dict[str, Any] | None:
    row = (await session.execute(_cooperative_query().where(orm.cooperatives.c.id == cooperative_id))).first()
    if row is None:
        return None
    return _cooperative_out(row, (await _boards(session, [row.id]))[row.id])


async def readable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> dict[str, Any]:
    coop = await load_cooperative(session, cooperative_id)
    if coop is None or principal.role == "supplier":
        raise not_found("cooperative")
    ensure_can_read(principal, coop["id"], coop["kecamatan_code"])
    return coop


async def writable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> dict[str, Any]:
    coop = await load_cooperative(session, cooperative_id)
    if coop is None:
        if principal.role == "coop_manager" and principal.cooperative_id != cooperative_id:
            raise forbidden("You may only change your own cooperative's data.")
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


async def register_cooperative(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    data: schemas.CooperativeCreate,
    *,
    commit: bool = True,
) -> dict[str, Any]:
    kel = await kelurahan_by_code(session, data.kelurahan_code)
    if kel is None:
        raise unprocessable(
            "kelurahan_code", f"Unknown kelurahan code {data.kelurahan_code}.", "unknown_kelurahan"
        )
    existing = (
        await session.execute(
            select(orm.cooperatives.c.id).where(orm.cooperatives.c.kelurahan_code == data.kelurahan_code)
        )
    ).scalar()
    if existing:
        raise conflict(
            "kelurahan_taken", f"Kelurahan {kel.name} already has a KKMP.", {"cooperative_id": existing}
        )
    now = _now()
    coop_id = _id()
    await session.execute(
        insert(orm.cooperatives).values(
            id=coop_id,
            name=data.name,
            kelurahan_code=data.kelurahan_code,
            kecamatan_code=kel.kecamatan_code,
            formation=data.formation,
            deed_number=data.deed.number if data.deed else None,
            deed_date=data.deed.date if data.deed else None,
            deed_notary=data.deed.notary if data.deed else None,
            status="formed",
            business_units=list(dict.fromkeys(data.business_units)),
            member_count=0,
            address=data.address,
            phone=data.phone,
            created_at=now,
            updated_at=now,
        )
    )
    await session.execute(
        insert(orm.status_history).values(
            cooperative_id=coop_id,
            old_status=None,
            new_status="formed",
            reason="registered",
            changed_by=principal.sub,
            changed_at=now,
        )
    )
    await outbox.add(
        session,
        CooperativeRegistered(
            cooperative_id=coop_id,
            kelurahan_code=data.kelurahan_code,
            kecamatan_code=kel.kecamatan_code,
            name=data.name,
            kelurahan_name=kel.name,
            formation=data.formation,
            status="formed",
            business_units=list(dict.fromkeys(data.business_units)),
            lat=kel.lat,
            lon=kel.lon,
            registered_at=now,
        ),
    )
    if not commit:
        return {"id": coop_id}
    try:
        await session.commit()
    except IntegrityError as exc:  # a concurrent registration for the same kelurahan won the race
        await session.rollback()
        raise conflict("kelurahan_taken", f"Kelurahan {kel.name} already has a KKMP.") from exc
    coop = await load_cooperative(session, coop_id)
    assert coop is not None
    return coop


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
        pattern = f"%{q.lower()}%"
        conditions.append(
            or_(func.lower(t.c.name).like(pattern), func.lower(orm.kelurahan.c.name).like(pattern))
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


async def update_cooperative(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    cooperative_id: str,
    data: schemas.CooperativeUpdate,
) -> dict[str, Any]:
    coop = await writable_cooperative(session, principal, cooperative_id)
    changes = data.model_dump(exclude_unset=True)
    allowed = {
        "admin": set(schemas.CooperativeUpdate.model_fields),
        "service": set(schemas.CooperativeUpdate.model_fields),
        "officer": {"status", "status_reason", "business_units", "address", "phone"},
        "coop_manager": {"business_units", "address", "phone"},
    }.get(principal.role, set())
    refused = sorted(set(changes) - allowed)
    if refused:
        raise forbidden(f"Your role may not change: {', '.join(refused)}.")
    values: dict[str, Any] = {}
    now = _now()
    for field in ("name", "formation", "address", "phone"):
        if field in changes and changes[field] is not None:
            values[field] = changes[field]
    if data.business_units is not None:
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
    await outbox.add(session, _updated_event(updated, sorted(k for k in values if k != "updated_at")))
    await session.commit()
    return updated


async def status_history(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> list[dict[str, Any]]:
    await readable_cooperative(session, principal, cooperative_id)
    rows = await session.execute(
        select(orm.status_history)
        .where(orm.status_history.c.cooperative_id == cooperative_id)
        .order_by(orm.status_history.c.id)
    )
    return [dict(r._mapping) for r in rows]


async def set_board(
    session: AsyncSession, principal: Principal, cooperative_id: str, data: schemas.BoardIn
) -> dict[str, Any]:
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
    await session.commit()
    coop = await load_cooperative(session, cooperative_id)
    assert coop is not None
    return coop


async def add_member(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    cooperative_id: str,
    data: schemas.MemberCreate,
) -> dict[str, Any]:
    coop = await writable_cooperative(session, principal, cooperative_id)
    if data.kind == "umkm" and data.business is None:
        raise unprocessable("business", "An UMKM member needs its business (sector and products).")
    now = _now()
    member_id = _id()
    await session.execute(
        insert(orm.members).values(
            id=member_id,
            cooperative_id=cooperative_id,
            name=data.name,
            kind=data.kind,
            sector=data.business.sector if data.business else None,
            products=data.business.products if data.business else [],
            joined_at=now,
        )
    )
    await session.execute(
        update(orm.cooperatives)
        .where(orm.cooperatives.c.id == cooperative_id)
        .values(member_count=orm.cooperatives.c.member_count + 1, updated_at=now)
    )
    count = (
        await session.execute(
            select(orm.cooperatives.c.member_count).where(orm.cooperatives.c.id == cooperative_id)
        )
    ).scalar_one()
    await outbox.add(
        session,
        MemberJoined(
            cooperative_id=cooperative_id,
            kelurahan_code=coop["kelurahan_code"],
            kecamatan_code=coop["kecamatan_code"],
            member_id=member_id,
            kind=data.kind,
            sector=data.business.sector if data.business else None,
            products=data.business.products if data.business else [],
            member_count=count,
            joined_at=now,
        ),
    )
    await session.commit()
    return {
        "id": member_id,
        "cooperative_id": cooperative_id,
        "name": data.name,
        "kind": data.kind,
        "business": data.business.model_dump() if data.business else None,
        "joined_at": now,
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
    rows = (await session.execute(query.order_by(orm.members.c.joined_at).limit(limit).offset(offset))).all()
    items = [
        {
            "id": r.id,
            "cooperative_id": r.cooperative_id,
            "name": r.name,
            "kind": r.kind,
            "business": {"sector": r.sector, "products": r.products or []} if r.sector else None,
            "joined_at": r.joined_at,
        }
        for r in rows
    ]
    return {"items": items, "total": total}


# --- potentials ---------------------------------------------------------------------------------


async def add_potential(
    session: AsyncSession, outbox: Outbox, principal: Principal, code: str, data: schemas.PotentialCreate
) -> dict[str, Any]:
    kel = await kelurahan_by_code(session, code)
    if kel is None:
        raise not_found("kelurahan")
    coop_id = (
        await session.execute(select(orm.cooperatives.c.id).where(orm.cooperatives.c.kelurahan_code == code))
    ).scalar()
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
        "sector": data.sector,
        "description": data.description,
        "priority": data.priority,
        "created_at": now,
    }


async def list_potentials(session: AsyncSession, principal: Principal, code: str) -> list[dict[str, Any]]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot read potentials.")
    if await kelurahan_by_code(session, code) is None:
        raise not_found("kelurahan")
    rows = await session.execute(
        select(orm.potentials)
        .where(orm.potentials.c.kelurahan_code == code)
        .order_by(orm.potentials.c.priority)
    )
    return [dict(r._mapping) for r in rows]


# --- trainings ----------------------------------------------------------------------------------


async def _training(session: AsyncSession, training_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(orm.trainings).where(orm.trainings.c.id == training_id))).first()
    if row is None:
        return None
    parts = await session.execute(
        select(orm.training_participants).where(orm.training_participants.c.training_id == training_id)
    )
    out = dict(row._mapping)
    out["participants"] = [dict(p._mapping) for p in parts]
    return out


def _visible_training(principal: Principal, training: dict[str, Any]) -> dict[str, Any]:
    """A manager sees a training, but only its own cooperative's participants."""
    if principal.role == "coop_manager":
        training = {
            **training,
            "participants": [
                p for p in training["participants"] if p["cooperative_id"] == principal.cooperative_id
            ],
        }
    return training


async def create_training(
    session: AsyncSession, principal: Principal, data: schemas.TrainingCreate
) -> dict[str, Any]:
    if data.ends_on is not None and data.ends_on < data.starts_on:
        raise unprocessable("ends_on", "A training cannot end before it starts.")
    if (
        principal.role == "officer"
        and data.kecamatan_code
        and not principal.covers_kecamatan(data.kecamatan_code)
    ):
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
    training = await _training(session, training_id)
    if training is None:
        raise not_found("training")
    if training["status"] == "completed":
        raise conflict("training_completed", "Participants cannot be added to a completed training.")
    for i, p in enumerate(data.participants):
        coop = await load_cooperative(session, p.cooperative_id)
        if coop is None:
            raise unprocessable(
                f"participants.{i}.cooperative_id", f"Unknown cooperative {p.cooperative_id}."
            )
        ensure_can_write(principal, coop["id"], coop["kecamatan_code"])
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
    training = await _training(session, training_id)
    if training is None:
        raise not_found("training")
    if training["status"] == "completed":
        raise conflict("training_completed", "The training is already completed.")
    now = _now()
    participant_ids = {p["id"] for p in training["participants"]}
    attended = set(data.attended) if data.attended is not None else participant_ids
    unknown = attended - participant_ids
    if unknown:
        raise unprocessable("attended", f"Unknown participant ids: {', '.join(sorted(unknown))}.")
    await session.execute(
        update(orm.training_participants)
        .where(
            orm.training_participants.c.training_id == training_id,
            orm.training_participants.c.id.in_(attended),
        )
        .values(attended=True)
    )
    await session.execute(
        update(orm.trainings)
        .where(orm.trainings.c.id == training_id)
        .values(status="completed", completed_at=now)
    )
    per_coop: dict[str, int] = {}
    for p in training["participants"]:
        if p["id"] in attended:
            per_coop[p["cooperative_id"]] = per_coop.get(p["cooperative_id"], 0) + 1
    events = []
    for coop_id, count in per_coop.items():
        coop = await load_cooperative(session, coop_id)
        if coop is None:
            continue
        events.append(
            TrainingCompleted(
                cooperative_id=coop_id,
                kelurahan_code=coop["kelurahan_code"],
                kecamatan_code=coop["kecamatan_code"],
                training_id=training_id,
                title=training["title"],
                topic=training["topic"],
                participants=count,
                completed_at=now,
            )
        )
    await outbox.add_many(session, list(events))
    await session.commit()
    result = await _training(session, training_id)
    assert result is not None
    return result


async def list_trainings(
    session: AsyncSession, principal: Principal, cooperative_id: str | None, status: str | None
) -> list[dict[str, Any]]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot read trainings.")
    if principal.role == "coop_manager":
        if cooperative_id is not None and cooperative_id != principal.cooperative_id:
            raise not_found("cooperative")
    elif cooperative_id is not None:
        await readable_cooperative(session, principal, cooperative_id)
    query = select(orm.trainings).order_by(orm.trainings.c.starts_on.desc())
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
    out = []
    for row in (await session.execute(query.limit(500))).all():
        training = await _training(session, row.id)
        assert training is not None
        out.append(_visible_training(principal, training))
    return out


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
    return out


async def create_user(
    session: AsyncSession, outbox: Outbox, data: schemas.UserCreate, *, commit: bool = True
) -> dict[str, Any]:
    if data.role == "coop_manager":
        if not data.cooperative_id:
            raise unprocessable("cooperative_id", "A coop_manager must be bound to a cooperative.")
        if await load_cooperative(session, data.cooperative_id) is None:
            raise unprocessable("cooperative_id", f"Unknown cooperative {data.cooperative_id}.")
    elif data.cooperative_id:
        raise unprocessable("cooperative_id", "Only a coop_manager is bound to a cooperative.")
    if data.role == "supplier" and not data.supplier_id:
        raise unprocessable("supplier_id", "A supplier user must name its supplier_id.")
    if data.role != "supplier" and data.supplier_id:
        raise unprocessable("supplier_id", "Only a supplier user has a supplier_id.")
    if data.role != "officer" and data.kecamatan_codes:
        raise unprocessable("kecamatan_codes", "Only officers have a kecamatan scope.")
    for i, code in enumerate(data.kecamatan_codes):
        exists = (
            await session.execute(select(orm.kecamatan.c.code).where(orm.kecamatan.c.code == code))
        ).scalar()
        if not exists:
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
        "password_hash": hasher.hash(data.password),
        "role": data.role,
        "cooperative_id": data.cooperative_id,
        "supplier_id": data.supplier_id,
        "kecamatan_codes": list(data.kecamatan_codes),
        "full_name": data.full_name,
        "email": data.email,
        "supervisor": data.supervisor,
        "active": True,
        "created_at": now,
    }
    await session.execute(insert(orm.users).values(**values))
    await outbox.add(
        session,
        UserCreated(
            user_id=user_id,
            username=data.username,
            full_name=data.full_name,
            email=data.email,
            role=data.role,
            cooperative_id=data.cooperative_id,
            supplier_id=data.supplier_id,
            kecamatan_codes=list(data.kecamatan_codes),
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
    session: AsyncSession, role: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    query = select(orm.users).order_by(orm.users.c.username)
    if role:
        query = query.where(orm.users.c.role == role)
    return [_user_out(r) for r in (await session.execute(query.limit(limit).offset(offset))).all()]


async def get_user(session: AsyncSession, user_id: str) -> dict[str, Any]:
    row = (await session.execute(select(orm.users).where(orm.users.c.id == user_id))).first()
    if row is None:
        raise not_found("user")
    return _user_out(row)


async def ensure_admin(session: AsyncSession, outbox: Outbox, password: str) -> bool:
    """Create the bootstrap admin on first start; returns whether it was created."""
    exists = (await session.execute(select(orm.users.c.id).where(orm.users.c.username == "admin"))).scalar()
    if exists:
        return False
    await create_user(
        session,
        outbox,
        schemas.UserCreate(
            username="admin", password=password, role="admin", full_name="Administrator Dinkopdag"
        ),
    )
    return True


# --- login --------------------------------------------------------------------------------------


async def recent_failures(session: AsyncSession, key: str, since: datetime) -> int:
    return (
        await session.execute(
            select(func.count()).where(orm.login_failures.c.key == key, orm.login_failures.c.at >= since)
        )
    ).scalar_one()


async def record_failure(session: AsyncSession, keys: list[str]) -> None:
    now = _now()
    await session.execute(insert(orm.login_failures), [{"key": k, "at": now} for k in keys])
    await session.commit()


async def clear_failures(session: AsyncSession, key: str) -> None:
    await session.execute(delete(orm.login_failures).where(orm.login_failures.c.key == key))
    await session.commit()


async def authenticate(session: AsyncSession, username: str, password: str) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(orm.users).where(orm.users.c.username == username, orm.users.c.active.is_(True))
        )
    ).first()
    try:
        hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    return _user_out(row) if row else None


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


def parse_date(value: str) -> date:
    return date.fromisoformat(value)
