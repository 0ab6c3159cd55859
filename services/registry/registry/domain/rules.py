"""The registry's pure rules: cooperative status lifecycle, business units, board positions, regions."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COOPERATIVE_STATUSES = ("formed", "operating", "suspended", "dissolved")

# formed → operating → suspended → dissolved; a suspended KKMP may resume; any may be dissolved.
ALLOWED_STATUS_CHANGES: dict[str, frozenset[str]] = {
    "formed": frozenset({"operating", "dissolved"}),
    "operating": frozenset({"suspended", "dissolved"}),
    "suspended": frozenset({"operating", "dissolved"}),
    "dissolved": frozenset(),
}

# Inpres 9/2025's six units plus what Surabaya's KKMP run (sembako, LPG, payment points, ...).
BUSINESS_UNITS = (
    "sembako",
    "lpg",
    "apotek",
    "klinik",
    "simpan_pinjam",
    "cold_storage",
    "logistik",
    "payment_services",
    "kemitraan",
    "seragam",
    "jasa_konstruksi",
    "transportasi",
    "lainnya",
)

BOARD_POSITIONS = (
    "ketua",
    "wakil_ketua",
    "sekretaris",
    "bendahara",
    "pengawas_ketua",
    "pengawas",
    "manajer",
)
SINGLE_SEAT_POSITIONS = frozenset({"ketua", "wakil_ketua", "sekretaris", "bendahara", "pengawas_ketua"})


class IllegalStatusChange(Exception):
    def __init__(self, old: str, new: str) -> None:
        allowed = ", ".join(sorted(ALLOWED_STATUS_CHANGES.get(old, ()))) or "none"
        super().__init__(
            f"A cooperative cannot go from '{old}' to '{new}' (allowed from '{old}': {allowed})."
        )
        self.old = old
        self.new = new


def check_status_change(old: str, new: str) -> None:
    """Raise IllegalStatusChange unless the lifecycle allows old → new."""
    if new not in ALLOWED_STATUS_CHANGES.get(old, frozenset()):
        raise IllegalStatusChange(old, new)


def board_problems(positions: Iterable[str]) -> list[str]:
    """What is wrong with a board's composition (empty list when it is acceptable)."""
    seen: dict[str, int] = {}
    for p in positions:
        seen[p] = seen.get(p, 0) + 1
    problems = [
        f"position '{p}' is held by {n} people; it has one seat"
        for p, n in seen.items()
        if p in SINGLE_SEAT_POSITIONS and n > 1
    ]
    if seen and "ketua" not in seen:
        problems.append("a board needs a ketua")
    return problems


@dataclass(frozen=True)
class Region:
    level: str  # "kecamatan" | "kelurahan"
    code: str
    name: str
    parent_code: str
    lat: float | None
    lon: float | None


def load_regions(kelurahan_csv: Path, coords_csv: Path | None = None) -> tuple[list[Region], list[Region]]:
    """Read a region list of the reference shape (kecamatan_code, kecamatan_name, kelurahan_code,
    kelurahan_name) and optional points (level, code, name, parent_code, lat, lon); any city or
    province in Kemendagri codes loads the same way."""
    points: dict[str, tuple[float, float]] = {}
    if coords_csv is not None and coords_csv.exists():
        with coords_csv.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                points[row["code"]] = (float(row["lat"]), float(row["lon"]))
    kecamatan: dict[str, Region] = {}
    kelurahan: list[Region] = []
    with kelurahan_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            kec_code = row["kecamatan_code"].strip()
            city_code = kec_code.rsplit(".", 1)[0]
            if kec_code not in kecamatan:
                lat, lon = points.get(kec_code, (None, None))
                kecamatan[kec_code] = Region(
                    "kecamatan", kec_code, row["kecamatan_name"].strip(), city_code, lat, lon
                )
            code = row["kelurahan_code"].strip()
            lat, lon = points.get(code, (None, None))
            kelurahan.append(Region("kelurahan", code, row["kelurahan_name"].strip(), kec_code, lat, lon))
    return list(kecamatan.values()), kelurahan
