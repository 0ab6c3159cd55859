"""The portal against the real services, started as processes on a private broker vhost.

A manager signs in, records stock in and a sale through the portal's forms (one of them submitted
twice), posts a need, and cannot open another cooperative's page; an officer sees the dashboard and
acknowledges the need. The services' own APIs are then asked whether it all landed, exactly once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IDEMPOTENCY = re.compile(r'name="idempotency_key" value="([^"]+)"')
MANAGER_PASSWORD = "pengurus-e2e-password"


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kkmp_testkit.processes import Platform
    from kkmp_testkit.rabbit import ensure_broker, temporary_vhost

    broker = ensure_broker()
    with temporary_vhost(broker, prefix="portal-e2e") as amqp_url:
        running = Platform(amqp_url=amqp_url, work_dir=Path(tmp_path_factory.mktemp("portal-e2e")))
        try:
            running.start(timeout=120)
            yield running
        except Exception:
            print(running.logs())
            raise
        finally:
            running.stop()


def api(platform: Any, service: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=platform.url(service), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.fixture(scope="module")
def cooperatives(platform: Any) -> dict[str, str]:
    admin = platform.admin_token()
    ids: dict[str, str] = {}
    with api(platform, "registry", admin) as registry:
        for key, code, name in (
            ("own", "35.78.01.1001", "KKMP Karang Pilang"),
            ("other", "35.78.01.1002", "KKMP Kebraon"),
        ):
            response = registry.post(
                "/cooperatives",
                json={
                    "name": name,
                    "kelurahan_code": code,
                    "formation": "new",
                    "business_units": ["sembako"],
                },
            )
            assert response.status_code == 201, response.text
            ids[key] = response.json()["id"]
        response = registry.post(
            "/users",
            json={
                "username": "pengurus-e2e",
                "password": MANAGER_PASSWORD,
                "role": "coop_manager",
                "cooperative_id": ids["own"],
            },
        )
        assert response.status_code == 201, response.text
    # inventory and sourcing learn of new cooperatives from registry events
    with api(platform, "inventory", admin) as inventory, api(platform, "sourcing", admin) as sourcing:
        eventually(
            lambda: inventory.get(f"/cooperatives/{ids['own']}/stock").status_code == 200,
            what="inventory knows the cooperative",
        )
        eventually(
            lambda: sourcing.get("/needs", params={"cooperative_id": ids["own"]}).status_code == 200,
            what="sourcing knows the cooperative",
        )
    return ids


def sign_in(platform: Any, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=platform.url("portal"), timeout=30)
    page = client.get("/masuk")
    response = client.post(
        "/masuk",
        data={"csrf_token": CSRF.search(page.text).group(1), "username": username, "password": password},
    )
    assert response.status_code == 303, response.text
    return client


def submit_movement(
    client: httpx.Client, coop: str, kind: str, quantity: str, price: str = "", *, twice: bool = False
) -> None:
    page = client.get(f"/koperasi/{coop}/catat?jenis={kind}")
    assert page.status_code == 200, page.text
    form = {
        "csrf_token": CSRF.search(page.text).group(1),
        "idempotency_key": IDEMPOTENCY.search(page.text).group(1),
        "kind": kind,
        "commodity": "beras_medium",
        "quantity": quantity,
        "unit_price": price,
    }
    for _ in range(2 if twice else 1):
        response = client.post(f"/koperasi/{coop}/catat", data=form)
        assert response.status_code == 303, response.text


def test_manager_and_officer_through_the_portal(platform: Any, cooperatives: dict[str, str]) -> None:
    own, other = cooperatives["own"], cooperatives["other"]
    admin = platform.admin_token()

    with closing(sign_in(platform, "pengurus-e2e", MANAGER_PASSWORD)) as manager:
        assert manager.get("/").headers["location"] == f"/koperasi/{own}/stok"
        submit_movement(manager, own, "receipt", "100", "12.000", twice=True)  # a double submit
        submit_movement(manager, own, "sale", "12,5", "13.500")
        stock_page = manager.get(f"/koperasi/{own}/stok")
        assert stock_page.status_code == 200
        assert "87,5 kg" in stock_page.text

        page = manager.get(f"/koperasi/{own}/kebutuhan")
        response = manager.post(
            f"/koperasi/{own}/kebutuhan",
            data={
                "csrf_token": CSRF.search(page.text).group(1),
                "kind": "supply",
                "commodity": "lpg_3kg",
                "quantity": "50",
                "needed_by": "",
                "description": "Tabung LPG habis, warga antre sejak pagi.",
            },
        )
        assert response.status_code == 303, response.text

        for path in (f"/koperasi/{other}", f"/koperasi/{other}/stok", f"/koperasi/{other}/catat"):
            assert manager.get(path).status_code == 404, path
        assert manager.get(f"/koperasi/{own}").status_code == 200
        assert manager.get("/notifikasi").status_code == 200

    with api(platform, "inventory", admin) as inventory:
        movements = inventory.get(f"/cooperatives/{own}/movements").json()
        assert movements["total"] == 2  # the receipt submitted twice was recorded once
        line = next(
            s for s in inventory.get(f"/cooperatives/{own}/stock").json() if s["commodity"] == "beras_medium"
        )
        assert line["on_hand"] == 87.5
    with api(platform, "sourcing", admin) as sourcing:
        [need] = sourcing.get("/needs", params={"cooperative_id": own}).json()["items"]
        assert (need["kind"], need["commodity"], need["quantity"], need["status"]) == (
            "supply",
            "lpg_3kg",
            50,
            "open",
        )

    with closing(sign_in(platform, "admin", platform.admin_password)) as officer:
        dashboard = officer.get("/dasbor")
        assert dashboard.status_code == 200
        assert dashboard.text.count("<path d=") == 31
        assert "Terjadi kesalahan" not in dashboard.text
        detail = officer.get(f"/kebutuhan/{need['id']}")
        assert detail.status_code == 200 and "Terima (tanggapi)" in detail.text
        response = officer.post(
            f"/kebutuhan/{need['id']}/status",
            data={
                "csrf_token": CSRF.search(detail.text).group(1),
                "status": "acknowledged",
                "note": "Kami proses.",
            },
        )
        assert response.status_code == 303
        assert "Status kebutuhan diubah" in officer.get(response.headers["location"]).text
        for path in ("/koperasi", "/kebutuhan", "/usulan", "/pemasok", "/potensi", "/pelatihan", "/ekspor"):
            page = officer.get(path)
            assert page.status_code == 200, path
            assert "Terjadi kesalahan" not in page.text, path
        export = officer.get("/ekspor/cooperatives.csv")
        assert export.status_code == 200 and "text/csv" in export.headers["content-type"]
    with api(platform, "sourcing", admin) as sourcing:
        assert sourcing.get(f"/needs/{need['id']}").json()["status"] == "acknowledged"
