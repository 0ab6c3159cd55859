"""The registry's ids: every id it hands out is a random UUID."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())


def is_id(value: str) -> bool:
    """Anything but a UUID names nothing (and never reaches SQL)."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
