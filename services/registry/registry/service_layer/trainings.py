"""Trainings: Dinkopdag plans them, cooperatives send participants, and completing one announces
`training.completed.v1` to each cooperative that had people there."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import Principal, ensure_can_write
from kkmp_shared.errors import ApiError, conflict, forbidden, not_found, unprocessable
from kkmp_shared.events.contracts import TrainingCompleted
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import cooperatives, regions, trainings
from registry.adapters.rows import Duplicate
from registry.domain.ids import is_id, new_id
from registry.service_layer.commands import CompleteTraining, PlanTraining, RegisterParticipants
from registry.service_layer.cooperatives import readable_cooperative


async def _training(session: AsyncSession, training_id: str) -> dict[str, Any] | None:
    if not is_id(training_id):
        return None
    return await trainings.get(session, training_id)


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


async def create_training(uow: UnitOfWork, principal: Principal, command: PlanTraining) -> dict[str, Any]:
    if command.ends_on is not None and command.ends_on < command.starts_on:
        raise unprocessable("ends_on", "A training cannot end before it starts.")
    if command.kecamatan_code is not None and not await regions.known_kecamatan(
        uow.session, [command.kecamatan_code]
    ):
        raise unprocessable("kecamatan_code", f"Unknown kecamatan code {command.kecamatan_code}.")
    if principal.role == "officer":
        # An officer with a scope plans trainings inside it; city-wide ones are for the whole-city staff.
        if command.kecamatan_code is None and principal.kecamatan_codes:
            raise forbidden("A city-wide training needs an officer without a kecamatan scope.")
        if command.kecamatan_code is not None and not principal.covers_kecamatan(command.kecamatan_code):
            raise forbidden("This kecamatan is outside your scope.")
    training_id = new_id()
    await trainings.add(
        uow.session,
        {
            "id": training_id,
            **asdict(command),
            "status": "planned",
            "created_by": principal.sub,
            "created_at": clock.now(),
        },
    )
    result = await _training(uow.session, training_id)
    assert result is not None
    return result


async def add_participants(
    uow: UnitOfWork, principal: Principal, command: RegisterParticipants
) -> dict[str, Any]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot register training participants.")
    training_id = command.training_id
    participants = command.participants
    training = await _training(uow.session, training_id)
    if training is None:
        raise not_found("training")
    if principal.role == "coop_manager":
        others = [p.cooperative_id for p in participants if p.cooperative_id != principal.cooperative_id]
        if others:
            raise forbidden("You may only register your own cooperative's people.")
    if training["status"] == "completed":
        raise conflict("training_completed", "Participants cannot be added to a completed training.")
    wanted = list(dict.fromkeys(p.cooperative_id for p in participants))
    known = await cooperatives.kecamatan_of(uow.session, [i for i in wanted if is_id(i)])
    unknown = [
        {
            "field": f"participants.{i}.cooperative_id",
            "message": f"Unknown cooperative {p.cooperative_id}.",
            "type": "unknown_cooperative",
        }
        for i, p in enumerate(participants)
        if p.cooperative_id not in known
    ]
    if unknown:
        raise ApiError(422, "validation_error", "Some participants name unknown cooperatives.", unknown)
    for coop_id in wanted:
        ensure_can_write(principal, coop_id, known[coop_id])
    try:
        await trainings.add_participants(
            uow.session,
            [
                {"id": new_id(), "training_id": training_id, "attended": False, **asdict(p)}
                for p in participants
            ],
        )
    except Duplicate as exc:
        raise conflict(
            "duplicate_participant", "A participant is already registered for this training."
        ) from exc
    result = await _training(uow.session, training_id)
    assert result is not None
    return _visible_training(principal, result)


async def complete_training(
    uow: UnitOfWork, principal: Principal, command: CompleteTraining
) -> dict[str, Any]:
    """Close a training: who attended is recorded, and each cooperative with attendees gets one
    `training.completed.v1`."""
    training_id = command.training_id
    training = await _training(uow.session, training_id)
    if training is None:
        raise not_found("training")
    _ensure_officer_covers_training(principal, training)
    if training["status"] == "completed":
        raise conflict("training_completed", "The training is already completed.")
    completed_at = command.completed_at or clock.now()
    # starts_on is a local calendar day: compare with the day it is in the east (WIT), where it begins
    # first, so that a training of today in Surabaya can be closed after midnight WIB (still UTC's yesterday).
    if completed_at.astimezone(clock.WIT).date() < training["starts_on"]:
        raise unprocessable("completed_at", "A training cannot be completed before it starts.")
    participant_ids = {p["id"] for p in training["participants"]}
    attended = set(command.attended) if command.attended is not None else participant_ids
    unknown = attended - participant_ids
    if unknown:
        raise unprocessable("attended", f"Unknown participant ids: {', '.join(sorted(unknown)[:20])}.")
    if not await trainings.complete(uow.session, training_id, sorted(attended), completed_at):
        raise conflict("training_completed", "The training is already completed.")
    per_coop: dict[str, dict[str, Any]] = {}
    for p in training["participants"]:
        if p["id"] in attended:
            entry = per_coop.setdefault(
                p["cooperative_id"],
                {"kelurahan_code": p["kelurahan_code"], "kecamatan_code": p["kecamatan_code"], "count": 0},
            )
            entry["count"] += 1
    await uow.publish_many(
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
    done = await _training(uow.session, training_id)
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
    ids = await trainings.page_ids(
        session, cooperative_id=cooperative_id, status=status, limit=limit, offset=offset
    )
    found = await trainings.get_many(session, ids)
    return [_visible_training(principal, found[i]) for i in ids]


async def get_training(session: AsyncSession, principal: Principal, training_id: str) -> dict[str, Any]:
    if principal.role == "supplier":
        raise not_found("training")
    training = await _training(session, training_id)
    if training is None:
        raise not_found("training")
    return _visible_training(principal, training)
