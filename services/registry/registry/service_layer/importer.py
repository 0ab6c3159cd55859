"""Bulk import of cooperatives from CSV or XLSX: every row is validated first; a file with any bad row
imports nothing, and the answer lists each bad row and field."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import load_workbook
from pydantic import ValidationError

from registry.entrypoints import schemas

COLUMNS = ("name", "kelurahan_code", "formation", "deed_number", "deed_date", "deed_notary", "business_units")


class ImportFileError(Exception):
    pass


def read_rows(filename: str, content: bytes) -> list[dict[str, Any]]:
    lower = filename.lower()
    if lower.endswith(".xlsx"):
        try:
            workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a corrupt file
            raise ImportFileError(
                f"The file is not a readable XLSX workbook ({type(exc).__name__})."
            ) from exc
        sheet = workbook.worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))
        if not rows:
            raise ImportFileError("The workbook's first sheet is empty.")
        header = [str(h).strip().lower() if h is not None else "" for h in rows[0]]
        return [
            {header[i]: ("" if v is None else v) for i, v in enumerate(r) if i < len(header) and header[i]}
            for r in rows[1:]
            if any(v not in (None, "") for v in r)
        ]
    if lower.endswith(".csv") or lower.endswith(".txt"):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFileError("The CSV file is not UTF-8 text.") from exc
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            raise ImportFileError("The CSV file has no header row.")
        return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    raise ImportFileError("Upload a .csv or .xlsx file.")


def validate_rows(rows: list[dict[str, Any]]) -> tuple[list[schemas.CooperativeCreate], list[dict[str, Any]]]:
    """Rows are numbered as a spreadsheet user sees them (the header is row 1)."""
    valid: list[schemas.CooperativeCreate] = []
    errors: list[dict[str, Any]] = []
    if not rows:
        errors.append({"row": 0, "field": "file", "message": "The file has no data rows."})
    missing = [c for c in ("name", "kelurahan_code", "formation") if rows and c not in rows[0]]
    if missing:
        errors.append({"row": 1, "field": ",".join(missing), "message": "Required columns are missing."})
        return [], errors
    for number, row in enumerate(rows, start=2):
        units_raw = str(row.get("business_units") or "sembako")
        units = [u.strip() for u in units_raw.replace(";", ",").split(",") if u.strip()]
        deed = None
        if any(str(row.get(k) or "").strip() for k in ("deed_number", "deed_date", "deed_notary")):
            deed_date = row.get("deed_date")
            deed = {
                "number": str(row.get("deed_number") or ""),
                "date": deed_date.date() if hasattr(deed_date, "date") else str(deed_date or ""),
                "notary": str(row.get("deed_notary") or ""),
            }
        candidate = {
            "name": str(row.get("name") or ""),
            "kelurahan_code": str(row.get("kelurahan_code") or ""),
            "formation": str(row.get("formation") or ""),
            "deed": deed,
            "business_units": units,
        }
        try:
            valid.append(schemas.CooperativeCreate.model_validate(candidate))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                errors.append({"row": number, "field": field, "message": err["msg"]})
    return valid, errors
