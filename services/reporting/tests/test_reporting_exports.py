"""Every export opens: CSV parses, XLSX opens with openpyxl, the monthly PDF has its pages and text;
each limited to what the caller may see."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from reporting.domain.periods import DueRule, local_date, zone
from reporting.entrypoints.api import EXPORT_COLUMNS
from reporting_testkit import Coop, Running, days_ago, fresh_kecamatan, utcnow

pytestmark = [pytest.mark.integration, pytest.mark.clock]

WIB = zone("Asia/Jakarta")


async def seed(service: Running) -> tuple[str, Coop, Coop]:
    kec = fresh_kecamatan()
    quiet = Coop(kec, "KKMP Sepi Sekali")
    tricky = Coop(kec, "=HYPERLINK(1) KKMP", kelurahan_code=f"{kec}.1002")
    need_id = str(uuid.uuid4())
    events = [
        quiet.registered(days_ago(200)),
        tricky.registered(days_ago(200)),
        quiet.stalled("gula", 170_000, days_ago(2)),
        quiet.need(need_id, days_ago(6)),
        tricky.need(str(uuid.uuid4()), days_ago(1), kind="training"),
        tricky.sale("beras_medium", "3", 39_000, days_ago(1)),
    ]
    start = service.processed
    for data in events:
        await service.publish(data)
    await service.settle(start + len(events))
    period = DueRule().latest_passed(local_date(utcnow(), WIB))
    response = await service.client.post(
        f"/cooperatives/{tricky.id}/reports",
        headers=service.manager(tricky.id),
        json={"period": str(period), "omzet": 5_000_000, "transactions": 90, "members": 20, "notes": "=cmd"},
    )
    assert response.status_code == 201
    return kec, quiet, tricky


def read_csv(content: bytes) -> list[dict[str, str]]:
    text = content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


async def test_csv_and_xlsx_exports_open_and_hold_the_rows_in_scope(service: Running) -> None:
    kec, quiet, tricky = await seed(service)
    officer = service.officer(kec)
    expected_rows = {"cooperatives": 2, "stalled": 1, "needs": 2, "reports": 1}
    for name, count in expected_rows.items():
        response = await service.client.get(f"/exports/{name}.csv", headers=officer)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert f"kkmp-{name}-" in response.headers["content-disposition"]
        rows = read_csv(response.content)
        assert len(rows) == count, (name, rows)
        assert list(rows[0]) == EXPORT_COLUMNS[name]
        assert {row["kecamatan_code"] for row in rows} == {kec}

        workbook = load_workbook(
            io.BytesIO((await service.client.get(f"/exports/{name}.xlsx", headers=officer)).content)
        )
        sheet = workbook.active
        values = list(sheet.iter_rows(values_only=True))
        assert list(values[0]) == EXPORT_COLUMNS[name] and len(values) == count + 1

    cooperatives = {
        row["cooperative_id"]: row
        for row in read_csv((await service.client.get("/exports/cooperatives.csv", headers=officer)).content)
    }
    assert cooperatives[quiet.id]["stalled_value"] == "170000" and cooperatives[quiet.id]["needs_open"] == "1"
    assert cooperatives[quiet.id]["health_level"] == "tidak_aktif"
    assert cooperatives[tricky.id]["report_status"] == "terlambat"
    # A name that a spreadsheet would run as a formula is written as text.
    assert cooperatives[tricky.id]["name"] == "'=HYPERLINK(1) KKMP"
    stalled = read_csv((await service.client.get("/exports/stalled.csv", headers=officer)).content)
    assert stalled[0]["commodity"] == "gula" and stalled[0]["value"] == "170000"

    # A manager's export holds only its own cooperative; a supplier gets none; a bad name is 404.
    own = read_csv(
        (await service.client.get("/exports/needs.csv", headers=service.manager(quiet.id))).content
    )
    assert {row["cooperative_id"] for row in own} == {quiet.id}
    supplier = await service.client.get(
        "/exports/needs.csv", headers=service.headers("supplier", supplier_id="s")
    )
    assert supplier.status_code == 403
    assert (await service.client.get("/exports/secrets.csv", headers=officer)).status_code == 404
    filtered = read_csv(
        (await service.client.get("/exports/needs.csv", headers=officer, params={"status": "open"})).content
    )
    assert len(filtered) == 2


async def test_monthly_pdf_has_its_pages_and_text(service: Running) -> None:
    kec, quiet, _tricky = await seed(service)
    period = DueRule().latest_passed(local_date(utcnow(), WIB))
    response = await service.client.get(
        "/exports/monthly-report.pdf", headers=service.officer(kec), params={"period": str(period)}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf" and response.content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(response.content))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 4
    assert "Laporan Bulanan KKMP" in pages[0] and "Ringkasan" in pages[0] and "Jumlah koperasi" in pages[0]
    assert "Per kecamatan" in pages[1] and kec in pages[1]
    assert "Grafik" in pages[2] and "Penjualan" in pages[2]
    visits = "\n".join(pages[3:])
    assert "Koperasi yang perlu dikunjungi" in visits
    assert "KKMP Sepi Sekali" in visits and "stok macet" in visits
    # The same document under the portal's path; managers and suppliers get none.
    alias = await service.client.get("/exports/monthly.pdf", headers=service.officer(kec))
    assert alias.status_code == 200 and alias.content.startswith(b"%PDF")
    assert (
        await service.client.get("/exports/monthly-report.pdf", headers=service.manager(quiet.id))
    ).status_code == 403
    bad = await service.client.get(
        "/exports/monthly-report.pdf", headers=service.admin, params={"period": "2025-1"}
    )
    assert bad.status_code == 422
