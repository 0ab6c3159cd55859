"""Helpers of the registry's query modules: chunked id lists and UTC-aware datetimes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kkmp_shared.timeutil import as_utc as as_utc


class Duplicate(Exception):
    """A unique index refused the row: what it names exists already (often made meanwhile by a
    concurrent request)."""


# Lists of ids in IN (...) are sent in chunks: both databases cap the number of bound parameters.
IN_CHUNK = 1000


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def like_pattern(text: str) -> str:
    """`%text%` for a case-insensitive LIKE with `escape="\\"`, the text's own wildcards escaped."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
