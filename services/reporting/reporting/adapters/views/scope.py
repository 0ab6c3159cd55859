"""A reader's `Scope` as SQL conditions."""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from reporting.domain.scope import Scope


def in_scope(
    scope: Scope, kecamatan_column: Any, cooperative_column: Any | None = None
) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if scope.kecamatan is not None:
        out.append(kecamatan_column.in_(scope.kecamatan))
    if scope.cooperative_id is not None and cooperative_column is not None:
        out.append(cooperative_column == scope.cooperative_id)
    return out
