"""Names for messages from the project's reference data (commodity catalogue, kelurahan list).

Read once at start. Missing files only make messages plainer (codes read as words), never an error.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from kkmp_shared import refdata

log = logging.getLogger("kkmp.notifications.reference")


def _read(path: Path, key: str, value: str) -> dict[str, str]:
    try:
        return {row[key]: row[value] for row in refdata.rows(path) if row.get(key) and row.get(value)}
    except (OSError, KeyError, csv.Error) as exc:
        log.warning("reference data %s not loaded: %r", path, exc)
        return {}


def commodity_names(data_dir: Path) -> dict[str, str]:
    return _read(data_dir / "commodities.csv", "code", "name")


def kelurahan_names(data_dir: Path) -> dict[str, str]:
    return _read(data_dir / "surabaya_kelurahan.csv", "kelurahan_code", "kelurahan_name")
