"""The unit of work commits what its block did, with the events it staged and the reactions of the
service's bus, or nothing at all; a joined unit commits nothing itself. On both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from kkmp_shared import clock
from kkmp_shared.bootstrap import Platform, build_platform
from kkmp_shared.bus import MessageBus
from kkmp_shared.db import new_metadata
from kkmp_shared.events.contracts import MemberJoined
from kkmp_shared.messaging.tables import add_messaging_tables
from kkmp_shared.settings import ServiceSettings
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy import Column, Integer, String, Table, func, insert, select

metadata = new_metadata()
tables = add_messaging_tables(metadata)
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String(40)))


@dataclass(frozen=True)
class NoteWritten:
    text: str


async def echo_note(event: NoteWritten, uow: UnitOfWork) -> None:
    if event.text.startswith("echo"):
        return
    await uow.session.execute(insert(notes).values(text=f"echo {event.text}"))
    uow.emit(NoteWritten(f"echo {event.text}"))


@pytest.fixture
async def platform(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Platform]:
    monkeypatch.setenv("UOW_DATABASE_URL", database_url)
    bus = MessageBus()
    bus.subscribe(NoteWritten, echo_note)
    settings = ServiceSettings(service_name="uow", demo=True)
    built = build_platform(settings, tables, bus)
    async with built.db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield built
    await built.db.dispose()


def joined_event() -> MemberJoined:
    return MemberJoined(
        cooperative_id="c1",
        kelurahan_code="35.78.01.1001",
        kecamatan_code="35.78.01",
        member_id="m1",
        kind="resident",
        sector="bakery",
        member_count=1,
        joined_at=clock.now(),
    )


async def counts(platform: Platform) -> tuple[list[str], int]:
    async with platform.db.session() as session:
        texts = list((await session.execute(select(notes.c.text).order_by(notes.c.id))).scalars())
        staged = (await session.execute(select(func.count()).select_from(tables.outbox))).scalar_one()
    return texts, int(staged)


async def write_note(uow: UnitOfWork, text: str) -> None:
    await uow.session.execute(insert(notes).values(text=text))
    await uow.publish(joined_event())
    uow.emit(NoteWritten(text))


async def test_the_block_its_event_and_the_bus_reaction_commit_together(platform: Platform) -> None:
    async with platform.unit_of_work() as uow:
        await write_note(uow, "first")
    assert await counts(platform) == (["first", "echo first"], 1)


async def test_a_block_that_raises_leaves_nothing_behind(platform: Platform) -> None:
    with pytest.raises(ValueError):
        async with platform.unit_of_work() as uow:
            await write_note(uow, "lost")
            raise ValueError("refused")
    assert await counts(platform) == ([], 0)


async def test_a_failing_reaction_undoes_its_cause(platform: Platform) -> None:
    async def refuse(event: NoteWritten, uow: UnitOfWork) -> None:
        raise RuntimeError(f"cannot react to {event.text}")

    platform.bus.subscribe(NoteWritten, refuse)
    with pytest.raises(RuntimeError):
        async with platform.unit_of_work() as uow:
            await write_note(uow, "cause")
    assert await counts(platform) == ([], 0)


async def test_a_joined_unit_leaves_the_commit_to_the_owner_of_the_session(platform: Platform) -> None:
    async with platform.db.session() as session:
        async with platform.joined(session) as uow:
            await write_note(uow, "joined")
        assert session.in_transaction()
        await session.rollback()
    assert await counts(platform) == ([], 0)


async def test_an_event_nobody_handles_is_refused(platform: Platform) -> None:
    @dataclass(frozen=True)
    class Unheard:
        pass

    with pytest.raises(LookupError, match="Unheard"):
        async with platform.unit_of_work() as uow:
            uow.emit(Unheard())
    assert await counts(platform) == ([], 0)
