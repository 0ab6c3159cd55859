"""Every text field of every request body refuses what its published schema refuses.

A field declared `StringConstraints(strip_whitespace=True, max_length=N)` publishes `maxLength: N`
but strips before it counts, so it took a space plus N characters (schemathesis's
negative_data_rejection found it). Request fields use `kkmp_shared.validation.TRIMMED` instead,
which checks the text as sent and strips afterwards. This walks every request model of every
service, so a field added later with the old spelling fails here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Annotated, Any, get_args

import pytest
from kkmp_shared.validation import Strict
from pydantic import StringConstraints, TypeAdapter, ValidationError

pytestmark = pytest.mark.unit

SCHEMA_MODULES = (
    "registry.entrypoints.schemas",
    "inventory.entrypoints.schemas",
    "sourcing.entrypoints.schemas",
    "reporting.entrypoints.schemas",
    "notifications.entrypoints.schemas",
)


def request_models() -> list[type[Strict]]:
    for name in SCHEMA_MODULES:
        importlib.import_module(name)
    found: list[type[Strict]] = []
    pending = list(Strict.__subclasses__())
    while pending:
        model = pending.pop()
        if model.__module__ in SCHEMA_MODULES:
            found.append(model)
        pending.extend(model.__subclasses__())
    return sorted(set(found), key=lambda model: (model.__module__, model.__qualname__))


def field_adapters() -> Iterator[tuple[str, TypeAdapter[Any], list[Any]]]:
    """(model.field, an adapter of the field's type with its metadata, that metadata flattened)."""
    for model in request_models():
        for name, field in model.model_fields.items():
            annotation = (
                Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            )
            yield (
                f"{model.__qualname__}.{name}",
                TypeAdapter(annotation),
                [*field.metadata, *_nested(annotation)],
            )


def _nested(annotation: Any) -> Iterator[Any]:
    for arg in get_args(annotation):
        if not isinstance(arg, type) and not get_args(arg):
            yield arg
        yield from _nested(arg)


def _text_limits(schema: dict[str, Any]) -> Iterator[tuple[int, bool]]:
    """(maxLength, inside an array) of every string the schema of a field publishes."""
    if schema.get("type") == "string" and "maxLength" in schema:
        yield schema["maxLength"], False
    for option in schema.get("anyOf", []):
        yield from _text_limits(option)
    items = schema.get("items")
    if isinstance(items, dict):
        for limit, _ in _text_limits(items):
            yield limit, True


FIELDS = list(field_adapters())


def test_the_walk_finds_the_request_models() -> None:
    names = {name.split(".")[0] for name, _, _ in FIELDS}
    assert {
        "CooperativeCreate",
        "MovementIn",
        "NeedCreate",
        "CommentIn",
        "SubscriptionIn",
        "ReportIn",
    } <= names, names


@pytest.mark.parametrize(("field", "adapter", "metadata"), FIELDS, ids=[name for name, _, _ in FIELDS])
def test_padded_text_over_the_limit_is_refused(
    field: str, adapter: TypeAdapter[Any], metadata: list[Any]
) -> None:
    assert not any(isinstance(m, StringConstraints) and m.strip_whitespace for m in metadata), (
        f"{field}: strip_whitespace counts after stripping; use kkmp_shared.validation.TRIMMED"
    )
    for limit, in_array in _text_limits(adapter.json_schema()):
        padded = " " + "a" * limit
        with pytest.raises(ValidationError):
            adapter.validate_python([padded] if in_array else padded)
