"""What the registry's routes share: the documented errors and the checked path and query parameters,
so that nothing a client sends reaches SQL unchecked."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from kkmp_shared.errors import ApiError, unprocessable
from kkmp_shared.http import ERRORS as ERRORS
from kkmp_shared.http import IdPath as IdPath

from registry.entrypoints import schemas
from registry.entrypoints.schemas import storable_text

KECAMATAN_PATTERN = r"^\d{2}\.\d{2}\.\d{2}$"
KecamatanQuery = Annotated[str | None, Query(pattern=KECAMATAN_PATTERN, description="e.g. 35.78.01")]
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
