"""The portal's pages over real HTTP, against contract-shaped fake services (tests/portal_fake_upstream.py).

Checks what a browser test would be slow or clumsy at: the session cookie's flags, CSRF refusals, the
Idempotency-Key on stock forms, the exact requests sent to the services, the 404 for another
cooperative, and friendly pages when a service fails or cannot be reached. Marked ``integration``:
the portal and the fakes run as real uvicorn servers on local ports (no broker or database needed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
IDEMPOTENCY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The page's CSRF token; every form on the page (logout in the header included) must carry it."""
    tokens = CSRF.findall(html)
    assert tokens, "page has no CSRF field"
    assert len(set(tokens)) == 1 and tokens[0], f"forms carry different or empty CSRF tokens: {tokens}"
    return tokens[0]


def login(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=15)
    page = client.get("/masuk")
    response = client.post(
        "/masuk",
        data={"csrf_token": csrf_of(page.text), "username": username, "password": password, "next": "/"},
    )
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def admin(portal: Any) -> Iterator[httpx.Client]:
    client = login(portal.url, "admin", "rahasia-admin")
    yield client
    client.close()


@pytest.fixture
def manager(portal: Any) -> Iterator[httpx.Client]:
    client = login(portal.url, "pengurus", "rahasia-pengurus")
    yield client
    client.close()


@pytest.fixture(autouse=True)
def healthy_world(world: Any) -> Iterator[None]:
    world.down.clear()
    world.reject_tokens = False
    yield
    world.down.clear()
    world.reject_tokens = False


def own_coop(world: Any) -> str:
    return world.users["pengurus"]["claims"]["cooperative_id"]


def upstream_calls(world: Any, method: str, prefix: str) -> list[tuple[str, str, dict[str, str], Any]]:
    return [r for r in world.requests if r[0] == method and r[1].startswith(prefix)]


# --- sign in, session, CSRF -----------------------------------------------------------------------------


def test_login_page_is_indonesian_accessible_and_locked_down(portal: Any) -> None:
    response = httpx.get(f"{portal.url}/masuk")
    assert response.status_code == 200
    html = response.text
    assert '<html lang="id">' in html
    assert '<label for="username">Nama pengguna</label>' in html
    assert '<label for="password">Kata sandi</label>' in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    # nothing is loaded from another host
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_wrong_password_is_explained_in_indonesian(portal: Any) -> None:
    with httpx.Client(base_url=portal.url) as client:
        page = client.get("/masuk")
        response = client.post(
            "/masuk", data={"csrf_token": csrf_of(page.text), "username": "admin", "password": "salah"}
        )
    assert response.status_code == 401
    assert "Nama pengguna atau kata sandi salah." in response.text


def test_login_passes_the_persons_address_to_the_registry(portal: Any, world: Any) -> None:
    """The registry throttles failed logins per address: behind the portal every person would share
    the portal's address, so the portal passes on the address it was reached from."""
    before = len(upstream_calls(world, "POST", "/registry/auth/token"))
    with httpx.Client(base_url=portal.url) as client:
        page = client.get("/masuk")
        # As a trusted proxy in front of the portal would say (uvicorn trusts 127.0.0.1 by default).
        client.post(
            "/masuk",
            data={"csrf_token": csrf_of(page.text), "username": "admin", "password": "salah"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
    calls = upstream_calls(world, "POST", "/registry/auth/token")[before:]
    assert len(calls) == 1
    headers = {k.lower(): v for k, v in calls[0][2].items()}
    assert headers["x-forwarded-for"] == "203.0.113.9"


def test_login_without_csrf_token_is_refused(portal: Any, world: Any) -> None:
    before = len(upstream_calls(world, "POST", "/registry/auth/token"))
    with httpx.Client(base_url=portal.url) as client:
        client.get("/masuk")
        response = client.post("/masuk", data={"username": "admin", "password": "rahasia-admin"})
    assert response.status_code == 400
    assert "Formulir kedaluwarsa" in response.text
    assert len(upstream_calls(world, "POST", "/registry/auth/token")) == before


def test_session_cookie_flags_and_token_never_in_pages(portal: Any) -> None:
    with httpx.Client(base_url=portal.url) as client:
        page = client.get("/masuk")
        response = client.post(
            "/masuk",
            data={"csrf_token": csrf_of(page.text), "username": "admin", "password": "rahasia-admin"},
        )
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("kkmp_session=")
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert "secure" not in cookie.lower()  # switched off for plain-http localhost in this test
        assert response.headers["location"] == "/dasbor"
        dashboard = client.get("/dasbor")
        claims_part = client.cookies["kkmp_session"]
        assert "access_token" not in dashboard.text
        assert claims_part not in dashboard.text


def test_csrf_token_changes_at_login(portal: Any) -> None:
    with httpx.Client(base_url=portal.url) as client:
        anonymous = csrf_of(client.get("/masuk").text)
        client.post(
            "/masuk", data={"csrf_token": anonymous, "username": "admin", "password": "rahasia-admin"}
        )
        signed_in = csrf_of(client.get("/ekspor").text)
    assert signed_in != anonymous


def test_pages_need_a_session(portal: Any) -> None:
    response = httpx.get(f"{portal.url}/dasbor", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/masuk?next=%2Fdasbor"


def test_next_must_stay_on_the_portal(portal: Any) -> None:
    with httpx.Client(base_url=portal.url) as client:
        page = client.get("/masuk")
        response = client.post(
            "/masuk",
            data={
                "csrf_token": csrf_of(page.text),
                "username": "admin",
                "password": "rahasia-admin",
                "next": "//evil.example/steal",
            },
        )
    assert response.headers["location"] == "/dasbor"


def test_logout_clears_the_session(admin: httpx.Client) -> None:
    token = csrf_of(admin.get("/ekspor").text)
    assert admin.post("/keluar", data={"csrf_token": token}).headers["location"] == "/masuk"
    assert admin.get("/dasbor").status_code == 303


def test_expired_upstream_token_sends_back_to_login(admin: httpx.Client, world: Any) -> None:
    world.reject_tokens = True
    response = admin.get("/pemasok")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/masuk")
    world.reject_tokens = False
    assert admin.get("/pemasok").status_code == 303  # the session was cleared


# --- Dinkopdag pages ------------------------------------------------------------------------------------


def test_dashboard(admin: httpx.Client, world: Any) -> None:
    response = admin.get("/dasbor")
    assert response.status_code == 200
    html = response.text
    assert html.count("<path d=") == 31
    assert html.count('href="/koperasi/') >= 153  # every KKMP is a point linked to its page
    assert "Rp" in html and re.search(r"Rp\d{1,3}(\.\d{3})+", html)  # Indonesian money format
    data = json.loads(
        re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S).group(1)
    )
    assert len(data["ontime"]["labels"]) == 8 and data["sales"]["values"]
    assert "/static/vendor/chart.umd.min.js" in html
    assert "Koperasi yang perlu perhatian" in html
    assert "Kebutuhan terbuka, terlama dulu" in html


def test_dashboard_stalled_map_mode(admin: httpx.Client) -> None:
    html = admin.get("/dasbor?peta=macet").text
    assert "Peta kecamatan: Nilai stok macet" in html
    assert "Tidak ada" in html  # legend's first class


def test_dashboard_survives_a_failing_service(admin: httpx.Client, world: Any) -> None:
    world.down.add("reporting")
    response = admin.get("/dasbor")
    assert response.status_code == 200
    assert "Layanan laporan sedang mengalami gangguan" in response.text
    assert response.text.count("<path d=") == 31  # the map is drawn from shipped reference data


def test_vendor_chart_js_is_served_with_its_licence(portal: Any) -> None:
    script = httpx.get(f"{portal.url}/static/vendor/chart.umd.min.js")
    assert script.status_code == 200 and "Chart.js v4" in script.text[:200]
    assert "max-age" in script.headers["cache-control"]
    licence = httpx.get(f"{portal.url}/static/vendor/chart.js.LICENSE.md")
    assert "MIT License" in licence.text


def test_need_status_change_is_sent_to_sourcing(admin: httpx.Client, world: Any) -> None:
    need_id = next(n["id"] for n in world.needs.values() if n["status"] == "open")
    page = admin.get(f"/kebutuhan/{need_id}")
    assert "Terima (tanggapi)" in page.text
    response = admin.post(
        f"/kebutuhan/{need_id}/status",
        data={
            "csrf_token": csrf_of(page.text),
            "status": "acknowledged",
            "note": "Segera kami hubungi pemasok.",
        },
    )
    assert response.status_code == 303
    sent = upstream_calls(world, "POST", f"/sourcing/needs/{need_id}/status")[-1]
    assert json.loads(sent[3]) == {"status": "acknowledged", "note": "Segera kami hubungi pemasok."}
    assert sent[2]["authorization"].startswith("Bearer ")
    assert world.needs[need_id]["status"] == "acknowledged"
    # an illegal change is refused by sourcing and explained
    again = admin.post(
        f"/kebutuhan/{need_id}/status", data={"csrf_token": csrf_of(page.text), "status": "acknowledged"}
    )
    assert "Status tidak dapat diubah" in admin.get(again.headers["location"]).text


def test_order_from_a_match(admin: httpx.Client, world: Any) -> None:
    need_id = next(n["id"] for n in world.needs.values() if n["kind"] == "supply" and n["status"] == "open")
    page = admin.get(f"/kebutuhan/{need_id}")
    assert "Pemasok yang cocok" in page.text
    supplier = re.search(r'name="supplier_id" value="([^"]+)"', page.text).group(1)
    admin.post(
        f"/kebutuhan/{need_id}/pesan",
        data={"csrf_token": csrf_of(page.text), "supplier_id": supplier, "quantity": "1.250"},
    )
    sent = json.loads(upstream_calls(world, "POST", "/sourcing/orders")[-1][3])
    assert sent == {"need_id": need_id, "supplier_id": supplier, "quantity": 1250.0}


def test_export_is_proxied_with_the_users_token(admin: httpx.Client, world: Any) -> None:
    response = admin.get("/ekspor/stalled.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.text.startswith("id,name")
    call = upstream_calls(world, "GET", "/reporting/exports/stalled.csv")[-1]
    assert call[2]["authorization"].startswith("Bearer ")
    assert admin.get("/ekspor/passwords.csv").status_code == 404
    pdf = admin.get("/ekspor/laporan-bulanan?periode=2025-10")
    assert pdf.headers["content-type"] == "application/pdf"


def test_every_dinkopdag_page_renders(admin: httpx.Client) -> None:
    for path in (
        "/koperasi",
        "/koperasi?q=rungkut",
        "/kebutuhan",
        "/kebutuhan?status=resolved",
        "/usulan",
        "/pemasok",
        "/potensi?kecamatan=35.78.03",
        "/pelatihan",
        "/ekspor",
        "/notifikasi",
    ):
        response = admin.get(path)
        assert response.status_code == 200, path
        assert "Terjadi kesalahan" not in response.text, path


def test_unknown_page_is_an_indonesian_404(admin: httpx.Client) -> None:
    response = admin.get("/tidak-ada")
    assert response.status_code == 404
    assert "Halaman tidak ditemukan" in response.text


# --- cooperative managers -------------------------------------------------------------------------------


def test_manager_lands_on_own_stock(portal: Any, world: Any) -> None:
    with httpx.Client(base_url=portal.url) as client:
        page = client.get("/masuk")
        response = client.post(
            "/masuk",
            data={"csrf_token": csrf_of(page.text), "username": "pengurus", "password": "rahasia-pengurus"},
        )
    assert response.headers["location"] == f"/koperasi/{own_coop(world)}/stok"


def test_manager_cannot_open_another_cooperative(manager: httpx.Client, world: Any) -> None:
    other = world.coop_ids[5]
    before = len(world.requests)
    for path in (
        f"/koperasi/{other}",
        f"/koperasi/{other}/stok",
        f"/koperasi/{other}/catat",
        f"/koperasi/{other}/kebutuhan",
        f"/koperasi/{other}/laporan",
        f"/koperasi/{other}/usulan",
    ):
        response = manager.get(path)
        assert response.status_code == 404, path
        assert "Halaman tidak ditemukan" in response.text
    # refused by the portal itself: no service was asked about the other cooperative
    assert not any(other in r[1] for r in world.requests[before:])
    token = csrf_of(manager.get(f"/koperasi/{own_coop(world)}/catat").text)
    posted = manager.post(
        f"/koperasi/{other}/catat",
        data={"csrf_token": token, "kind": "sale", "commodity": "gula", "quantity": "1"},
    )
    assert posted.status_code == 404


def test_manager_cannot_open_dinkopdag_pages(manager: httpx.Client) -> None:
    assert manager.get("/dasbor").status_code == 403
    assert manager.get("/ekspor/stalled.csv").status_code == 403


def test_recording_a_sale_twice_with_one_form_records_once(manager: httpx.Client, world: Any) -> None:
    coop = own_coop(world)
    world.stock[coop]["gula"] = {
        "commodity": "gula",
        "on_hand": 100.0,
        "last_sale_at": None,
        "avg_daily_sales": 5.0,
        "days_of_cover": 20.0,
        "status": "ok",
    }
    page = manager.get(f"/koperasi/{coop}/catat?jenis=sale&komoditas=gula")
    key = IDEMPOTENCY.search(page.text).group(1)
    form = {
        "csrf_token": csrf_of(page.text),
        "idempotency_key": key,
        "kind": "sale",
        "commodity": "gula",
        "quantity": "2,5",
        "unit_price": "17.500",
    }
    before = len(world.movements[coop])
    first = manager.post(f"/koperasi/{coop}/catat", data=form)
    second = manager.post(f"/koperasi/{coop}/catat", data=form)  # the double tap
    assert first.status_code == second.status_code == 303
    assert len(world.movements[coop]) == before + 1
    assert world.stock[coop]["gula"]["on_hand"] == 97.5
    calls = upstream_calls(world, "POST", f"/inventory/cooperatives/{coop}/movements")[-2:]
    assert {c[2]["idempotency-key"] for c in calls} == {key}
    assert json.loads(calls[-1][3]) == {
        "commodity": "gula",
        "kind": "sale",
        "quantity": 2.5,
        "unit_price": 17500.0,
    }
    assert "Penjualan 2,5 kg Gula pasir tercatat." in manager.get(first.headers["location"]).text
    # a new render of the form gets a new key
    assert IDEMPOTENCY.search(manager.get(f"/koperasi/{coop}/catat").text).group(1) != key


def test_sale_above_the_ceiling_warns(manager: httpx.Client, world: Any) -> None:
    coop = own_coop(world)
    page = manager.get(f"/koperasi/{coop}/catat?jenis=receipt")
    manager.post(
        f"/koperasi/{coop}/catat",
        data={
            "csrf_token": csrf_of(page.text),
            "idempotency_key": IDEMPOTENCY.search(page.text).group(1),
            "kind": "receipt",
            "commodity": "minyakita",
            "quantity": "10",
        },
    )
    page = manager.get(f"/koperasi/{coop}/catat?jenis=sale")
    response = manager.post(
        f"/koperasi/{coop}/catat",
        data={
            "csrf_token": csrf_of(page.text),
            "idempotency_key": IDEMPOTENCY.search(page.text).group(1),
            "kind": "sale",
            "commodity": "minyakita",
            "quantity": "1",
            "unit_price": "17.000",
        },
    )
    html = manager.get(response.headers["location"]).text
    assert "di atas HET Rp15.700" in html


def test_selling_more_than_on_hand_is_explained_and_gets_a_fresh_key(
    manager: httpx.Client, world: Any
) -> None:
    coop = own_coop(world)
    page = manager.get(f"/koperasi/{coop}/catat?jenis=sale")
    key = IDEMPOTENCY.search(page.text).group(1)
    response = manager.post(
        f"/koperasi/{coop}/catat",
        data={
            "csrf_token": csrf_of(page.text),
            "idempotency_key": key,
            "kind": "sale",
            "commodity": "telur",
            "quantity": "99999",
        },
    )
    assert response.status_code == 409
    assert "Stok tidak cukup" in response.text
    assert IDEMPOTENCY.search(response.text).group(1) != key  # a corrected form must not replay the refusal
    assert 'value="99999"' in response.text  # what was typed is kept


def test_movement_form_validates_before_calling_inventory(manager: httpx.Client, world: Any) -> None:
    coop = own_coop(world)
    page = manager.get(f"/koperasi/{coop}/catat")
    before = len(upstream_calls(world, "POST", "/inventory/"))
    response = manager.post(
        f"/koperasi/{coop}/catat",
        data={
            "csrf_token": csrf_of(page.text),
            "idempotency_key": "k",
            "kind": "sale",
            "commodity": "",
            "quantity": "nol",
        },
    )
    assert response.status_code == 422
    assert "Pilih komoditas." in response.text
    assert "Isi jumlah dengan angka lebih dari nol" in response.text
    assert 'aria-invalid="true"' in response.text
    assert len(upstream_calls(world, "POST", "/inventory/")) == before


def test_movement_without_csrf_records_nothing(manager: httpx.Client, world: Any) -> None:
    coop = own_coop(world)
    before = len(world.movements[coop])
    response = manager.post(
        f"/koperasi/{coop}/catat", data={"kind": "receipt", "commodity": "gula", "quantity": "5"}
    )
    assert response.status_code == 400
    assert len(world.movements[coop]) == before


def test_manager_posts_a_need(manager: httpx.Client, world: Any) -> None:
    coop = own_coop(world)
    page = manager.get(f"/koperasi/{coop}/kebutuhan")
    response = manager.post(
        f"/koperasi/{coop}/kebutuhan",
        data={
            "csrf_token": csrf_of(page.text),
            "kind": "supply",
            "commodity": "lpg_3kg",
            "quantity": "120",
            "needed_by": "",
            "description": "Tabung LPG habis sejak Senin, warga antre.",
        },
    )
    assert response.status_code == 303
    sent = json.loads(upstream_calls(world, "POST", "/sourcing/needs")[-1][3])
    assert sent == {
        "cooperative_id": coop,
        "kind": "supply",
        "commodity": "lpg_3kg",
        "quantity": 120.0,
        "description": "Tabung LPG habis sejak Senin, warga antre.",
    }
    assert "Kebutuhan terkirim ke Dinkopdag" in manager.get(response.headers["location"]).text


def test_manager_submits_the_monthly_report(manager: httpx.Client, world: Any) -> None:
    coop = own_coop(world)
    page = manager.get(f"/koperasi/{coop}/laporan")
    period = re.search(r'<option value="(\d{4}-\d{2})" selected>', page.text).group(1)
    response = manager.post(
        f"/koperasi/{coop}/laporan",
        data={
            "csrf_token": csrf_of(page.text),
            "period": period,
            "omzet": "12.500.000",
            "members": "205",
            "transactions": "1.340",
            "notes": "",
        },
    )
    assert response.status_code == 303
    sent = json.loads(upstream_calls(world, "POST", f"/reporting/cooperatives/{coop}/reports")[-1][3])
    assert sent == {"period": period, "omzet": 12500000.0, "members": 205, "transactions": 1340}
    again = manager.post(
        f"/koperasi/{coop}/laporan",
        data={
            "csrf_token": csrf_of(page.text),
            "period": period,
            "omzet": "1",
            "members": "1",
            "transactions": "1",
        },
    )
    assert again.status_code == 409


def test_manager_answers_a_redistribution_proposal(manager: httpx.Client, world: Any) -> None:
    coop = own_coop(world)
    proposal = {
        "id": "red-mine",
        "commodity": "gula",
        "from_cooperative_id": world.coop_ids[9],
        "to_cooperative_id": coop,
        "quantity": 40.0,
        "distance_km": 2.3,
        "status": "proposed",
        "from_side": {"decision": None},
        "to_side": {"decision": None},
    }
    world.redistributions["red-mine"] = proposal
    page = manager.get(f"/koperasi/{coop}/usulan")
    assert "Koperasi Anda akan menerima barang ini." in page.text
    assert 'action="/usulan/red-mine/terima"' in page.text
    response = manager.post(
        "/usulan/red-mine/terima",
        data={"csrf_token": csrf_of(page.text), "kembali": f"/koperasi/{coop}/usulan"},
    )
    assert response.headers["location"] == f"/koperasi/{coop}/usulan"
    call = upstream_calls(world, "POST", "/sourcing/redistributions/red-mine/accept")[-1]
    assert json.loads(call[3]) == {}
    # this side has answered; the other side still has to, so no buttons for this cooperative any more
    assert proposal["to_side"]["decision"] == "accept" and proposal["status"] == "proposed"
    after = manager.get(f"/koperasi/{coop}/usulan").text
    assert "Penerima menerima" in after
    assert 'action="/usulan/red-mine/terima"' not in after


def test_notifications_mark_read(manager: httpx.Client, world: Any) -> None:
    page = manager.get("/notifikasi")
    assert "Stok macet: Beras medium" in page.text
    manager.post("/notifikasi/pengurus-n1/baca", data={"csrf_token": csrf_of(page.text)})
    assert world.notifications["u-manager"][0]["read_at"] is not None


def test_a_service_answering_5xx_gives_a_friendly_page(manager: httpx.Client, world: Any) -> None:
    world.down.add("inventory")
    response = manager.get(f"/koperasi/{own_coop(world)}/stok")
    assert response.status_code == 503
    assert "Layanan stok sedang mengalami gangguan" in response.text
    assert "Traceback" not in response.text


def test_an_unreachable_service_gives_a_friendly_page(portal: Any, world: Any) -> None:
    from portal.bootstrap import create_app
    from portal.settings import PortalSettings
    from portal_testkit import ThreadedServer, free_port  # type: ignore[import-not-found]

    upstream = portal.upstream_url
    settings = PortalSettings(
        demo=True,
        cookie_secure=False,
        session_secret="another-test-secret",
        registry_url=f"{upstream}/registry",
        inventory_url=f"http://127.0.0.1:{free_port()}",
        sourcing_url=f"{upstream}/sourcing",
        reporting_url=f"{upstream}/reporting",
        notifications_url=f"{upstream}/notifications",
    )
    with (
        ThreadedServer(create_app(settings), free_port()) as server,
        closing(login(server.url, "pengurus", "rahasia-pengurus")) as client,
    ):
        response = client.get(f"/koperasi/{own_coop(world)}/stok")
        assert response.status_code == 503
        assert "Layanan stok sedang tidak dapat dihubungi" in response.text
        # the form keeps working on what it can show, and says a retry is safe
        page = client.get(f"/koperasi/{own_coop(world)}/catat")
        key = IDEMPOTENCY.search(page.text).group(1)
        posted = client.post(
            f"/koperasi/{own_coop(world)}/catat",
            data={
                "csrf_token": csrf_of(page.text),
                "idempotency_key": key,
                "kind": "receipt",
                "commodity": "gula",
                "quantity": "5",
            },
        )
        assert posted.status_code == 503
        assert "tidak akan tercatat dua kali" in posted.text
        assert IDEMPOTENCY.search(posted.text).group(1) == key  # same key: a retry cannot double-record
        assert client.get("/health/upstreams").json()["checks"]["inventory"].startswith("error")


def test_health_and_metrics_come_from_the_common_app(portal: Any) -> None:
    assert httpx.get(f"{portal.url}/health/live").json()["status"] == "ok"
    assert httpx.get(f"{portal.url}/health/ready").status_code == 200
    metrics = httpx.get(f"{portal.url}/metrics")
    assert metrics.status_code == 200 and "kkmp_http_requests_total" in metrics.text
