"""What the registry's routes share: the documented errors and the checked path and query parameters,
so that nothing a client sends reaches SQL unchecked."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from kkmp_shared.errors import ApiError, unprocessable

from registry.entrypoints import schemas
from registry.entrypoints.schemas import storable_text

# Every route documents the error format with the statuses it may answer (the contract's list).
ERRORS = schemas.error_responses(*schemas.COMMON_ERRORS)

KECAMATAN_PATTERN = r"^\d{2}\.\d{2}\.\d{2}$"
KecamatanQuery = Annotated[str | None, Query(pattern=KECAMATAN_PATTERN, description="e.g. 35.78.01")]
# Ids are UUIDs; a longer value is bad input, a malformed one of the right size names nothing (404).
IdPath = Annotated[str, Path(max_length=64)]
KelurahanPath = Annotated[str, Path(max_length=20, description="Kemendagri code, e.g. 35.78.01.1001")]


def text_query(value: str | None, name: str) -> str | None:
    if value is not None and not storable_text(value):
        raise unprocessable(name, "The text contains control or invalid characters.")
    return value


def kelurahan_code(code: str) -> str:
    """A path that is not a kelurahan code names no kelurahan: 404, as for an unknown one."""
    if not schemas.KELURAHAN_CODE_RE.match(code):
        raise ApiError(404, "not_found", "The kelurahan does not exist.")
    return code
