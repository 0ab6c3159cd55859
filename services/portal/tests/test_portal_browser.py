"""The portal in headless Chromium (Debian's /usr/bin/chromium), against the contract-shaped fakes.

A Dinkopdag officer's dashboard on a desktop screen, a cooperative manager's stock page and quick sale
form on a phone screen, keyboard access, and the 404 for another cooperative. Screenshots are saved
under ``test-artifacts/`` at the repository root for people to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


class Page:
    """A Playwright page that remembers console errors and CSP violations."""

    def __init__(self, browser: Any, base: str, viewport: dict[str, int], *, touch: bool = False) -> None:
        self.context = browser.new_context(
            viewport=viewport, locale="id-ID", timezone_id="Asia/Jakarta", has_touch=touch, is_mobile=touch
        )
        self.page = self.context.new_page()
        self.base = base
        self.problems: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        self.page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console: {msg.text}")
                if msg.type == "error" and "status of 40" not in msg.text
                else None
            ),
        )

    def go(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def login(self, username: str, password: str) -> None:
        self.go("/masuk")
        self.page.get_by_label("Nama pengguna").fill(username)
        self.page.get_by_label("Kata sandi").fill(password)
        self.page.get_by_role("button", name="Masuk").click()
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def desktop(browser: Any, portal: Any) -> Iterator[Page]:
    page = Page(browser, portal.url, DESKTOP)
    yield page
    page.close()


@pytest.fixture
def phone(browser: Any, portal: Any) -> Iterator[Page]:
    page = Page(browser, portal.url, PHONE, touch=True)
    yield page
    page.close()


def test_officer_dashboard(desktop: Page, artifacts: Path) -> None:
    desktop.login("petugas", "rahasia-petugas")
    page = desktop.page
    assert page.url.endswith("/dasbor")
    assert page.locator("html").get_attribute("lang") == "id"
    assert page.get_by_role("heading", name="Dasbor Kota Surabaya").is_visible()
    # the server-drawn map: 31 kecamatan, the cooperatives as points, nothing fetched from a tile server
    assert page.locator("svg.map path").count() == 31
    assert page.locator("svg.map circle").count() == 153
    box = page.locator("svg.map").bounding_box()
    assert box and box["width"] > 500 and box["height"] > 300
    # charts drawn by the bundled Chart.js (a canvas with pixels, not the fallback text)
    assert page.evaluate("typeof window.Chart") == "function"
    for chart in ("chart-sales", "chart-stalled", "chart-ontime"):
        assert page.evaluate(f"!!Chart.getChart(document.getElementById('{chart}'))"), chart
    # headline figures in Indonesian format
    tiles = page.locator(".tiles").inner_text()
    assert "Rp" in tiles and "jt" in tiles and "%" in tiles
    assert page.get_by_role("heading", name="Koperasi yang perlu perhatian").is_visible()
    assert page.locator("#macet-judul").is_visible()
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    # the map can be recoloured by stalled value
    page.get_by_role("link", name="Nilai stok macet").first.click()
    page.wait_for_load_state("networkidle")
    assert "peta=macet" in page.url
    assert page.get_by_role("heading", name="Peta kecamatan: Nilai stok macet").is_visible()
    page.screenshot(path=str(artifacts / "dashboard-stalled-map.png"), full_page=False)
    # clicking a cooperative's point opens its page
    page.locator("svg.map a circle").first.click()
    page.wait_for_load_state("networkidle")
    assert "/koperasi/" in page.url
    assert page.get_by_role("heading", name="Kesehatan koperasi").is_visible()
    page.screenshot(path=str(artifacts / "cooperative.png"), full_page=True)
    assert desktop.problems == [], desktop.problems


def test_keyboard_reaches_the_content_first(desktop: Page) -> None:
    desktop.login("admin", "rahasia-admin")
    page = desktop.page
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Langsung ke isi"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_officer_acknowledges_a_need(desktop: Page, world: Any) -> None:
    need_id = next(n["id"] for n in world.needs.values() if n["status"] == "open")
    desktop.login("petugas", "rahasia-petugas")
    desktop.go(f"/kebutuhan/{need_id}")
    page = desktop.page
    page.get_by_label("Catatan untuk koperasi (boleh kosong)").fill("Kami proses minggu ini.")
    page.get_by_role("button", name="Terima (tanggapi)").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").first.inner_text().startswith("Status kebutuhan diubah")
    assert world.needs[need_id]["status"] == "acknowledged"


def test_manager_records_a_sale_on_a_phone(phone: Page, world: Any, artifacts: Path) -> None:
    coop = world.users["pengurus"]["claims"]["cooperative_id"]
    world.stock[coop]["beras_medium"] = {
        "commodity": "beras_medium",
        "on_hand": 200.0,
        "last_sale_at": None,
        "avg_daily_sales": 8.0,
        "days_of_cover": 25.0,
        "status": "ok",
    }
    phone.login("pengurus", "rahasia-pengurus")
    page = phone.page
    assert page.url.endswith(f"/koperasi/{coop}/stok")
    assert page.get_by_role("heading", name="Beras medium").is_visible()
    # fits the phone: no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(artifacts / "manager-stock.png"), full_page=True)

    page.get_by_role("link", name="+ Catat penjualan").tap()
    page.wait_for_load_state("networkidle")
    page.get_by_text("Beras medium", exact=False).first.tap()
    page.get_by_label("Jumlah", exact=True).fill("12,5")
    page.get_by_label("Harga per satuan (Rp)").fill("13.500")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(artifacts / "manager-sale-form.png"), full_page=True)
    before = len(world.movements[coop])
    button = page.get_by_role("button", name="Simpan")
    button.dblclick()  # an impatient double tap
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").first.inner_text() == "Penjualan 12,5 kg Beras medium tercatat."
    assert len(world.movements[coop]) == before + 1
    assert world.stock[coop]["beras_medium"]["on_hand"] == 187.5
    phone.go(f"/koperasi/{coop}/stok")
    assert "187,5 kg" in page.locator(".stock-cards").inner_text()
    assert phone.problems == [], phone.problems


def test_manager_sees_a_404_for_another_cooperative(phone: Page, world: Any, artifacts: Path) -> None:
    phone.login("pengurus", "rahasia-pengurus")
    response = phone.go(f"/koperasi/{world.coop_ids[20]}/stok")
    assert response.status == 404
    assert phone.page.get_by_role("heading", name="Halaman tidak ditemukan").is_visible()
    phone.page.screenshot(path=str(artifacts / "manager-other-cooperative-404.png"))
