"""GeoJSON → SVG (portal.domain.geo), on hand-made shapes and on Surabaya's real boundaries."""

from __future__ import annotations

import json
import math
import re

import pytest
from kkmp_shared import refdata
from portal.domain import geo

pytestmark = pytest.mark.unit

DATA = refdata.directory()

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[112.0, -7.0], [112.1, -7.0], [112.1, -7.1], [112.0, -7.1], [112.0, -7.0]]],
}


def feature(code: str, geometry: dict, **props: object) -> dict:
    return {
        "type": "Feature",
        "properties": {"code": code, "name": f"Kec {code}", **props},
        "geometry": geometry,
    }


def test_projection_fits_the_width_and_keeps_the_aspect_ratio() -> None:
    bounds = geo.Bounds(112.0, -7.1, 112.1, -7.0)
    proj = geo.fit_projection(bounds, width=200, padding=10)
    # north-west corner at the padding, south-east corner at width - padding
    assert proj.point(112.0, -7.0) == pytest.approx((10, 10))
    x, y = proj.point(112.1, -7.1)
    assert x == pytest.approx(190)
    # longitude is shrunk by cos(lat): a 0.1° × 0.1° square is taller than wide on screen
    assert (y - 10) / (x - 10) == pytest.approx(1 / math.cos(math.radians(-7.05)), rel=1e-6)
    assert proj.height == pytest.approx(y + 10, abs=0.1)


def test_north_is_up() -> None:
    proj = geo.fit_projection(geo.Bounds(112.0, -7.1, 112.1, -7.0))
    _, y_north = proj.point(112.05, -7.0)
    _, y_south = proj.point(112.05, -7.1)
    assert y_north < y_south


def test_ring_becomes_a_closed_path() -> None:
    proj = geo.fit_projection(geo.Bounds(112.0, -7.1, 112.1, -7.0), width=200, padding=10)
    path = geo.geometry_to_path(SQUARE, proj)
    assert path.startswith("M10 10 L190 10 ")
    assert path.endswith(" Z")
    assert path.count("M") == 1


def test_multipolygon_and_holes_are_subpaths() -> None:
    hole = [[112.02, -7.02], [112.08, -7.02], [112.08, -7.08], [112.02, -7.08], [112.02, -7.02]]
    island = [[112.2, -7.0], [112.3, -7.0], [112.3, -7.1], [112.2, -7.0]]
    multi = {"type": "MultiPolygon", "coordinates": [[SQUARE["coordinates"][0], hole], [island]]}
    proj = geo.fit_projection(geo.bounds_of([feature("a", multi)]))
    path = geo.geometry_to_path(multi, proj)
    assert path.count("M") == 3 and path.count("Z") == 3


def test_degenerate_rings_are_dropped() -> None:
    proj = geo.fit_projection(geo.Bounds(112.0, -7.1, 112.1, -7.0), width=200)
    tiny = [[112.0, -7.0], [112.00001, -7.0], [112.0, -7.00001], [112.0, -7.0]]
    assert geo.ring_to_path(tiny, proj) == ""


def test_centroid_of_a_square() -> None:
    area, x, y = geo.ring_area_centroid(SQUARE["coordinates"][0])
    assert abs(area) == pytest.approx(0.01)
    assert (x, y) == pytest.approx((112.05, -7.05))


def test_bounds_refuse_empty_input() -> None:
    with pytest.raises(ValueError):
        geo.bounds_of([{"geometry": {"type": "Point", "coordinates": [112, -7]}}])


def test_build_map_prefers_the_features_own_label_point() -> None:
    collection = {"features": [feature("b", SQUARE, lat=-7.01, lon=112.01), feature("a", SQUARE)]}
    svg = geo.build_map(collection, width=200, padding=10)
    assert [s.code for s in svg.shapes] == ["a", "b"]  # sorted by code
    a, b = svg.shapes
    assert (a.label_x, a.label_y) == pytest.approx(svg.projection.point(112.05, -7.05), abs=0.1)
    assert (b.label_x, b.label_y) == pytest.approx(svg.projection.point(112.01, -7.01), abs=0.1)
    assert svg.view_box.startswith("0 0 200 ")


def test_surabaya_kecamatan_map() -> None:
    collection = json.loads((DATA / "surabaya_kecamatan.geojson").read_text(encoding="utf-8"))
    svg = geo.build_map(collection, width=800, padding=10)
    assert len(svg.shapes) == 31
    assert len({s.code for s in svg.shapes}) == 31
    assert all(re.fullmatch(r"35\.78\.\d\d", s.code) for s in svg.shapes)
    # Surabaya is wider east–west than north–south
    assert 400 < svg.height < 800
    for shape in svg.shapes:
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", shape.path)]
        assert numbers and all(-0.5 <= n <= 800.5 for n in numbers)
        assert 0 <= shape.label_x <= 800 and 0 <= shape.label_y <= svg.height
    # a kelurahan point (Kel. Karang Pilang) projects inside the drawing
    x, y = svg.projection.point(112.687, -7.335)
    assert 10 <= x <= 790 and 10 <= y <= svg.height - 10


@pytest.mark.parametrize(
    ("share", "index"), [(0.0, 0), (0.2, 0), (0.21, 1), (0.5, 2), (0.79, 3), (0.95, 4), (1.0, 4)]
)
def test_health_colour_classes(share: float, index: int) -> None:
    assert geo.health_colour(share) == geo.HEALTH_RAMP[index]


def test_health_colour_without_data() -> None:
    assert geo.health_colour(None) == geo.NO_DATA


def test_nice_breaks() -> None:
    assert geo.nice_breaks(0) == []
    assert geo.nice_breaks(3_700_000) == [1_000_000, 2_000_000, 3_000_000, 4_000_000]
    assert geo.nice_breaks(18_000_000) == [5_000_000, 10_000_000, 15_000_000, 20_000_000]
    breaks = geo.nice_breaks(123)
    assert breaks[-1] >= 123


def test_stalled_colours() -> None:
    breaks = [5.0, 10.0, 15.0, 20.0]
    assert geo.stalled_colour(0, breaks) == geo.STALLED_RAMP[0]
    assert geo.stalled_colour(3, breaks) == geo.STALLED_RAMP[1]
    assert geo.stalled_colour(20, breaks) == geo.STALLED_RAMP[4]
    assert geo.stalled_colour(99, breaks) == geo.STALLED_RAMP[4]
    assert geo.stalled_colour(None, breaks) == geo.NO_DATA
