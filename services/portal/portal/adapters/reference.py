"""Surabaya's reference data, read once from ``kkmp_shared.refdata`` (or the folder a setting names).

Kecamatan boundaries for the map, a representative point per kelurahan, and the names of both. This is
static, public reference data shipped with the project (not a database of the portal's own), so the
map can be drawn even while the registry is down.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from portal.domain.geo import SvgMap, build_map


@dataclass(frozen=True)
class Place:
    level: str
    code: str
    name: str
    parent_code: str
    lat: float
    lon: float


@dataclass(frozen=True)
class ReferenceData:
    city_map: SvgMap
    kecamatan: dict[str, Place]
    kelurahan: dict[str, Place]

    def kecamatan_name(self, code: str | None) -> str:
        place = self.kecamatan.get(code or "")
        return place.name if place else (code or "")

    def kelurahan_name(self, code: str | None) -> str:
        place = self.kelurahan.get(code or "")
        return place.name if place else (code or "")

    def kelurahan_in(self, kecamatan_code: str) -> list[Place]:
        return sorted(
            (p for p in self.kelurahan.values() if p.parent_code == kecamatan_code), key=lambda p: p.code
        )


def load_reference(directory: Path, map_width: float = 800) -> ReferenceData:
    with (directory / "surabaya_kecamatan.geojson").open(encoding="utf-8") as fh:
        collection = json.load(fh)
    kecamatan: dict[str, Place] = {}
    kelurahan: dict[str, Place] = {}
    with (directory / "surabaya_coords.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            place = Place(
                row["level"],
                row["code"],
                row["name"],
                row["parent_code"],
                float(row["lat"]),
                float(row["lon"]),
            )
            if place.level == "kecamatan":
                kecamatan[place.code] = place
            elif place.level == "kelurahan":
                kelurahan[place.code] = place
    return ReferenceData(build_map(collection, width=map_width), kecamatan, kelurahan)
