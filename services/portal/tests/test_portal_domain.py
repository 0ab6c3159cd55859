"""Dashboard figures, error messages and identity (portal.domain.dashboard, .messages, .identity)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from portal.domain import dashboard as dash
from portal.domain import geo, proposals
from portal.domain.identity import MalformedToken, User, token_claims
from portal.domain.messages import field_errors, message_for

pytestmark = [pytest.mark.unit, pytest.mark.clock]

NOW = datetime(2025, 6, 18, 5, 0, tzinfo=UTC)  # a Wednesday


def kec(code: str, total: int, aktif: int, stalled_value: float) -> dict:
    return {
        "kecamatan_code": code,
        "cooperatives": {
            "total": total,
            "by_health": {"aktif": aktif, "kurang_aktif": total - aktif, "tidak_aktif": 0},
        },
        "needs": {"open": 2},
        "stock": {"stalled_value": stalled_value, "stalled_items": 1},
        "reports": {"on_time_rate": 0.5},
    }


def test_kecamatan_figures_accept_code_or_kecamatan_code() -> None:
    rows = [kec("35.78.01", 5, 4, 100.0), {"code": "35.78.02", "cooperatives": {"total": 0}}]
    figures = dash.kecamatan_figures(rows)
    assert figures["35.78.01"].active_share == pytest.approx(0.8)
    assert figures["35.78.02"].active_share is None
    assert figures["35.78.02"].stalled_value == 0.0


def small_map() -> geo.SvgMap:
    square = {
        "type": "Polygon",
        "coordinates": [[[112.0, -7.0], [112.1, -7.0], [112.1, -7.1], [112.0, -7.0]]],
    }
    return geo.build_map(
        {
            "features": [
                {"properties": {"code": "35.78.01", "name": "Satu"}, "geometry": square},
                {"properties": {"code": "35.78.02", "name": "Dua"}, "geometry": square},
            ]
        }
    )


def test_colour_map_by_health() -> None:
    view = dash.colour_map(small_map(), dash.kecamatan_figures([kec("35.78.01", 5, 5, 0)]), "kesehatan")
    fills = {a.code: a.fill for a in view.areas}
    assert fills == {"35.78.01": geo.HEALTH_RAMP[4], "35.78.02": geo.NO_DATA}
    titles = {a.code: a.title for a in view.areas}
    assert titles["35.78.01"] == "Kec. Satu: 5 dari 5 koperasi aktif (100%), 0 tidak aktif"
    assert "belum ada data" in titles["35.78.02"]
    assert view.legend[-1].text == "Belum ada data"


def test_colour_map_by_stalled_value() -> None:
    figures = dash.kecamatan_figures([kec("35.78.01", 5, 1, 3_700_000), kec("35.78.02", 5, 1, 0)])
    view = dash.colour_map(small_map(), figures, "macet")
    fills = {a.code: a.fill for a in view.areas}
    assert fills["35.78.02"] == geo.STALLED_RAMP[0]
    assert fills["35.78.01"] == geo.STALLED_RAMP[4]
    assert "Rp3.700.000" in next(a.title for a in view.areas if a.code == "35.78.01")
    assert [e.text for e in view.legend][:2] == ["Tidak ada", "Rp0–Rp1 jt"]


def test_unknown_map_mode_falls_back_to_health() -> None:
    assert dash.colour_map(small_map(), {}, "anything").mode == "kesehatan"


def test_points_link_registered_cooperatives() -> None:
    proj = small_map().projection
    points = dash.cooperative_points(
        proj,
        [("35.78.01.1001", "Satu", -7.05, 112.05), ("35.78.01.1002", "Dua", -7.06, 112.06)],
        {"35.78.01.1001": {"id": "c1", "name": "KKMP Satu"}},
        {"c1": "tidak_aktif"},
    )
    assert points[0].href == "/koperasi/c1" and points[0].css == "level-tidak_aktif"
    assert "Tidak aktif" in points[0].title
    assert points[1].href is None and points[1].css == "no-coop"


def need(
    created: datetime, acknowledged: datetime | None = None, status: str = "open", **extra: object
) -> dict:
    history = [{"status": "open", "at": created.isoformat()}]
    if acknowledged:
        history.append({"status": "acknowledged", "at": acknowledged.isoformat()})
    return {"created_at": created.isoformat(), "status": status, "history": history, **extra}


def test_first_response_from_history_or_fields() -> None:
    t0 = NOW - timedelta(days=3)
    assert dash.need_first_response_at(need(t0, t0 + timedelta(hours=5), "acknowledged")) == t0 + timedelta(
        hours=5
    )
    assert dash.need_first_response_at({"acknowledged_at": t0.isoformat()}) == t0
    assert dash.need_first_response_at(need(t0)) is None


def test_needs_on_time_series() -> None:
    # NOW is Wednesday 18 June 12.00 WIB: the four weeks shown start 26 May, 2, 9 and 16 June.
    rows = [
        need(NOW - timedelta(days=8), NOW - timedelta(days=8, hours=-3), "acknowledged"),  # 3 h: on time
        need(NOW - timedelta(days=8), NOW - timedelta(days=5), "acknowledged"),  # 72 h: late
        need(NOW - timedelta(days=9)),  # Monday 9 June, never answered, target long passed: late
        need(NOW - timedelta(hours=2)),  # unanswered but still inside its target: not decided yet
        need(NOW - timedelta(days=60), NOW - timedelta(days=60, hours=-1), "resolved"),  # before the window
    ]
    series = dash.needs_on_time_series(rows, NOW, weeks=4)
    assert series.labels == ["26 Mei", "2 Jun", "9 Jun", "16 Jun"]
    assert series.values == [None, None, 33.3, None]


def test_week_start_is_monday_in_jakarta() -> None:
    # Sunday 20:00 UTC is Monday 03:00 in Jakarta: a new week there.
    sunday_evening_utc = datetime(2025, 6, 15, 20, 0, tzinfo=UTC)
    start = dash.week_start(sunday_evening_utc)
    assert start.weekday() == 0 and start.day == 16 and start.hour == 0


def test_stalled_by_kecamatan_ranks_and_names() -> None:
    figures = dash.kecamatan_figures(
        [kec("35.78.01", 1, 1, 10), kec("35.78.02", 1, 1, 30), kec("35.78.03", 1, 1, 0)]
    )
    series = dash.stalled_by_kecamatan(figures, {"35.78.01": "Satu", "35.78.02": "Dua"})
    assert series.labels == ["Dua", "Satu"] and series.values == [30, 10]


def test_weekly_series_shapes() -> None:
    a = dash.weekly_series({"sales": [{"week_start": "2025-06-09", "value": 5}]}, "sales")
    b = dash.weekly_series({"weeks": [{"week_start": "2025-06-09", "sales": 5}]}, "sales")
    assert a == b and a is not None and a.labels == ["9 Jun"] and a.values == [5.0]
    assert dash.weekly_series({"weeks": []}, "sales") is None
    assert dash.weekly_series(None, "sales") is None


def test_attention_ranks_inactive_stalled_and_waiting() -> None:
    health = [
        {"cooperative_id": "a", "level": "tidak_aktif"},
        {"cooperative_id": "b", "level": "aktif"},
        {"cooperative_id": "c", "level": "kurang_aktif"},
    ]
    stalled = [{"cooperative_id": "a", "value": 2_000_000}, {"cooperative_id": "d", "value": 500_000}]
    open_needs = [
        need(NOW - timedelta(days=10), cooperative_id="c"),
        need(NOW - timedelta(hours=3), cooperative_id="b"),
    ]
    ranked = dash.cooperatives_needing_attention(health, stalled, open_needs, NOW)
    ids = [a.cooperative_id for a in ranked]
    assert ids[0] == "a"
    assert "b" not in ids  # active, and its need is still within the target
    assert set(ids) == {"a", "c", "d"}
    reasons_a = next(a for a in ranked if a.cooperative_id == "a").reasons
    assert reasons_a == ["Kesehatan: Tidak aktif", "1 stok macet (Rp2.000.000)"]
    assert any(
        "belum ditanggapi 10 hari" in r for r in next(a for a in ranked if a.cooperative_id == "c").reasons
    )


def test_oldest_first() -> None:
    rows = [
        need(NOW - timedelta(days=1), id="new"),
        need(NOW - timedelta(days=9), id="old"),
        {"id": "undated"},
    ]
    assert [n["id"] for n in dash.oldest_first(rows)] == ["old", "new", "undated"]


# --- messages ---


def test_messages_by_code_then_status() -> None:
    assert (
        message_for(409, "insufficient_stock")
        == "Stok tidak cukup: jumlah yang dikeluarkan melebihi stok yang ada."
    )
    assert message_for(409, "something_new").startswith("Permintaan bertentangan")
    assert (
        message_for(502, None, "inventory")
        == "Layanan stok sedang mengalami gangguan. Coba lagi beberapa saat lagi."
    )
    assert message_for(429, None).startswith("Terlalu banyak")


def test_field_errors_from_pydantic_and_simple_shapes() -> None:
    details = [
        {"loc": ["body", "quantity"], "type": "greater_than", "ctx": {"gt": 0}, "msg": "..."},
        {"field": "commodity", "message": "unknown", "type": "enum"},
        {"field": "description", "type": "missing"},
        {"loc": ["body", "weird"], "type": "who_knows"},
    ]
    errors = field_errors(details)
    assert errors == {
        "quantity": "Jumlah harus lebih dari 0.",
        "commodity": "Komoditas pilihan tidak dikenal.",
        "description": "Uraian wajib diisi.",
        "weird": "Weird isian tidak valid.",
    }
    assert field_errors(None) == {}
    assert field_errors("text") == {}


# --- identity ---


def jwt(claims: dict) -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'RS256'})}.{b64(claims)}.signature"


def test_claims_and_user() -> None:
    token = jwt({"sub": "u1", "role": "coop_manager", "cooperative_id": "c9", "username": "siti"})
    user = User.from_claims("typed-name", token_claims(token))
    assert user.username == "siti" and user.is_manager and not user.is_dinkopdag
    assert user.may_open_cooperative("c9") and not user.may_open_cooperative("c8")
    assert User.from_session(user.to_session()) == user


def test_officers_may_open_any_cooperative_page() -> None:
    officer = User.from_claims(
        "budi", token_claims(jwt({"sub": "u2", "role": "officer", "kecamatan_codes": ["35.78.01"]}))
    )
    assert officer.is_dinkopdag and officer.may_open_cooperative("anything")
    supplier = User.from_claims(
        "cv", token_claims(jwt({"sub": "u3", "role": "supplier", "supplier_id": "s1"}))
    )
    assert not supplier.may_open_cooperative("anything")


@pytest.mark.parametrize(
    "token", ["", "abc", "a.!!!.c", "a." + base64.urlsafe_b64encode(b"[1]").decode() + ".c"]
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(MalformedToken):
        token_claims(token)


# --- proposals ---


def proposal(
    status: str = "proposed", from_decision: str | None = None, to_decision: str | None = None
) -> dict:
    return {
        "status": status,
        "from_cooperative_id": "a",
        "to_cooperative_id": "b",
        "from_side": {"decision": from_decision},
        "to_side": {"decision": to_decision},
    }


def test_who_still_has_to_answer_a_proposal() -> None:
    assert proposals.awaits_answer(proposal(), "a") and proposals.awaits_answer(proposal(), "b")
    half = proposal(to_decision="accept")
    assert proposals.awaits_answer(half, "a")
    assert not proposals.awaits_answer(half, "b")
    assert proposals.awaits_answer(half, None)  # an officer sees it still open
    assert not proposals.awaits_answer(proposal("accepted", "accept", "accept"), None)
    assert not proposals.awaits_answer(proposal("declined", "decline"), "b")
    assert not proposals.awaits_answer(proposal(), "c")  # not one of its sides
    assert proposals.involves(proposal(), "a") and not proposals.involves(proposal(), "c")


def test_server_errors_name_the_service_whatever_their_code() -> None:
    assert message_for(503, "unavailable", "reporting").startswith(
        "Layanan laporan sedang mengalami gangguan"
    )
    assert message_for(503, "auth_unavailable", "inventory").startswith("Layanan akun")
