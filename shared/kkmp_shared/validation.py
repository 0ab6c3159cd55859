"""Input validation every service's API shares, and the error format as its OpenAPI documents it.

Two rules hold at every boundary. Text the databases cannot store (NUL, which PostgreSQL refuses in
text; a lone surrogate, which neither database can encode; other C0 controls) is refused as bad input,
a 422 naming the field, instead of failing in the database as a 500. And JSON is taken as the published
schema types it: pydantic on its own would read a number as a date, 0 or "yes" as a boolean, false or
"12" as a number, which no client means. Request models derive from `Strict`, which also refuses
unknown fields (a misspelt or privileged field is a 422, not silently dropped or applied). Free text
is `TRIMMED`: checked as sent against the limits the schema publishes, then stored without its
surrounding whitespace.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError, core_schema

# Tab and line breaks are kept; other C0 controls have no place in a name, a note or a need.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# Path and query parameters (ids, codes, filters): no control characters at all.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


# A bare number in a query string is not a time the API documents (pydantic would read it as
# seconds since 1970): only ISO 8601 text is taken.
_BARE_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_text(value: Any) -> Any:
    if isinstance(value, str) and _BARE_NUMBER.fullmatch(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2025-01-31T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]


class _Trimmed:
    """Annotated metadata for free text: `Annotated[str, StringConstraints(max_length=200), TRIMMED]`.

    The text is checked as sent against the constraints before it (the ones the OpenAPI schema
    publishes), then stripped of surrounding whitespace; a `min_length` is checked once more on the
    stripped text. `StringConstraints(strip_whitespace=True)` strips first, which accepts whitespace
    plus `max_length` characters and a pattern's match padded with spaces: input the schema calls
    invalid.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        least = int(schema.get("min_length") or 0)

        def trim(value: str) -> str:
            value = value.strip()
            if len(value) < least:
                raise PydanticCustomError(
                    "string_too_short",
                    "String should have at least {min_length} characters besides surrounding whitespace",
                    {"min_length": least},
                )
            return value

        return core_schema.no_info_after_validator_function(trim, schema)


TRIMMED = _Trimmed()


def storable_text(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        if not storable_text(value):
            raise ValueError("text contains control or invalid characters")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    return value


def _kinds(annotation: Any) -> set[Any]:
    """The plain types a field's annotation is made of (`int | None` → {int, NoneType})."""
    args = get_args(annotation)
    return {annotation} if not args else set().union(*(_kinds(arg) for arg in args))


def _refuse_coercion(model: type[BaseModel], value: Any, field: str | None) -> Any:
    """JSON as the schema types it: pydantic would also read a number as a date (seconds since
    1970), 0 or "yes" as a boolean, false or "12" as a number, which no client means and the
    published schema does not allow."""
    if field is None or field not in model.model_fields or value is None:
        return value
    kinds = _kinds(model.model_fields[field].annotation)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kinds & {date, datetime, AwareDatetime} and (
        is_number or (isinstance(value, str) and _BARE_NUMBER.fullmatch(value))
    ):
        # A number, or a number as text ("0"): pydantic would read either as seconds since 1970.
        raise ValueError("expected an ISO 8601 date or date-time, e.g. 2025-01-31")
    if bool in kinds and not isinstance(value, bool) and not kinds & {int, float, str}:
        raise ValueError("expected true or false")
    if kinds & {int, float, Decimal} and isinstance(value, bool) and bool not in kinds:
        raise ValueError("expected a number")
    if kinds & {int, float} and isinstance(value, str) and not kinds & {str, Decimal}:
        raise ValueError("expected a number")
    return value


class Strict(BaseModel):
    """Base of every request model: unknown fields are refused (422), text must be storable."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return _storable(value)

    @field_validator("*", mode="before")
    @classmethod
    def _as_typed(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_coercion(cls, value, info.field_name)


# --- the error format (kkmp_shared.errors writes it) -----------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """The contract's error format: the body of every 4xx and 5xx answer."""

    error: ErrorBody


ERROR_MEANINGS = {
    400: "The body is not readable JSON",
    401: "No token, or a bad one",
    403: "Not allowed for this caller",
    404: "Unknown id, or one the caller may not see",
    409: "Conflict with the current state",
    413: "The body is too large",
    422: "Invalid input; details name each field",
    429: "Too many failed attempts; try again after Retry-After seconds",
}
# What any route may answer besides its success (a route adds 429 where it throttles).
COMMON_ERRORS = (400, 401, 403, 404, 409, 413, 422)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for these error statuses, each with the error format as its schema."""
    return {status: {"model": ErrorOut, "description": ERROR_MEANINGS[status]} for status in statuses}
