"""Queries of the trainings and their participants (each with its cooperative's kelurahan and
kecamatan, which decide who sees it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import orm
from registry.adapters.rows import Duplicate, as_utc, chunks


async def get_many(session: AsyncSession, training_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Trainings with their participants, in two queries per chunk."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in chunks(training_ids):
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


async def get(session: AsyncSession, training_id: str) -> dict[str, Any] | None:
    return (await get_many(session, [training_id])).get(training_id)


async def page_ids(
    session: AsyncSession, *, cooperative_id: str | None, status: str | None, limit: int, offset: int
) -> list[str]:
    """Newest first; `cooperative_id`: only those it has participants in."""
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
    return list((await session.execute(query.limit(limit).offset(offset))).scalars())


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(orm.trainings).values(**values))


async def add_participants(session: AsyncSession, participants: list[dict[str, Any]]) -> None:
    """A participant registered twice is refused by a unique index (`Duplicate`)."""
    try:
        await session.execute(insert(orm.training_participants), participants)
    except IntegrityError as exc:
        raise Duplicate(str(exc.orig)) from exc


async def complete(
    session: AsyncSession, training_id: str, attended: Sequence[str], completed_at: datetime
) -> bool:
    """Mark who attended and close the training; False if it was closed meanwhile."""
    for chunk in chunks(sorted(attended)):
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
    return bool(result.rowcount)  # type: ignore[attr-defined]
