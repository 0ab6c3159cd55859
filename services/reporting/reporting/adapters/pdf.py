"""The department's monthly PDF report (reportlab), in Bahasa Indonesia.

Four parts, each starting on its own page: the summary (ringkasan), the per-kecamatan table, the
charts (weekly sales and stalled stock, health distribution), and the cooperatives needing a visit.
It is drawn from the same figures the dashboards serve, so the paper and the screen agree.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape

from kkmp_shared import locale_id
from kkmp_shared.locale_id import periode
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

GREEN, AMBER, RED = colors.HexColor("#2e7d32"), colors.HexColor("#f9a825"), colors.HexColor("#c62828")


@dataclass(frozen=True)
class MonthlyReportData:
    area: str
    period: str
    due_date: date
    generated_at: datetime
    summary: dict[str, Any]
    rates: dict[str, Any]
    kecamatan: list[dict[str, Any]]
    weekly: list[dict[str, Any]]
    visits: list[dict[str, Any]]


def rupiah(value: int | float | None) -> str:
    return locale_id.rupiah(value, empty="-")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{locale_id.number(value * 100, 1, keep_zeros=True)}%"


def hours(value: float | None) -> str:
    return "-" if value is None else f"{locale_id.number(value, 1, keep_zeros=True)} jam"


def _table(rows: list[list[Any]], widths: list[float] | None = None, header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 8),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
    ]
    if header:
        style += [
            ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ]
    table.setStyle(TableStyle(style))
    return table


def _summary_rows(data: MonthlyReportData) -> list[list[str]]:
    s, rates = data.summary, data.rates["city"]
    health = s["cooperatives"]["by_health"]
    return [
        ["Ukuran", "Nilai"],
        ["Jumlah koperasi (KKMP)", str(s["cooperatives"]["total"])],
        [
            "Aktif / kurang aktif / tidak aktif",
            f"{health['aktif']} / {health['kurang_aktif']} / {health['tidak_aktif']}",
        ],
        ["Kebutuhan terbuka (belum ditanggapi)", f"{s['needs']['open']} ({s['needs']['unanswered']})"],
        ["Median waktu tanggap kebutuhan", hours(s["needs"]["median_response_hours"])],
        ["Komoditas stok macet", str(s["stock"]["stalled_items"])],
        ["Nilai stok macet", rupiah(s["stock"]["stalled_value"])],
        ["Stok menipis / habis", f"{s['stock']['low_items']} / {s['stock']['stockout_items']}"],
        [
            f"Laporan {periode(data.period)}: masuk / diharapkan",
            f"{rates['submitted']} / {rates['expected']}",
        ],
        ["Kelengkapan laporan", percent(rates["completeness_rate"])],
        ["Ketepatan waktu laporan", percent(rates["on_time_rate"])],
    ]


def _weekly_chart(weekly: list[dict[str, Any]]) -> Drawing:
    drawing = Drawing(24 * cm, 7 * cm)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 2 * cm, 1.2 * cm, 20 * cm, 5 * cm
    chart.data = [
        [w["value"] / 1_000_000 for w in weekly] or [0],
        [w["stalled_value"] / 1_000_000 for w in weekly] or [0],
    ]
    chart.categoryAxis.categoryNames = [w["week_start"].strftime("%d/%m") for w in weekly] or [""]
    chart.categoryAxis.labels.fontSize = 6
    chart.valueAxis.labels.fontSize = 6
    chart.valueAxis.valueMin = 0
    chart.bars[0].fillColor = GREEN
    chart.bars[1].fillColor = RED
    drawing.add(chart)
    drawing.add(
        String(2 * cm, 6.5 * cm, "Penjualan dan nilai stok macet per minggu (juta rupiah)", fontSize=9)
    )
    legend = Legend()
    legend.x, legend.y = 18 * cm, 6.8 * cm
    legend.fontSize = 7
    legend.colorNamePairs = [(GREEN, "Penjualan"), (RED, "Stok macet")]
    drawing.add(legend)
    return drawing


def _health_chart(kecamatan: list[dict[str, Any]]) -> Drawing:
    drawing = Drawing(24 * cm, 8 * cm)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 2 * cm, 2.2 * cm, 20 * cm, 5 * cm
    rows = [k for k in kecamatan if k["cooperatives"]["total"]] or kecamatan[:1]
    chart.data = [
        [k["cooperatives"]["by_health"][level] for k in rows] or [0]
        for level in ("aktif", "kurang_aktif", "tidak_aktif")
    ]
    chart.categoryAxis.categoryNames = [k["name"][:12] for k in rows] or [""]
    chart.categoryAxis.labels.fontSize = 5
    chart.categoryAxis.labels.angle = 45
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.valueAxis.labels.fontSize = 6
    chart.valueAxis.valueMin = 0
    chart.groupSpacing = 2
    for index, colour in enumerate((GREEN, AMBER, RED)):
        chart.bars[index].fillColor = colour
    drawing.add(chart)
    drawing.add(String(2 * cm, 7.5 * cm, "Kesehatan koperasi per kecamatan", fontSize=9))
    legend = Legend()
    legend.x, legend.y = 17 * cm, 7.8 * cm
    legend.fontSize = 7
    legend.colorNamePairs = [(GREEN, "Aktif"), (AMBER, "Kurang aktif"), (RED, "Tidak aktif")]
    drawing.add(legend)
    return drawing


def render_monthly_report(data: MonthlyReportData) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.5 * cm,
        title=f"Laporan Bulanan KKMP {periode(data.period)}",
        author="Dinkopdag - KKMP Reporting",
    )
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["Normal"], fontSize=8, leading=10)
    story: list[Any] = [
        Paragraph(f"Laporan Bulanan KKMP - {escape(data.area)}", styles["Title"]),
        Paragraph(
            f"Periode {periode(data.period)} (batas laporan {data.due_date:%d-%m-%Y}); "
            f"posisi data {data.generated_at:%d-%m-%Y %H:%M} UTC.",
            styles["Normal"],
        ),
        Spacer(1, 0.4 * cm),
        Paragraph("Ringkasan", styles["Heading2"]),
        _table(_summary_rows(data), [12 * cm, 6 * cm]),
        PageBreak(),
        Paragraph("Per kecamatan", styles["Heading2"]),
    ]
    rate_by_code = {row["kecamatan_code"]: row for row in data.rates["kecamatan"]}
    rows = [
        [
            "Kecamatan",
            "Koperasi",
            "Aktif",
            "Kurang",
            "Tidak",
            "Kebutuhan",
            "Median tanggap",
            "Stok macet",
            "Nilai macet",
            "Laporan masuk",
            "Tepat waktu",
        ]
    ]
    for k in data.kecamatan:
        rate = rate_by_code.get(k["kecamatan_code"], {})
        health = k["cooperatives"]["by_health"]
        rows.append(
            [
                k["name"],
                k["cooperatives"]["total"],
                health["aktif"],
                health["kurang_aktif"],
                health["tidak_aktif"],
                k["needs"]["open"],
                hours(k["needs"]["median_response_hours"]),
                k["stock"]["stalled_items"],
                rupiah(k["stock"]["stalled_value"]),
                f"{rate.get('submitted', 0)}/{rate.get('expected', 0)}",
                percent(rate.get("on_time_rate")),
            ]
        )
    story += [
        _table(
            rows,
            [
                4.2 * cm,
                1.8 * cm,
                1.5 * cm,
                1.5 * cm,
                1.5 * cm,
                2 * cm,
                2.6 * cm,
                2 * cm,
                3.2 * cm,
                2.4 * cm,
                2.2 * cm,
            ],
        ),
        PageBreak(),
        Paragraph("Grafik", styles["Heading2"]),
        _weekly_chart(data.weekly),
        Spacer(1, 0.5 * cm),
        _health_chart(data.kecamatan),
        PageBreak(),
        Paragraph("Koperasi yang perlu dikunjungi", styles["Heading2"]),
    ]
    if data.visits:
        visit_rows: list[list[Any]] = [["Koperasi", "Kelurahan", "Kecamatan", "Skor", "Alasan"]]
        for v in data.visits:
            visit_rows.append(
                [
                    Paragraph(escape(v["name"]), small),
                    Paragraph(escape(v.get("kelurahan_name") or v["kelurahan_code"]), small),
                    Paragraph(escape(v["kecamatan_name"]), small),
                    "-" if v["health_score"] is None else f"{v['health_score']:.0f}",
                    Paragraph(escape("; ".join(v["reasons"])), small),
                ]
            )
        story.append(_table(visit_rows, [6 * cm, 3.5 * cm, 3.5 * cm, 1.5 * cm, 12 * cm]))
    else:
        story.append(Paragraph("Tidak ada koperasi yang perlu dikunjungi bulan ini.", styles["Normal"]))
    document.build(story)
    return buffer.getvalue()
