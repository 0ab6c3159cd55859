"""Reference data sourcing reads from the project's CSVs: the commodity catalogue and region points.

Commodity codes and price ceilings come from `commodities.csv` (the same file inventory seeds its
catalogue from), points of kecamatan and kelurahan from `surabaya_coords.csv`, both in
`kkmp_shared.refdata` unless a setting names other files. Nothing here calls another service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kkmp_shared import refdata

from sourcing.domain.commodities import Commodity
from sourcing.domain.geo import Point


@dataclass(frozen=True)
class Reference:
    commodities: dict[str, Commodity]
    kecamatan: dict[str, Point]
    kelurahan: dict[str, Point]
    kelurahan_kecamatan: dict[str, str]
    city: Point | None

    def commodity(self, code: str | None) -> Commodity | None:
        return self.commodities.get(code or "")

    def kelurahan_point(self, code: str | None) -> Point | None:
        return self.kelurahan.get(code or "")

    def kecamatan_point(self, code: str | None) -> Point | None:
        return self.kecamatan.get(code or "")

    def supplier_points(
        self, lat: float | None, lon: float | None, service_kecamatan_codes: list[str]
    ) -> tuple[Point, ...]:
        """Where a supplier delivers from: its own point, else the kecamatan it serves, else the city."""
        if lat is not None and lon is not None:
            return (Point(lat, lon),)
        points = tuple(p for c in service_kecamatan_codes if (p := self.kecamatan.get(c)) is not None)
        if points:
            return points
        return (self.city,) if self.city else ()


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value else None


def load_commodities(path: Path) -> dict[str, Commodity]:
    return {
        row["code"].strip(): Commodity(
            code=row["code"].strip(),
            name=row["name"].strip(),
            unit=row["unit"].strip(),
            price_ceiling=_int_or_none(row.get("price_ceiling")),
            ceiling_kind=(row.get("ceiling_kind") or "").strip() or None,
            stall_days=_int_or_none(row.get("stall_days")) or 14,
            typical_price=_int_or_none(row.get("typical_price")),
        )
        for row in refdata.rows(path)
        if (row.get("code") or "").strip()
    }


def load_reference(commodities_csv: Path | None = None, coords_csv: Path | None = None) -> Reference:
    commodities = load_commodities(commodities_csv or refdata.path(refdata.COMMODITIES))
    kecamatan: dict[str, Point] = {}
    kelurahan: dict[str, Point] = {}
    parents: dict[str, str] = {}
    city: Point | None = None
    for row in refdata.rows(coords_csv or refdata.COORDS):
        point = Point(float(row["lat"]), float(row["lon"]))
        if row["level"] == "kecamatan":
            kecamatan[row["code"]] = point
        elif row["level"] == "kelurahan":
            kelurahan[row["code"]] = point
            parents[row["code"]] = row["parent_code"]
        elif row["level"] == "kota":
            city = point
    return Reference(commodities, kecamatan, kelurahan, parents, city)
