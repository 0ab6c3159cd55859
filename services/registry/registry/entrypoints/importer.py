"""Bulk import of cooperatives from CSV or XLSX: every row is validated first; a file with any bad row
imports nothing, and the answer lists each bad row and field.

Reading and row validation are pure (bytes in, models and errors out); the checks against the database
(unknown or already registered kelurahan) are the use case's (`service_layer.cooperatives`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import load_workbook
from pydantic import ValidationError

from registry.entrypoints import schemas

COLUMNS = ("name", "kelurahan_code", "formation", "deed_number", "deed_date", "deed_notary", "business_units")
REQUIRED_COLUMNS = ("name", "kelurahan_code", "formation")
# A file of more rows than the country has kelurahan is a mistake (or an attack on memory): stop early.
MAX_ROWS = 100_000


class ImportFileError(Exception):
    """The file as a whole cannot be read (wrong format, no header, too many rows)."""


@dataclass(frozen=True)
class ImportRow:
    row: int  # as a spreadsheet user sees it: the header is row 1
    cooperative: schemas.CooperativeCreate


def _looks_like_xlsx(filename: str, content: bytes) -> bool:
    if filename.lower().endswith((".xlsx", ".xlsm")):
        return True
    # No telling name: an XLSX is a zip archive.
    return not filename.lower().endswith((".csv", ".txt")) and content[:4] == b"PK\x03\x04"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return value


def read_rows(filename: str, content: bytes) -> list[dict[str, Any]]:
    """The data rows of the first sheet (XLSX) or of the file (CSV) as {column: value}."""
    if _looks_like_xlsx(filename, content):
        try:
            workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a corrupt file (BadZipFile, KeyError...)
            raise ImportFileError(
                f"The file is not a readable XLSX workbook ({type(exc).__name__})."
            ) from exc
        try:
            sheet = workbook.worksheets[0]
            rows_iter = sheet.iter_rows(values_only=True)
            header_row = next(rows_iter, None)
            if header_row is None:
                raise ImportFileError("The workbook's first sheet is empty.")
            header = [str(h).strip().lower() if h is not None else "" for h in header_row]
            rows: list[dict[str, Any]] = []
            for values in rows_iter:
                if not any(v not in (None, "") for v in values):
                    continue
                if len(rows) >= MAX_ROWS:
                    raise ImportFileError(f"The file has more than {MAX_ROWS} rows.")
                rows.append(
                    {header[i]: _cell(v) for i, v in enumerate(values) if i < len(header) and header[i]}
                )
            return rows
        finally:
            workbook.close()
    if filename.lower().endswith((".csv", ".txt")) or not filename.lower().endswith((".xls", ".ods")):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFileError("The CSV file is not UTF-8 text.") from exc
        if "\x00" in text:
            raise ImportFileError("The CSV file contains NUL bytes; it is not a text file.")
        # newline="": the csv module reads the line ends itself, a lone CR included.
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
        out: list[dict[str, Any]] = []
        try:
            # The header is read here, inside the try: it can be as malformed as any row.
            if not reader.fieldnames:
                raise ImportFileError("The CSV file has no header row.")
            for row in reader:
                if len(out) >= MAX_ROWS:
                    raise ImportFileError(f"The file has more than {MAX_ROWS} rows.")
                # Cells beyond the header land under the key None (as a list): they belong to no column.
                cleaned = {
                    str(k).strip().lower(): (v or "").strip()
                    for k, v in row.items()
                    if k is not None and not isinstance(v, list)
                }
                if any(cleaned.values()):
                    out.append(cleaned)
        except csv.Error as exc:
            raise ImportFileError(f"The CSV file cannot be parsed: {exc}.") from exc
        return out
    raise ImportFileError("Upload a .csv or .xlsx file.")


def _delimiter(text: str) -> str:
    """Spreadsheets in an Indonesian locale save CSV with ';' (the comma is the decimal mark); judge
    by the header line, which holds no cell that could contain a separator itself."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)


def _deed_date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return str(value or "")


def validate_rows(rows: list[dict[str, Any]]) -> tuple[list[ImportRow], list[dict[str, Any]]]:
    """Each row as a registration, or the row's errors (row number and field)."""
    valid: list[ImportRow] = []
    errors: list[dict[str, Any]] = []
    if not rows:
        return [], [{"row": 0, "field": "file", "message": "The file has no data rows."}]
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        return [], [{"row": 1, "field": ",".join(missing), "message": "Required columns are missing."}]
    for number, row in enumerate(rows, start=2):
        units_raw = str(row.get("business_units") or "sembako")
        units = [u.strip().lower() for u in units_raw.replace(";", ",").split(",") if u.strip()]
        deed = None
        if any(str(row.get(k) or "").strip() for k in ("deed_number", "deed_date", "deed_notary")):
            deed = {
                "number": str(row.get("deed_number") or ""),
                "date": _deed_date(row.get("deed_date")),
                "notary": str(row.get("deed_notary") or ""),
            }
        candidate = {
            "name": str(row.get("name") or ""),
            "kelurahan_code": str(row.get("kelurahan_code") or ""),
            "formation": str(row.get("formation") or "").strip().lower(),
            "deed": deed,
            "business_units": units,
        }
        try:
            valid.append(ImportRow(number, schemas.CooperativeCreate.model_validate(candidate)))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                errors.append({"row": number, "field": field, "message": err["msg"]})
    return valid, errors
