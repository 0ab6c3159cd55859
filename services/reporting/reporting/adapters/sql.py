"""Small SQL helpers shared by the projections and queries: dialect-aware upserts, dirty marks."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from kkmp_shared.db import upsert_insert
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import orm


def dialect_of(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


async def add_to(
    session: AsyncSession, table: Table, keys: dict[str, Any], increments: dict[str, Any], **fixed: Any
) -> None:
    """Insert a counter row or add to it: `INSERT ... ON CONFLICT DO UPDATE SET c = c + excluded.c`
    (the `fixed` columns are written when the row is created)."""
    await add_to_many(session, table, list(keys), [{**keys, **increments, **fixed}], list(increments))


async def add_to_many(
    session: AsyncSession, table: Table, keys: list[str], rows: list[dict[str, Any]], increments: list[str]
) -> None:
    """`add_to` for many counter rows in one statement. Each row's key must appear once (sum the
    increments of a key before calling): PostgreSQL refuses to update one row twice in a statement."""
    if not rows:
        return
    statement = _add_to_statement(upsert_insert(session), table, tuple(keys), tuple(increments))
    # Rows as executemany parameters, not `.values(rows)`: the statement is compiled once and cached
    # (a multi-row VALUES is a new statement for every row count), and the driver batches the rows.
    await session.execute(statement, rows)


def replace_statement(
    session: AsyncSession, table: Table, keys: Iterable[str], columns: Iterable[str]
) -> Any:
    """`INSERT ... ON CONFLICT (keys) DO UPDATE SET c = excluded.c` for these columns, for executemany
    rows; built once per table and shape (see `_add_to_statement`)."""
    return _replace_statement(upsert_insert(session), table, tuple(keys), tuple(columns))


@functools.cache
def _replace_statement(
    insert: Callable[[Table], Any], table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Any:
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys], set_={c: statement.excluded[c] for c in columns}
    )


@functools.cache
def _add_to_statement(
    insert: Callable[[Table], Any], table: Table, keys: tuple[str, ...], increments: tuple[str, ...]
) -> Any:
    """Built once per table and shape: `excluded` (an alias with a proxy for every column) is too
    costly to build for every batch."""
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c: table.c[c] + statement.excluded[c] for c in increments},
    )


async def mark_dirty(session: AsyncSession, cooperative_id: str | None, kecamatan_code: str | None) -> None:
    """Queue the cooperative's health and its kecamatan's figures for the refresher.

    Remembered per transaction so a batch of a hundred events about one cooperative writes the
    marks once.
    """
    seen: set[tuple[str, str]] = session.info.setdefault("reporting_dirty", set())
    rows = []
    for kind, key in (("cooperative", cooperative_id), ("kecamatan", kecamatan_code)):
        if key and (kind, key) not in seen:
            seen.add((kind, key))
            rows.append({"kind": kind, "key": key})
    if rows:
        await session.execute(orm.refresh_queue.insert(), rows)


def forget_dirty_marks(session: AsyncSession) -> None:
    session.info.pop("reporting_dirty", None)


def chunked(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
