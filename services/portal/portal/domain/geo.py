"""GeoJSON boundaries to SVG, drawn on the server so the map needs no tile server and no JavaScript.

Pure: takes parsed GeoJSON (a dict) and returns path strings and projected points. The projection is
equirectangular with longitude scaled by cos(mean latitude); over a city 25 km across this is
indistinguishable from Web Mercator and keeps the arithmetic obvious. SVG's y axis points down, so
latitude is negated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Position = Sequence[float]  # [lon, lat, (alt)]
Ring = Sequence[Position]


@dataclass(frozen=True)
class Bounds:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


@dataclass(frozen=True)
class Projection:
    """Maps lon/lat to SVG user units inside a ``width`` × ``height`` box with ``padding`` on every side."""

    bounds: Bounds
    width: float
    height: float
    padding: float
    scale: float
    kx: float  # cos(mean latitude): shrinks longitude so distances look right

    def point(self, lon: float, lat: float) -> tuple[float, float]:
        x = self.padding + (lon - self.bounds.min_lon) * self.kx * self.scale
        y = self.padding + (self.bounds.max_lat - lat) * self.scale
        return x, y


@dataclass(frozen=True)
class Shape:
    code: str
    name: str
    path: str
    label_x: float
    label_y: float
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SvgMap:
    width: float
    height: float
    shapes: list[Shape]
    projection: Projection

    @property
    def view_box(self) -> str:
        return f"0 0 {_num(self.width)} {_num(self.height)}"


def _rings(geometry: dict[str, Any]) -> Iterator[Ring]:
    """Every ring of a Polygon or MultiPolygon (outer and holes); other geometry types yield nothing."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    if kind == "Polygon":
        yield from coords
    elif kind == "MultiPolygon":
        for polygon in coords:
            yield from polygon
    elif kind == "GeometryCollection":
        for part in geometry.get("geometries") or []:
            yield from _rings(part)


def _outer_rings(geometry: dict[str, Any]) -> Iterator[Ring]:
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    if kind == "Polygon" and coords:
        yield coords[0]
    elif kind == "MultiPolygon":
        for polygon in coords:
            if polygon:
                yield polygon[0]


def bounds_of(features: Iterable[dict[str, Any]]) -> Bounds:
    lons: list[float] = []
    lats: list[float] = []
    for feature in features:
        for ring in _rings(feature.get("geometry") or {}):
            for position in ring:
                lons.append(float(position[0]))
                lats.append(float(position[1]))
    if not lons:
        raise ValueError("no polygon coordinates in the features")
    return Bounds(min(lons), min(lats), max(lons), max(lats))


def fit_projection(bounds: Bounds, width: float = 800, padding: float = 10) -> Projection:
    """A projection that fills ``width`` and derives the height from the area's aspect ratio."""
    mean_lat = math.radians((bounds.min_lat + bounds.max_lat) / 2)
    kx = math.cos(mean_lat)
    span_x = (bounds.max_lon - bounds.min_lon) * kx
    span_y = bounds.max_lat - bounds.min_lat
    if span_x <= 0 or span_y <= 0:
        raise ValueError("bounds have no area")
    scale = (width - 2 * padding) / span_x
    height = span_y * scale + 2 * padding
    return Projection(bounds, width, round(height, 1), padding, scale, kx)


def _num(value: float) -> str:
    """A coordinate with one decimal, no trailing '.0': short paths, sub-pixel accuracy at 800 px."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def ring_to_path(ring: Ring, projection: Projection) -> str:
    """One closed ring as ``M x y L x y ... Z``, dropping points that project onto the previous one."""
    parts: list[str] = []
    last: tuple[str, str] | None = None
    for position in ring:
        x, y = projection.point(float(position[0]), float(position[1]))
        current = (_num(x), _num(y))
        if current == last:
            continue
        parts.append(("M" if last is None else "L") + f"{current[0]} {current[1]}")
        last = current
    if len(parts) < 3:
        return ""
    return " ".join(parts) + " Z"


def geometry_to_path(geometry: dict[str, Any], projection: Projection) -> str:
    """A Polygon/MultiPolygon as one SVG path (holes included; draw it with ``fill-rule="evenodd"``)."""
    return " ".join(p for p in (ring_to_path(r, projection) for r in _rings(geometry)) if p)


def ring_area_centroid(ring: Ring) -> tuple[float, float, float]:
    """Signed area and centroid (lon, lat) of a ring by the shoelace formula."""
    area2 = cx = cy = 0.0
    n = len(ring)
    for i in range(n):
        x0, y0 = float(ring[i][0]), float(ring[i][1])
        x1, y1 = float(ring[(i + 1) % n][0]), float(ring[(i + 1) % n][1])
        cross = x0 * y1 - x1 * y0
        area2 += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if area2 == 0:
        xs = [float(p[0]) for p in ring] or [0.0]
        ys = [float(p[1]) for p in ring] or [0.0]
        return 0.0, sum(xs) / len(xs), sum(ys) / len(ys)
    return area2 / 2, cx / (3 * area2), cy / (3 * area2)


def label_point(geometry: dict[str, Any]) -> tuple[float, float] | None:
    """Where to put a label: the centroid of the largest outer ring (lon, lat)."""
    best: tuple[float, float, float] | None = None
    for ring in _outer_rings(geometry):
        area, x, y = ring_area_centroid(ring)
        if best is None or abs(area) > abs(best[0]):
            best = (area, x, y)
    return None if best is None else (best[1], best[2])


def build_map(collection: dict[str, Any], width: float = 800, padding: float = 10) -> SvgMap:
    """Every polygon feature of a FeatureCollection as an SVG shape, keyed by its ``code`` property.

    A feature's own ``lat``/``lon`` properties (a representative point inside it) are preferred for the
    label, because a centroid can fall outside a concave shape.
    """
    features = [f for f in collection.get("features", []) if f.get("geometry")]
    projection = fit_projection(bounds_of(features), width, padding)
    shapes: list[Shape] = []
    for feature in features:
        props = dict(feature.get("properties") or {})
        path = geometry_to_path(feature["geometry"], projection)
        if not path:
            continue
        if props.get("lon") is not None and props.get("lat") is not None:
            anchor = (float(props["lon"]), float(props["lat"]))
        else:
            anchor = label_point(feature["geometry"]) or (
                projection.bounds.min_lon,
                projection.bounds.max_lat,
            )
        lx, ly = projection.point(*anchor)
        shapes.append(
            Shape(
                code=str(props.get("code", "")),
                name=str(props.get("name", "")),
                path=path,
                label_x=round(lx, 1),
                label_y=round(ly, 1),
                properties=props,
            )
        )
    shapes.sort(key=lambda s: s.code)
    return SvgMap(projection.width, projection.height, shapes, projection)


# --- colouring ---------------------------------------------------------------------------------------

# Colour-blind-safe sequential ramps (ColorBrewer), light to dark; text on them is never needed because
# every shape carries a <title> and the same figures are in a table under the map.
HEALTH_RAMP = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")  # worst → best
STALLED_RAMP = ("#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704")  # none → most
NO_DATA = "#e5e7eb"


def class_index(value: float, breaks: Sequence[float]) -> int:
    """Index of the class ``value`` falls in, given ascending upper ``breaks`` (len(breaks)+1 classes)."""
    for i, upper in enumerate(breaks):
        if value <= upper:
            return i
    return len(breaks)


def health_colour(active_share: float | None) -> str:
    """Colour for the share (0..1) of a kecamatan's cooperatives that are ``aktif``."""
    if active_share is None:
        return NO_DATA
    return HEALTH_RAMP[class_index(active_share, (0.2, 0.4, 0.6, 0.8))]


def nice_breaks(max_value: float, classes: int = 4) -> list[float]:
    """Equal-interval upper bounds for ``classes`` non-zero classes up to ``max_value``, rounded to a
    1/2/5 × 10^n step so the legend reads well (e.g. max 3.7 jt → 1 jt, 2 jt, 3 jt, 4 jt)."""
    if max_value <= 0:
        return []
    raw = max_value / classes
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * (i + 1) for i in range(classes)]


def stalled_colour(value: float | None, breaks: Sequence[float]) -> str:
    """Colour for a stalled-stock value: the lightest shade means none at all."""
    if value is None:
        return NO_DATA
    if value <= 0:
        return STALLED_RAMP[0]
    return STALLED_RAMP[1 + min(class_index(value, breaks), len(STALLED_RAMP) - 2)]
