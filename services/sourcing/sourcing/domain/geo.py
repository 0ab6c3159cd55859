"""Distances between cooperatives and suppliers: great-circle (haversine) kilometres between points."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


def haversine_km(a: Point, b: Point) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def nearest_km(origin: Point | None, points: Iterable[Point]) -> float | None:
    """Distance from `origin` to the nearest of `points`; None when either side is unknown."""
    if origin is None:
        return None
    distances = [haversine_km(origin, p) for p in points]
    return min(distances) if distances else None
