"""Surabaya's reference data (regions, points, boundaries, the commodity catalogue), shipped in this package.

The files sit next to this module and install with it (wheel or workspace), so every service, the CLI's
demo seed and the bench read the same copy, found with `importlib.resources` and never by a path relative
to the repository. README.md here gives their sources and the attribution to keep.
"""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path

COMMODITIES = "commodities.csv"
KELURAHAN = "surabaya_kelurahan.csv"
COORDS = "surabaya_coords.csv"
KECAMATAN_GEOJSON = "surabaya_kecamatan.geojson"
KELURAHAN_GEOJSON = "surabaya_kelurahan.geojson"


def directory() -> Path:
    """The folder holding the files (installed as plain files: the package is never run zipped)."""
    return Path(str(files(__name__)))


def path(name: str) -> Path:
    """One file of the reference data, e.g. `path(COMMODITIES)`."""
    found = directory() / name
    if not found.is_file():
        raise FileNotFoundError(f"no reference data file {name!r} in {directory()}")
    return found


def rows(source: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file: a name of this package's data, or a path given by a setting."""
    target = source if isinstance(source, Path) else path(source)
    with target.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
