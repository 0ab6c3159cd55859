"""Route annotations every service's API shares: the documented error responses, id path parameters,
short filter queries and Kemendagri kecamatan codes, written once so that the same parameter has the same
rules (and the same OpenAPI schema) in every service.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import StringConstraints

from kkmp_shared.validation import COMMON_ERRORS, NO_CONTROL, error_responses

# The error responses (in the shared error format) every router documents.
ERRORS: dict[int | str, dict[str, Any]] = error_responses(*COMMON_ERRORS)

# An id in the path (UUIDs, usernames): no control characters, which PostgreSQL would refuse as a 500.
IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_CONTROL)]

# An optional filter in the query string (an id, a code, a kind).
FilterQuery = Annotated[str | None, Query(max_length=64, pattern=NO_CONTROL)]

# A kecamatan's Kemendagri code in a request body, e.g. 35.78.01.
KecamatanCode = Annotated[str, StringConstraints(pattern=r"^\d{2}\.\d{2}\.\d{2}$")]
