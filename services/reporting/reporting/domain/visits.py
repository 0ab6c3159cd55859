"""Which cooperatives an officer should visit this month, and why (the monthly PDF's list)."""

from __future__ import annotations

from typing import Any

from reporting.domain.periods import Period


def visit_reasons(row: dict[str, Any], unanswered: int, period: Period) -> list[str]:
    """Not `aktif`, stalled stock, an unanswered need, or no report for the period: each spelled out."""
    reasons = []
    if row["health_level"] in ("tidak_aktif", "kurang_aktif"):
        reasons.append(f"kesehatan {row['health_level'].replace('_', ' ')} ({row['health_score']:.0f})")
    if row["stalled_items"]:
        reasons.append(f"{row['stalled_items']} stok macet (Rp{row['stalled_value']:,})".replace(",", "."))
    if unanswered:
        reasons.append(f"{unanswered} kebutuhan belum ditanggapi")
    if row["report_status"] == "belum" and row["status"] != "dissolved":
        reasons.append(f"laporan {period} belum masuk")
    return reasons


def visit_list(
    rows: list[dict[str, Any]], unanswered: dict[str, int], period: Period, limit: int = 200
) -> list[dict[str, Any]]:
    """The cooperatives with a reason to visit, worst health first (then the largest stalled value)."""
    visits = []
    for row in rows:
        reasons = visit_reasons(row, unanswered.get(row["cooperative_id"], 0), period)
        if reasons:
            visits.append({**row, "reasons": reasons})
    visits.sort(
        key=lambda v: (v["health_score"] if v["health_score"] is not None else -1, -v["stalled_value"])
    )
    return visits[:limit]
