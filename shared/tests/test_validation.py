"""The request machinery every service's API shares: storable text, JSON typed as the schema says,
unknown fields refused, ISO 8601 times only, and the error format as OpenAPI documents it. No I/O."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query
from kkmp_shared.errors import install_error_handlers
from kkmp_shared.validation import (
    COMMON_ERRORS,
    ERROR_MEANINGS,
    NO_CONTROL,
    TRIMMED,
    ErrorOut,
    IsoDateTime,
    Strict,
    error_responses,
    storable_text,
)
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, TypeAdapter, ValidationError

pytestmark = pytest.mark.unit


class Item(BaseModel):
    label: str


class Sample(Strict):
    name: str | None = None
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    items: list[Item] = Field(default_factory=list)
    count: int | None = None
    price: Decimal | None = None
    ratio: float | None = None
    active: bool | None = None
    on: date | None = None
    at: datetime | None = None
    aware: AwareDatetime | None = None
    either: int | str | None = None
    flag_or_count: bool | int | None = None


def _refused(data: dict[str, object]) -> dict[str, object]:
    """The one error pydantic reports for `data`."""
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return dict(errors[0])


# --- storable text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a\x00b", "bell\x07", "\x1b[31mred", "form\x0cfeed", "lone \ud800"])
def test_text_the_databases_cannot_store_is_refused(text: str) -> None:
    error = _refused({"name": text})
    assert error["loc"] == ("name",)
    assert "control or invalid characters" in str(error["msg"])
    assert not storable_text(text)


@pytest.mark.parametrize("text", ["tab\there", "two\nlines", "crlf\r\n", "Koperasi Désa Merah Putih ✓"])
def test_tabs_line_breaks_and_unicode_are_kept(text: str) -> None:
    assert Sample.model_validate({"name": text}).name == text
    assert storable_text(text)


def test_unstorable_text_inside_lists_and_mappings_is_refused() -> None:
    assert _refused({"tags": ["ok", "bad\x00"]})["loc"] == ("tags",)
    assert _refused({"labels": {"key": "bad\x01"}})["loc"] == ("labels",)
    assert _refused({"labels": {"bad\x02": "value"}})["loc"] == ("labels",)
    # Nested request models check their own fields (they derive from Strict); a plain one is left alone.
    assert Sample.model_validate({"items": [{"label": "plain\x00"}]}).items[0].label == "plain\x00"


@pytest.mark.parametrize("value", ["abc-123", "35.78.01", "", "beras premium"])
def test_no_control_takes_plain_parameters(value: str) -> None:
    assert re.fullmatch(NO_CONTROL, value)


@pytest.mark.parametrize("value", ["a\x00", "tab\t", "line\n", "del\x7f"])
def test_no_control_refuses_any_control_character(value: str) -> None:
    assert re.fullmatch(NO_CONTROL, value) is None


# --- unknown fields --------------------------------------------------------------------------------


def test_unknown_fields_are_refused_by_name() -> None:
    error = _refused({"name": "x", "role": "admin"})
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ("role",)


def test_subclasses_inherit_the_rules() -> None:
    class Narrow(Sample):
        extra: int = 0

    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Narrow.model_validate({"misspelt": 1})
    with pytest.raises(ValidationError, match="expected a number"):
        Narrow.model_validate({"extra": "12"})


# --- JSON typed as the schema says -----------------------------------------------------------------


@pytest.mark.parametrize("field", ["on", "at", "aware"])
@pytest.mark.parametrize("number", [0, 1_700_000_000, 1.5, "0", "1700000000", " 1.5e3 "])
def test_numbers_are_not_dates(field: str, number: float | str) -> None:
    """Nor are numbers written as text: schemathesis sent `"submitted_at": "0"`, taken as 1970."""
    error = _refused({field: number})
    assert error["loc"] == (field,)
    assert "ISO 8601" in str(error["msg"])


def test_iso_dates_are_taken() -> None:
    sample = Sample.model_validate(
        {"on": "2025-01-31", "at": "2025-01-31T08:00:00+07:00", "aware": "2025-01-31T01:00:00Z"}
    )
    assert sample.on == date(2025, 1, 31)
    assert sample.at == datetime(2025, 1, 31, 1, tzinfo=UTC)
    assert sample.aware == datetime(2025, 1, 31, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", [0, 1, "yes", "true", "false"])
def test_only_true_or_false_is_a_boolean(value: object) -> None:
    assert "expected true or false" in str(_refused({"active": value})["msg"])


@pytest.mark.parametrize("field", ["count", "price", "ratio"])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_not_a_number(field: str, value: bool) -> None:
    assert "expected a number" in str(_refused({field: value})["msg"])


@pytest.mark.parametrize("field", ["count", "ratio"])
def test_text_is_not_a_number(field: str) -> None:
    assert "expected a number" in str(_refused({field: "12"})["msg"])


def test_what_the_schema_allows_is_taken() -> None:
    sample = Sample.model_validate(
        {"count": 12, "ratio": 0.5, "price": "12.5", "active": False, "either": "12", "flag_or_count": True}
    )
    assert (sample.count, sample.ratio, sample.price) == (12, 0.5, Decimal("12.5"))
    assert sample.active is False
    assert sample.either == "12"
    assert sample.flag_or_count is True
    # null stays null for every optional field.
    assert Sample.model_validate({"count": None, "active": None, "at": None}).count is None


# --- trimmed text ----------------------------------------------------------------------------------

NAME: TypeAdapter[str] = TypeAdapter(Annotated[str, StringConstraints(min_length=2, max_length=5), TRIMMED])


def test_trimmed_text_is_stored_without_its_surrounding_whitespace() -> None:
    assert NAME.validate_python(" gula") == "gula"
    assert NAME.validate_python("\tteh\n") == "teh"


@pytest.mark.parametrize(("text", "error"), [(" abcde", "string_too_long"), ("  a  ", "string_too_short")])
def test_trimmed_text_is_counted_as_sent_and_once_more_stripped(text: str, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        NAME.validate_python(text)
    assert caught.value.errors()[0]["type"] == error


def test_trimmed_text_publishes_the_limits_it_checks() -> None:
    assert NAME.json_schema() == {"type": "string", "minLength": 2, "maxLength": 5}


# --- ISO 8601 times in query strings ---------------------------------------------------------------

ISO_TIME: TypeAdapter[datetime] = TypeAdapter(IsoDateTime)


@pytest.mark.parametrize("text", ["1700000000", " 12 ", "-5", "1.5", ".5", "1e9", "+3.0E-2"])
def test_a_bare_number_is_not_a_time(text: str) -> None:
    with pytest.raises(ValidationError, match="expected an ISO 8601 date-time"):
        ISO_TIME.validate_python(text)


def test_iso_text_is_a_time() -> None:
    assert ISO_TIME.validate_python("2025-01-31T00:00:00Z") == datetime(2025, 1, 31, tzinfo=UTC)


async def test_a_route_answers_422_for_a_bare_number_in_the_query() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/since")
    async def since(at: Annotated[IsoDateTime, Query()]) -> dict[str, str]:
        return {"at": at.isoformat()}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        taken = await client.get("/since", params={"at": "2025-01-31T00:00:00Z"})
        refused = await client.get("/since", params={"at": "1700000000"})
    assert taken.json() == {"at": "2025-01-31T00:00:00+00:00"}
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "at"


# --- the error format in OpenAPI -------------------------------------------------------------------


def test_error_responses_document_the_error_format() -> None:
    responses = error_responses(*COMMON_ERRORS, 429)
    assert list(responses) == [400, 401, 403, 404, 409, 413, 422, 429]
    assert all(entry["model"] is ErrorOut for entry in responses.values())
    assert responses[429]["description"] == ERROR_MEANINGS[429]
    body = ErrorOut.model_validate({"error": {"code": "not_found", "message": "The need does not exist."}})
    assert body.error.details is None
