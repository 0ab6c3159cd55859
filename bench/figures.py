"""The one percentile every bench figure uses, and its rounding for the tables."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in percent) of unordered values; None for no values, which the
    tables print as MISSED."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def percentile_ms(values: list[float], q: float, digits: int = 2) -> float | None:
    """`percentile` of milliseconds, rounded; None (MISSED) for no values."""
    value = percentile(values, q)
    return None if value is None else round(value, digits)
