"""The registry's pure rules: cooperative status lifecycle, business units, board composition, regions.

No I/O here except reading a region file the caller names: everything is a function of its arguments,
so the rules are tested without a database or a web server.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COOPERATIVE_STATUSES = ("formed", "operating", "suspended", "dissolved")

# formed → operating → suspended → dissolved; a suspended KKMP may resume operating; a KKMP that never
# started or that operates may be dissolved directly (RAT decision); dissolution is final.
ALLOWED_STATUS_CHANGES: dict[str, frozenset[str]] = {
    "formed": frozenset({"operating", "dissolved"}),
    "operating": frozenset({"suspended", "dissolved"}),
    "suspended": frozenset({"operating", "dissolved"}),
    "dissolved": frozenset(),
}

# Inpres 9/2025's six units plus what Surabaya's KKMP run (sembako, LPG, payment points, ...).
# "others" and "lainnya" both mean a unit outside the list (the issue names it "others").
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
    "others",
    "lainnya",
)

# Pengurus (the management board) first, then pengawas (the supervisory board), in the order a deed
# lists them; listing a board follows this order.
PENGURUS_POSITIONS = ("ketua", "wakil_ketua", "sekretaris", "bendahara", "manajer")
PENGAWAS_POSITIONS = ("pengawas_ketua", "pengawas")
BOARD_POSITIONS = PENGURUS_POSITIONS + PENGAWAS_POSITIONS
SINGLE_SEAT_POSITIONS = frozenset({"ketua", "wakil_ketua", "sekretaris", "bendahara", "pengawas_ketua"})


def board_position_rank(position: str) -> int:
    """Where a position is listed on a board (unknown positions last)."""
    try:
        return BOARD_POSITIONS.index(position)
    except ValueError:
        return len(BOARD_POSITIONS)


def normalise_board_position(value: str) -> str:
    """'Wakil Ketua' and 'wakil-ketua' are how people write 'wakil_ketua'."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


class IllegalStatusChange(Exception):
    def __init__(self, old: str, new: str) -> None:
        allowed = ", ".join(sorted(ALLOWED_STATUS_CHANGES.get(old, ()))) or "none"
        super().__init__(
            f"A cooperative cannot go from '{old}' to '{new}' (allowed from '{old}': {allowed})."
        )
        self.old = old
        self.new = new


def status_change_allowed(old: str, new: str) -> bool:
    return new in ALLOWED_STATUS_CHANGES.get(old, frozenset())


def check_status_change(old: str, new: str) -> None:
    """Raise IllegalStatusChange unless the lifecycle allows old → new."""
    if not status_change_allowed(old, new):
        raise IllegalStatusChange(old, new)


def accepts_new_members(status: str) -> bool:
    """A dissolved KKMP takes no members; a suspended one keeps its register open."""
    return status != "dissolved"


def board_problems(positions: Iterable[str]) -> list[str]:
    """What is wrong with a board given as its members' positions; empty when it is acceptable.

    Single seats hold one person, and a board that has anyone has a ketua. (Whether one person sits
    in both the pengurus and the pengawas cannot be told from names: two people may share one, and
    "Budi Santoso" often does.)
    """
    seen: dict[str, int] = {}
    for position in positions:
        seen[position] = seen.get(position, 0) + 1
    problems = [
        f"position '{p}' is held by {n} people; it has one seat"
        for p, n in seen.items()
        if p in SINGLE_SEAT_POSITIONS and n > 1
    ]
    if seen and "ketua" not in seen:
        problems.append("a board needs a ketua")
    return problems


# --- regions --------------------------------------------------------------------------------------

KECAMATAN_CODE = re.compile(r"^\d{2}\.\d{2}\.\d{2}$")
KELURAHAN_CODE = re.compile(r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
REGION_COLUMNS = ("kecamatan_code", "kecamatan_name", "kelurahan_code", "kelurahan_name")


class RegionFileError(ValueError):
    """A region list that cannot be loaded as it is (the message names the line)."""


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
    province in Kemendagri codes loads the same way. Codes are kept as given (numbering gaps are real);
    a malformed or contradictory line raises RegionFileError rather than loading a wrong map."""
    points: dict[str, tuple[float, float]] = {}
    if coords_csv is not None and coords_csv.exists():
        with coords_csv.open(newline="", encoding="utf-8-sig") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    points[row["code"].strip()] = (float(row["lat"]), float(row["lon"]))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise RegionFileError(f"{coords_csv.name} line {line}: needs code, lat and lon") from exc
    kecamatan: dict[str, Region] = {}
    kelurahan: dict[str, Region] = {}
    with kelurahan_csv.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REGION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise RegionFileError(f"{kelurahan_csv.name}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            kec_code, kec_name, code, name = (str(row[c] or "").strip() for c in REGION_COLUMNS)
            where = f"{kelurahan_csv.name} line {line}"
            if not KECAMATAN_CODE.match(kec_code) or not kec_name:
                raise RegionFileError(f"{where}: bad kecamatan code or name {kec_code!r}")
            if not KELURAHAN_CODE.match(code) or not name:
                raise RegionFileError(f"{where}: bad kelurahan code or name {code!r}")
            if not code.startswith(kec_code + "."):
                raise RegionFileError(f"{where}: kelurahan {code} is not inside kecamatan {kec_code}")
            if code in kelurahan:
                raise RegionFileError(f"{where}: kelurahan {code} appears twice")
            known = kecamatan.get(kec_code)
            if known is None:
                lat, lon = points.get(kec_code, (None, None))
                city_code = kec_code.rsplit(".", 1)[0]
                kecamatan[kec_code] = Region("kecamatan", kec_code, kec_name, city_code, lat, lon)
            elif known.name != kec_name:
                raise RegionFileError(
                    f"{where}: kecamatan {kec_code} is named both {known.name!r} and {kec_name!r}"
                )
            lat, lon = points.get(code, (None, None))
            kelurahan[code] = Region("kelurahan", code, name, kec_code, lat, lon)
    if not kelurahan:
        raise RegionFileError(f"{kelurahan_csv.name}: no kelurahan")
    return list(kecamatan.values()), list(kelurahan.values())
