"""Kecamatan names from the reference CSV (`kkmp_shared.refdata`, surabaya_kelurahan.csv).

Events carry kecamatan codes, never names; the per-kecamatan dashboards need the names, and they are
public reference data, so reporting reads them from the same file the registry loads.
"""

from __future__ import annotations

from pathlib import Path

from kkmp_shared import refdata

DEFAULT_CSV = refdata.directory() / refdata.KELURAHAN


def load_kecamatan_names(path: Path | None = None) -> dict[str, str]:
    """{kecamatan code: name}; empty when the file is missing (codes are then shown as names)."""
    source = path or DEFAULT_CSV
    if not source.exists():
        return {}
    names: dict[str, str] = {}
    for row in refdata.rows(source):
        code = (row.get("kecamatan_code") or "").strip()
        name = (row.get("kecamatan_name") or "").strip()
        if code and name:
            names.setdefault(code, name)
    return dict(sorted(names.items()))
