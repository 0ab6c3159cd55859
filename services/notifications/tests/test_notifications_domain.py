"""Unit tests of the pure rules: formats, templates, routing, repeat-window keys, delivery policy."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from notifications.domain.delivery import (
    TargetRejected,
    backoff_delay,
    check_addresses,
    check_email,
    http_status_retryable,
    is_internal_address,
    next_outcome,
    parse_webhook_url,
    sign,
    verify_signature,
)
from notifications.domain.digest import digest_due, latest_digest_boundary
from notifications.domain.events import ROUTABLE_EVENT_TYPES, routable_model
from notifications.domain.formatting import in_sentence, number, periode, rupiah, rupiah_approx, tanggal
from notifications.domain.routing import (
    CONTRACT_RULES,
    RoutingRule,
    Target,
    condition_key,
    event_kecamatans,
    targets,
)
from notifications.domain.templates import (
    TEMPLATES,
    CooperativeName,
    DigestLine,
    Names,
    render,
    render_digest,
)

pytestmark = [pytest.mark.unit, pytest.mark.clock]

NAMES = Names(
    cooperatives={
        "c1": CooperativeName("KKMP Ketintang", "Ketintang"),
        "c2": CooperativeName("KKMP Gayungan"),
    },
    commodities={"beras_medium": "Beras medium", "lpg_3kg": "LPG 3 kg", "gula": "Gula pasir"},
    kelurahan={"35.78.22.1001": "Gayungan"},
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8_100_000, "Rp8,1 juta"),
        (12_000_000, "Rp12 juta"),
        (250_400_000, "Rp250 juta"),
        (1_500_000_000, "Rp1,5 miliar"),
        (850_000, "Rp850.000"),
        (0, "Rp0"),
    ],
)
def test_rupiah_approx(value: int, expected: str) -> None:
    assert rupiah_approx(value) == expected


def test_exact_formats() -> None:
    assert rupiah(17500) == "Rp17.500"
    assert rupiah(1234567) == "Rp1.234.567"
    assert number(Decimal("120.000")) == "120"
    assert number(Decimal("1250.5")) == "1.250,5"
    assert number(Decimal("0.333"), 1) == "0,3"
    assert tanggal(date(2026, 1, 12)) == "12 Januari 2026"
    # 20:00 UTC on 31 December is already 1 January in Surabaya (WIB, UTC+7).
    assert tanggal(datetime(2025, 12, 31, 20, 0, tzinfo=UTC)) == "1 Januari 2026"
    assert periode("2026-03") == "Maret 2026"
    assert in_sentence("Beras medium") == "beras medium"
    assert in_sentence("LPG 3 kg") == "LPG 3 kg"


def test_stalled_message_is_the_contract_example() -> None:
    message = render(
        "stock.stalled.v1",
        {
            "cooperative_id": "c1",
            "kelurahan_code": "35.78.22.1004",
            "commodity": "beras_medium",
            "on_hand": Decimal("120"),
            "unit": "kg",
            "days_since_sale": 21,
            "value": 8_100_000,
        },
        NAMES,
    )
    assert (
        message.body
        == "Stok beras medium di KKMP Ketintang tidak terjual selama 21 hari (120 kg, ± Rp8,1 juta)."
    )
    assert message.title == "Stok macet: Beras medium"
    assert message.link("http://portal:8000/") == "http://portal:8000/koperasi/c1"


def test_unknown_cooperative_is_named_by_its_kelurahan() -> None:
    message = render(
        "need.submitted.v1",
        {
            "cooperative_id": "zz",
            "kelurahan_code": "35.78.22.1001",
            "need_id": "n1",
            "kind": "supply",
            "commodity": "lpg_3kg",
            "quantity": Decimal("200"),
            "unit": "tabung",
            "description": "Stok LPG kosong",
            "needed_by": date(2026, 2, 3),
        },
        NAMES,
    )
    assert "KKMP Gayungan mengajukan kebutuhan pasokan LPG 3 kg 200 tabung" in message.body
    assert "3 Februari 2026" in message.body
    assert message.path == "/kebutuhan/n1"


def test_every_routable_type_renders_in_indonesian() -> None:
    for event_type in ROUTABLE_EVENT_TYPES:
        assert event_type in TEMPLATES, event_type
        model = routable_model(event_type)
        assert model is not None
        message = render(event_type, {"cooperative_id": "c1"}, NAMES)
        assert message.title and message.body


def test_redistribution_names_both_cooperatives() -> None:
    message = render(
        "redistribution.proposed.v1",
        {
            "cooperative_id": "c1",
            "from_cooperative_id": "c1",
            "to_cooperative_id": "c2",
            "commodity": "gula",
            "quantity": Decimal("50"),
            "unit": "kg",
            "distance_km": 2.345,
        },
        NAMES,
    )
    assert "dari KKMP Ketintang ke KKMP Gayungan (± 2,3 km)" in message.body


def test_digest_lists_and_truncates() -> None:
    lines = [DigestLine(f"Judul {i}", f"Isi {i}", datetime(2026, 1, 1, tzinfo=UTC)) for i in range(5)]
    message = render_digest(lines, 3, datetime(2026, 1, 2, 0, 0, tzinfo=UTC))
    assert message.title == "Ringkasan harian 2 Januari 2026: 5 pemberitahuan"
    assert message.body.count("\u2022") == 3 and "dan 2 pemberitahuan lainnya" in message.body


def test_contract_table_as_rules() -> None:
    stalled = [r for r in CONTRACT_RULES if r.event_type == "stock.stalled.v1"]
    data = {"cooperative_id": "c1", "kecamatan_code": "35.78.22"}
    assert targets(stalled, data) == [
        Target("cooperative_managers", "c1"),
        Target("officers_in_scope", "35.78.22"),
    ]
    proposal = [r for r in CONTRACT_RULES if r.event_type == "redistribution.proposed.v1"]
    assert targets(proposal, {"cooperative_id": "c1", "to_cooperative_id": "c2"}) == [
        Target("cooperative_managers", "c1"),
        Target("cooperative_managers", "c2"),
    ]
    health = [r for r in CONTRACT_RULES if r.event_type == "cooperative.health_changed.v1"]
    assert targets(health, {"kecamatan_code": "k", "new_level": "kurang_aktif"}) == []
    assert targets(health, {"kecamatan_code": "k", "new_level": "tidak_aktif"}) == [
        Target("officers_in_scope", "k")
    ]


def test_rules_skip_disabled_and_empty_fields() -> None:
    rules = [
        RoutingRule("x", "cooperative_managers", enabled=False),
        RoutingRule("x", "supplier"),
        RoutingRule("x", "admins"),
    ]
    assert targets(rules, {"cooperative_id": "c1", "supplier_id": None}) == [Target("admins", None)]


def test_condition_keys() -> None:
    data = {"cooperative_id": "c1", "commodity": "gula"}
    assert condition_key("stock.stalled.v1", data) == "stock.stalled.v1|c1|gula"
    assert condition_key("stock.low.v1", data) != condition_key("stock.stalled.v1", data)
    assert condition_key("need.submitted.v1", data) is None
    assert condition_key("stock.stalled.v1", {"cooperative_id": "c1"}) is None
    assert event_kecamatans({"kecamatan_code": "a", "to_kecamatan_code": "b"}) == ["a", "b"]


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    assert backoff_delay(1, base_s=2, cap_s=60, rand=0.0) == 1.0
    assert backoff_delay(1, base_s=2, cap_s=60, rand=0.999) == pytest.approx(2.0, abs=0.01)
    assert backoff_delay(3, base_s=2, cap_s=60, rand=0.0) == 4.0
    assert backoff_delay(20, base_s=2, cap_s=60, rand=0.999) <= 60
    assert next_outcome(succeeded=False, retryable=True, attempts=2, max_attempts=3) == "retry"
    assert next_outcome(succeeded=False, retryable=True, attempts=3, max_attempts=3) == "failed"
    assert next_outcome(succeeded=False, retryable=False, attempts=1, max_attempts=3) == "failed"
    assert next_outcome(succeeded=True, retryable=False, attempts=3, max_attempts=3) == "delivered"
    assert http_status_retryable(503) and http_status_retryable(429)
    assert not http_status_retryable(404) and not http_status_retryable(301)


def test_signature_round_trip() -> None:
    body = b'{"id":"1"}'
    header = sign("rahasia", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature("rahasia", body, header)
    assert not verify_signature("lain", body, header)
    assert not verify_signature("rahasia", body + b" ", header)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "http://", "https://user:pw@example.com/", "http://[::1"],
)
def test_webhook_url_shape_refused(url: str) -> None:
    with pytest.raises(TargetRejected):
        parse_webhook_url(url)


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.1.10", True),
        ("172.16.0.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:127.0.0.1", True),
        ("224.0.0.1", True),
        ("93.184.216.34", False),
        ("2606:2800:220:1:248:1893:25c8:1946", False),
    ],
)
def test_internal_addresses(address: str, internal: bool) -> None:
    assert is_internal_address(address) is internal


def test_target_checks() -> None:
    target = parse_webhook_url("https://gateway.example.com/hook?x=1")
    assert (target.host, target.port) == ("gateway.example.com", 443)
    check_addresses(target, ["93.184.216.34"])
    with pytest.raises(TargetRejected):
        check_addresses(target, ["93.184.216.34", "10.0.0.5"])  # one internal answer is enough
    with pytest.raises(TargetRejected):
        check_addresses(parse_webhook_url("http://localhost:8080/"), ["93.184.216.34"])
    with pytest.raises(TargetRejected):
        check_addresses(target, [])
    assert check_email(" pengurus@kkmp.id ") == "pengurus@kkmp.id"
    with pytest.raises(TargetRejected):
        check_email("bukan-email")


def test_digest_schedule() -> None:
    # 07:00 WIB is 00:00 UTC.
    assert latest_digest_boundary(datetime(2026, 1, 2, 3, 0, tzinfo=UTC), 7) == datetime(
        2026, 1, 2, 0, 0, tzinfo=UTC
    )
    assert latest_digest_boundary(datetime(2026, 1, 1, 23, 0, tzinfo=UTC), 7) == datetime(
        2026, 1, 1, 0, 0, tzinfo=UTC
    )
    chose = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)  # 10:00 WIB
    assert not digest_due(datetime(2026, 1, 2, 12, 0, tzinfo=UTC), 7, None, chose)
    assert digest_due(datetime(2026, 1, 3, 0, 0, tzinfo=UTC), 7, None, chose)
    sent = datetime(2026, 1, 3, 0, 0, tzinfo=UTC)
    assert not digest_due(datetime(2026, 1, 3, 16, 0, tzinfo=UTC), 7, sent, chose)
