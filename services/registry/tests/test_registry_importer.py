"""Unit tests of the cooperative import: reading CSV and XLSX, and validating every row."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import Workbook
from registry.entrypoints.importer import ImportFileError, read_rows, validate_rows

pytestmark = pytest.mark.unit

HEADER = "name,kelurahan_code,formation,deed_number,deed_date,deed_notary,business_units\n"


def xlsx(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_a_good_csv_gives_one_registration_per_row() -> None:
    content = (
        HEADER
        + "KKMP Kebraon,35.78.01.1002,new,AHU-0012,2025-07-01,Notaris Sari,sembako;lpg\n"
        + "KKMP Kedurus,35.78.01.1003,revitalized,,,,\n"
    ).encode()
    valid, errors = validate_rows(read_rows("koperasi.csv", content))
    assert errors == []
    assert [(r.row, r.cooperative.kelurahan_code) for r in valid] == [
        (2, "35.78.01.1002"),
        (3, "35.78.01.1003"),
    ]
    first, second = (r.cooperative for r in valid)
    assert first.business_units == ["sembako", "lpg"]
    assert (
        first.deed is not None and first.deed.date == date(2025, 7, 1) and first.deed.notary == "Notaris Sari"
    )
    assert second.deed is None and second.business_units == ["sembako"]  # default unit
    assert second.formation == "revitalized"


def test_an_indonesian_locale_csv_with_semicolons_and_a_bom_reads_the_same() -> None:
    content = (
        "\ufeffname;kelurahan_code;formation;business_units\nKKMP Kebraon;35.78.01.1002;New;sembako,apotek\n"
    )
    valid, errors = validate_rows(read_rows("koperasi.csv", content.encode()))
    assert errors == []
    assert valid[0].cooperative.formation == "new"
    assert valid[0].cooperative.business_units == ["sembako", "apotek"]


def test_every_bad_row_and_field_is_reported() -> None:
    content = (
        HEADER
        + "KKMP Baik,35.78.01.1002,new,,,,\n"
        + "K,35.78.01.1003,new,,,,\n"  # name too short
        + "KKMP Tiga,3578011004,merger,,,,\n"  # bad code, bad formation
        + "KKMP Empat,35.78.01.1005,new,AHU-1,2099-01-01,Notaris,\n"  # deed in the future
        + "KKMP Lima,35.78.01.1001,new,,,,kapal_selam\n"  # unknown unit
    ).encode()
    valid, errors = validate_rows(read_rows("koperasi.csv", content))
    assert [r.row for r in valid] == [2]
    found = {(e["row"], e["field"]) for e in errors}
    assert found == {
        (3, "name"),
        (4, "kelurahan_code"),
        (4, "formation"),
        (5, "deed.date"),
        (6, "business_units.0"),
    }
    assert all(e["message"] for e in errors)


def test_missing_required_columns_are_reported_once() -> None:
    valid, errors = validate_rows(read_rows("x.csv", b"name,formation\nKKMP,new\n"))
    assert valid == []
    assert errors == [{"row": 1, "field": "kelurahan_code", "message": "Required columns are missing."}]


def test_an_empty_file_has_no_data_rows() -> None:
    assert validate_rows(read_rows("x.csv", HEADER.encode()))[1][0]["field"] == "file"
    with pytest.raises(ImportFileError, match="no header"):
        read_rows("x.csv", b"")


def test_cells_beyond_the_header_and_blank_lines_are_ignored() -> None:
    content = b"name,kelurahan_code,formation\nKKMP Satu,35.78.01.1002,new,extra,cells\n,,\n"
    rows = read_rows("x.csv", content)
    assert rows == [{"name": "KKMP Satu", "kelurahan_code": "35.78.01.1002", "formation": "new"}]


def test_a_good_xlsx_reads_dates_and_numbers_as_a_spreadsheet_holds_them() -> None:
    content = xlsx(
        [
            [
                "Name",
                "Kelurahan_Code",
                "Formation",
                "Deed_Number",
                "Deed_Date",
                "Deed_Notary",
                "Business_Units",
            ],
            [
                "KKMP Kebraon",
                "35.78.01.1002",
                "new",
                12,
                datetime(2025, 7, 1),
                "Notaris Sari",
                "sembako, lpg",
            ],
            [None, None, None, None, None, None, None],
            ["KKMP Kedurus", "35.78.01.1003", "revitalized", None, None, None, None],
        ]
    )
    valid, errors = validate_rows(read_rows("koperasi.xlsx", content))
    assert errors == []
    assert [r.row for r in valid] == [2, 3]
    deed = valid[0].cooperative.deed
    assert deed is not None and deed.number == "12" and deed.date == date(2025, 7, 1)
    assert valid[0].cooperative.business_units == ["sembako", "lpg"]


def test_an_xlsx_is_recognised_without_its_extension() -> None:
    content = xlsx([["name", "kelurahan_code", "formation"], ["KKMP Satu", "35.78.01.1002", "new"]])
    assert read_rows("upload", content)[0]["name"] == "KKMP Satu"


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("koperasi.xlsx", b"name,kelurahan_code\n", "not a readable XLSX"),
        ("koperasi.xlsx", b"PK\x03\x04garbage", "not a readable XLSX"),
        ("koperasi.csv", b"\xff\xfe\x00n\x00a", "not UTF-8"),
        ("koperasi.csv", b"name,kelurahan_code\x00,formation\n", "NUL"),
        ("koperasi.xls", b"\xd0\xcf\x11\xe0", "Upload a .csv or .xlsx"),
    ],
)
def test_unreadable_files_are_refused_as_a_whole(filename: str, content: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        read_rows(filename, content)


def test_a_csv_with_lone_carriage_returns_is_read_as_lines() -> None:
    """Old Mac line ends, and the bytes schemathesis sent (which gave a 500: the csv module refused
    a lone CR in the header, outside the handling of its errors)."""
    assert read_rows("koperasi.csv", b"name,kelurahan_code,formation\rKKMP Satu,35.78.01.1002,new\r") == [
        {"name": "KKMP Satu", "kelurahan_code": "35.78.01.1002", "formation": "new"}
    ]
    fuzzed = read_rows("file", b"\x1c\xc2\x9c\xc3\xb3h<\r\xf1\x85\x86\xa2\xc3\x91-{")
    _, errors = validate_rows(fuzzed)
    assert [e["message"] for e in errors] == ["Required columns are missing."]


def test_a_csv_header_the_csv_module_cannot_parse_is_refused_as_a_whole() -> None:
    with pytest.raises(ImportFileError, match="cannot be parsed"):
        read_rows("koperasi.csv", b"a" * 200_000 + b"\n")


def test_an_empty_workbook_is_refused() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        read_rows("koperasi.xlsx", xlsx([]))
