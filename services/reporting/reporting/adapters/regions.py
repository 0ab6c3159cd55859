"""Kecamatan names from the reference CSV (data/surabaya_kelurahan.csv).

Events carry kecamatan codes, never names; the per-kecamatan dashboards need the names, and they are
public reference data, so reporting reads them from the same file the registry loads.
"""

from __future__ import annotations

import csv
from pathlib import Path

REPO_DATA = Path(__file__).resolve().parents[4] / "data"
DEFAULT_CSV = REPO_DATA / "surabaya_kelurahan.csv"


def load_kecamatan_names(path: Path | None = None) -> dict[str, str]:
    """{kecamatan code: name}; empty when the file is missing (codes are then shown as names)."""
    source = path or DEFAULT_CSV
    if not source.exists():
        return {}
    names: dict[str, str] = {}
    with source.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = (row.get("kecamatan_code") or "").strip()
            name = (row.get("kecamatan_name") or "").strip()
            if code and name:
                names.setdefault(code, name)
    return dict(sorted(names.items()))
