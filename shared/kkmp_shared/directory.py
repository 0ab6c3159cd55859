"""A service's local directory of cooperatives, kept from registry events.

Inventory, sourcing, reporting and notifications must know each cooperative's kelurahan and kecamatan
(for scope checks, distances and per-kecamatan figures) without calling the registry. Each keeps its own
copy in its own database: this module gives them the table, the handlers and the reads (`get`, `many`,
`all`, `in_kecamatan`), written once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Float, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from kkmp_shared import clock
from kkmp_shared.db import note_change, upsert_insert
from kkmp_shared.events.contracts import CooperativeRegistered, CooperativeUpdated, MemberJoined
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup

# The kind of change (`kkmp_shared.db.note_change`) noted when a cooperative's directory row is written.
COOPERATIVE_CHANGED = "cooperative"
# Ids per IN (...) list: both databases cap the bound parameters of one statement.
_CHUNK = 1000


@dataclass(frozen=True)
class KnownCooperative:
    id: str
    name: str
    kelurahan_code: str
    kecamatan_code: str
    kelurahan_name: str | None
    lat: float | None
    lon: float | None
    status: str
    business_units: list[str]
    member_count: int


def add_directory_table(metadata: MetaData) -> Table:
    return Table(
        "known_cooperatives",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("kelurahan_code", String(20), nullable=False, index=True),
        Column("kecamatan_code", String(20), nullable=False, index=True),
        Column("kelurahan_name", String(100)),
        Column("lat", Float),
        Column("lon", Float),
        Column("status", String(20), nullable=False),
        Column("business_units", JSON, nullable=False),
        Column("member_count", Integer, nullable=False, default=0),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


class CooperativeDirectory:
    def __init__(self, table: Table) -> None:
        self.table = table

    async def get(self, session: AsyncSession, cooperative_id: str) -> KnownCooperative | None:
        row = (await session.execute(select(self.table).where(self.table.c.id == cooperative_id))).first()
        return _to_known(row) if row else None

    async def many(self, session: AsyncSession, ids: Iterable[str]) -> dict[str, KnownCooperative]:
        """The entries of these ids that the directory knows, by id (1,000 ids a query)."""
        found: dict[str, KnownCooperative] = {}
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), _CHUNK):
            query = select(self.table).where(self.table.c.id.in_(wanted[start : start + _CHUNK]))
            found.update((row.id, _to_known(row)) for row in (await session.execute(query)).all())
        return found

    async def all(
        self, session: AsyncSession, kecamatan_codes: list[str] | None = None
    ) -> list[KnownCooperative]:
        """Every entry, or those in the given kecamatan."""
        query = select(self.table)
        if kecamatan_codes is not None:
            query = query.where(self.table.c.kecamatan_code.in_(kecamatan_codes))
        return [_to_known(r) for r in (await session.execute(query)).all()]

    async def in_kecamatan(
        self, session: AsyncSession, kecamatan_codes: Iterable[str]
    ) -> list[KnownCooperative]:
        return await self.all(session, sorted(set(kecamatan_codes)))

    async def upsert(self, session: AsyncSession, values: dict[str, Any]) -> None:
        statement = upsert_insert(session)(self.table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[self.table.c.id],
            set_={k: statement.excluded[k] for k in values if k != "id"},
        )
        await session.execute(statement)
        note_change(session, COOPERATIVE_CHANGED, (values["id"],))

    def subscribe(self, group: ConsumerGroup, purpose: str = "directory") -> None:
        """Add the directory's handlers to the service's subscriptions."""

        async def registered(session: AsyncSession, _event: CloudEvent, data: CooperativeRegistered) -> None:
            await self.upsert(session, _values(data, member_count=0))

        async def updated(session: AsyncSession, _event: CloudEvent, data: CooperativeUpdated) -> None:
            await self.upsert(session, _values(data, member_count=data.member_count))

        async def member_joined(session: AsyncSession, _event: CloudEvent, data: MemberJoined) -> None:
            await session.execute(
                self.table.update()
                .where(self.table.c.id == data.cooperative_id)
                .values(member_count=data.member_count)
            )
            note_change(session, COOPERATIVE_CHANGED, (data.cooperative_id,))

        group.add(purpose, CooperativeRegistered, registered)
        group.add(purpose, CooperativeUpdated, updated)
        group.add(purpose, MemberJoined, member_joined)


def _values(data: CooperativeRegistered | CooperativeUpdated, member_count: int) -> dict[str, Any]:
    return {
        "id": data.cooperative_id,
        "name": data.name,
        "kelurahan_code": data.kelurahan_code,
        "kecamatan_code": data.kecamatan_code,
        "kelurahan_name": data.kelurahan_name,
        "lat": data.lat,
        "lon": data.lon,
        "status": data.status,
        "business_units": list(data.business_units),
        "member_count": member_count,
        "updated_at": clock.now(),
    }


def _to_known(row: Any) -> KnownCooperative:
    return KnownCooperative(
        id=row.id,
        name=row.name,
        kelurahan_code=row.kelurahan_code,
        kecamatan_code=row.kecamatan_code,
        kelurahan_name=row.kelurahan_name,
        lat=row.lat,
        lon=row.lon,
        status=row.status,
        business_units=list(row.business_units or []),
        member_count=row.member_count or 0,
    )


def create_directory_table() -> None:
    """The directory table as the services' initial revisions create it (an Alembic operation; later
    changes to it are revisions of the shared branch, `kkmp_shared/migrations`)."""
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "known_cooperatives",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kelurahan_code", sa.String(length=20), nullable=False),
        sa.Column("kecamatan_code", sa.String(length=20), nullable=False),
        sa.Column("kelurahan_name", sa.String(length=100), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("business_units", sa.JSON(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_cooperatives")),
    )
    with op.batch_alter_table("known_cooperatives", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_known_cooperatives_kecamatan_code"), ["kecamatan_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_known_cooperatives_kelurahan_code"), ["kelurahan_code"], unique=False
        )


def drop_directory_table() -> None:
    from alembic import op

    with op.batch_alter_table("known_cooperatives", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_cooperatives_kelurahan_code"))
        batch_op.drop_index(batch_op.f("ix_known_cooperatives_kecamatan_code"))
    op.drop_table("known_cooperatives")
