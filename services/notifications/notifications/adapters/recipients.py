"""The people the service knows (`recipients`, `recipient_scopes`) and the one query that finds who
may be in a batch's audiences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kkmp_shared.db import on_sqlite, one_of, upsert_insert
from sqlalchemy import Boolean, and_, bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import orm

r, scopes = orm.recipients, orm.recipient_scopes


async def save(session: AsyncSession, values: dict[str, Any], kecamatan_codes: Sequence[str]) -> None:
    """Insert or update the person and replace their kecamatan scope (`values` is the full state)."""
    statement = upsert_insert(session)(r).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[r.c.user_id],
        set_={k: statement.excluded[k] for k in values if k not in ("user_id", "created_at")},
    )
    await session.execute(statement)
    await session.execute(delete(scopes).where(scopes.c.user_id == values["user_id"]))
    if kecamatan_codes:
        await session.execute(
            scopes.insert(), [{"user_id": values["user_id"], "kecamatan_code": c} for c in kecamatan_codes]
        )


async def known(session: AsyncSession, user_id: str) -> bool:
    return (await session.execute(select(r.c.user_id).where(r.c.user_id == user_id))).first() is not None


async def add_if_unknown(
    session: AsyncSession, values: dict[str, Any], kecamatan_codes: Sequence[str]
) -> None:
    """Insert the person and their scope unless someone inserted them meanwhile (then keep theirs)."""
    await session.execute(upsert_insert(session)(r).values(**values).on_conflict_do_nothing())
    if kecamatan_codes:
        await session.execute(
            upsert_insert(session)(scopes)
            .values([{"user_id": values["user_id"], "kecamatan_code": c} for c in kecamatan_codes])
            .on_conflict_do_nothing()
        )


def _candidates_query(sqlite: bool) -> Any:
    """Everyone who may be in a batch's audiences, one row per (person, kecamatan of their scope
    among the batch's, muted type among the batch's): one statement whatever the batch."""
    p, m = orm.preferences, orm.muted_types
    # An officer is in scope of the batch where their scope (joined on the batch's kecamatans) is.
    in_scope = or_(r.c.whole_city, scopes.c.kecamatan_code.is_not(None))
    return (
        select(
            r.c.user_id,
            r.c.role,
            r.c.email,
            r.c.cooperative_id,
            r.c.supplier_id,
            r.c.whole_city,
            r.c.supervisor,
            p.c.digest,
            p.c.email_enabled,
            scopes.c.kecamatan_code,
            m.c.event_type.label("muted_type"),
        )
        .select_from(
            r.outerjoin(p, p.c.user_id == r.c.user_id)
            .outerjoin(
                scopes,
                and_(
                    scopes.c.user_id == r.c.user_id,
                    one_of(scopes.c.kecamatan_code, name="kecamatans", sqlite=sqlite),
                ),
            )
            .outerjoin(
                m, and_(m.c.user_id == r.c.user_id, one_of(m.c.event_type, name="event_types", sqlite=sqlite))
            )
        )
        .where(
            or_(
                and_(
                    r.c.role == "coop_manager", one_of(r.c.cooperative_id, name="cooperatives", sqlite=sqlite)
                ),
                and_(r.c.role == "supplier", one_of(r.c.supplier_id, name="suppliers", sqlite=sqlite)),
                and_(r.c.role == "officer", bindparam("officers", type_=Boolean), in_scope),
                and_(r.c.role == "admin", bindparam("admins", type_=Boolean)),
            )
        )
    )


_CANDIDATES = {sqlite: _candidates_query(sqlite) for sqlite in (True, False)}


async def candidates(
    session: AsyncSession,
    *,
    cooperatives: list[str],
    suppliers: list[str],
    kecamatans: list[str],
    event_types: list[str],
    officers: bool,
    admins: bool,
) -> Any:
    """The rows of `_candidates_query` for these values (each person once per kecamatan of their
    scope and muted type among them)."""
    return await session.execute(
        _CANDIDATES[on_sqlite(session)],
        {
            "cooperatives": cooperatives,
            "suppliers": suppliers,
            "kecamatans": kecamatans,
            "event_types": event_types,
            "officers": officers,
            "admins": admins,
        },
    )
