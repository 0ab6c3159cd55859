"""The demo seed, across real processes: what the README promises a new user sees after `kkmp run` in
demo mode. The whole city (153 KKMP) is seeded once per module into a platform of its own (fresh
PostgreSQL databases, its own vhost), started as `kkmp run` starts it in demo mode.

Marked `clock`: the seed's dates (90 days of stock, the monthly reports' periods and due dates) depend
on today's date, and must be right on every day (`pytest --clock-at ...`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from kkmp_cli.runner import DEMO_PASSWORD_HASHING, demo_reports_expected_from
from kkmp_cli.seed import DEMO_PASSWORD, Urls, kelurahan, seed_city, seed_if_empty
from kkmp_shared import clock
from kkmp_testkit.processes import Platform, started_platform
from kkmp_testkit.wait import wait_until

# Seeding 153 KKMP with 90 days of stock takes minutes on a 2-core machine, too long to repeat at each of
# `make test-clock`'s twelve moments: the seed's
# calendar is checked at every one of them by tests/test_seed_dates.py, and this runs on today's date.
# `pytest --clock-at` runs it as of any other moment.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SEED = 20251128  # `kkmp run`'s default
ADMIN_PASSWORD = "demo-seed-admin-password"
SERVICES = ("registry", "reporting", "inventory", "sourcing", "notifications")
CITY = 153
DUE_DAY = 10  # reporting's REPORT_DUE_DAY: a period's report is due on the 10th of the next month
SKEW = timedelta(minutes=5)  # the services accept a clock this far ahead of theirs


@dataclass
class City:
    platform: Platform
    urls: Urls
    seconds: float  # how long seed_city took

    def url(self, name: str) -> str:
        return self.platform.url(name)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    with started_platform(
        SERVICES,
        tmp_path_factory.mktemp("demo-seed"),
        prefix="seed",
        # As `kkmp run` starts the services in demo mode (cli/kkmp_cli/runner.py).
        extra_env={"REPORTS_EXPECTED_FROM": demo_reports_expected_from(), **DEMO_PASSWORD_HASHING},
        admin_password=ADMIN_PASSWORD,
    ) as plat:
        urls = Urls(**{name: plat.url(name) for name in SERVICES})
        started = time.monotonic()
        seed_city(SEED, urls, ADMIN_PASSWORD)
        seconds = time.monotonic() - started
        print(f"\nseed_city: {seconds:.1f} s for {CITY} KKMP")
        yield City(plat, urls, seconds)


def headers(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def login(city: City, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
    response = httpx.post(
        f"{city.url('registry')}/auth/token", data={"username": username, "password": password}, timeout=30
    )
    assert response.status_code == 200, f"login {username}: {response.status_code} {response.text}"
    return headers(response.json()["access_token"])


def get(client: httpx.Client, url: str, auth: dict[str, str], **params: Any) -> Any:
    response = client.get(url, headers=auth, params=params)
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:300]}"
    return response


def at(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, text
    return moment


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def shift(period: str, months: int) -> str:
    index = int(period[:4]) * 12 + int(period[5:]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def due_date(period: str) -> date:
    following = shift(period, 1)
    return date(int(following[:4]), int(following[5:]), DUE_DAY)


def latest_passed_period(today: date) -> str:
    """Reports for P are due on the 10th of P+1: on days 1-10 the latest passed period is two months
    back, from the 11th one month back."""
    return shift(period_of(today), -1 if today.day > DUE_DAY else -2)


def test_demo_city_is_what_the_readme_promises(city: City) -> None:
    admin = login(city, "admin", ADMIN_PASSWORD)
    reg, inv, src, rep, notif = (
        city.url(s) for s in ("registry", "inventory", "sourcing", "reporting", "notifications")
    )
    with httpx.Client(timeout=60) as client:
        # --- 153 KKMP with boards, members and manager accounts ---------------------------------
        coops = get(client, f"{reg}/cooperatives", admin, limit=500).json()
        assert coops["total"] == CITY
        by_kelurahan = {c["kelurahan_code"]: c for c in coops["items"]}
        assert set(by_kelurahan) == {row["kelurahan_code"] for row in kelurahan()}
        assert all(c["member_count"] > 0 for c in coops["items"])
        sample = get(client, f"{reg}/cooperatives/{by_kelurahan['35.78.02.1004']['id']}", admin).json()
        assert {m["position"] for m in sample["board"]} >= {"ketua", "bendahara", "pengawas_ketua"}
        members = get(client, f"{reg}/cooperatives/{sample['id']}/members", admin).json()
        assert members["total"] == sample["member_count"] > 0

        managers = get(client, f"{reg}/users", admin, role="coop_manager", limit=500).json()
        assert {u["username"]: u["cooperative_id"] for u in managers} == {
            "pengurus-" + code.replace(".", ""): coop["id"] for code, coop in by_kelurahan.items()
        }
        manager = login(city, "pengurus-3578021004")
        me = get(client, f"{reg}/users/me", manager).json()
        assert me["role"] == "coop_manager" and me["cooperative_id"] == sample["id"]
        officer = login(city, "petugas-wonocolo")
        assert get(client, f"{reg}/users/me", officer).json()["kecamatan_codes"] == ["35.78.02"]
        login(city, "petugas")
        login(city, "pemasok-bulog")

        # --- about 90 days of stock movements, ending near now and never after it -----------------
        now = clock.now()
        newest, oldest = [], []
        for coop in coops["items"]:
            url = f"{inv}/cooperatives/{coop['id']}/movements"
            page = get(client, url, admin, limit=1).json()
            assert page["total"] > 0, f"{coop['name']} has no stock movements"
            newest.append(at(page["items"][0]["occurred_at"]))
            last = get(client, url, admin, limit=1, offset=page["total"] - 1).json()
            oldest.append(at(last["items"][0]["occurred_at"]))
        assert max(newest) <= now, f"a movement in the future: {max(newest)} > {now}"
        assert now - max(newest) < timedelta(hours=12), f"the newest movement is {max(newest)}, now {now}"
        assert timedelta(days=89) <= now - min(oldest) <= timedelta(days=92), min(oldest)
        # The manager's own stock page answers with the seeded items.
        assert get(client, f"{inv}/cooperatives/{sample['id']}/stock", manager).json()

        # --- thriving, slowing and dormant cooperatives on the dashboard; stalled stock ------------
        def living_city() -> dict[str, Any] | None:
            summary = get(client, f"{rep}/dashboard/summary", admin).json()
            health = summary["cooperatives"]["by_health"]
            complete = summary["cooperatives"]["total"] == CITY and sum(health.values()) == CITY
            if complete and all(health.values()) and summary["stock"]["stalled_items"] > 0:
                return summary
            return None

        summary = wait_for(living_city, 240, "every health level, and stalled stock, on the dashboard")
        for level in ("aktif", "kurang_aktif", "tidak_aktif"):
            rows = get(client, f"{rep}/cooperatives", admin, level=level, limit=500).json()
            assert rows["total"] == summary["cooperatives"]["by_health"][level] > 0
        stalled = get(client, f"{rep}/stalled", admin).json()
        assert stalled, "no stalled stock (stok macet) on the dashboard"

        # --- suppliers, needs, an order; redistribution proposals for the stalled stock -----------
        assert get(client, f"{src}/suppliers", admin, limit=100).json()["total"] == 6
        needs = get(client, f"{src}/needs", admin, limit=100).json()
        assert needs["total"] == 30
        assert get(client, f"{src}/orders", admin, status="delivered").json()["total"] >= 1
        wait_for(
            lambda: get(client, f"{src}/redistributions", admin).json()["total"] > 0,
            120,
            "redistribution proposals in sourcing",
        )

        # --- monthly reports: the latest passed period has on-time, late and missing ones ---------
        today = clock.today(clock.WIB)
        latest = latest_passed_period(today)
        rates = get(client, f"{rep}/reports/rates", admin).json()
        assert rates["period"] == latest, (rates["period"], today)
        assert date.fromisoformat(rates["due_date"]) == due_date(latest) < today
        totals = rates["city"]
        assert totals["expected"] == CITY, totals
        assert totals["on_time"] > 0 and totals["late"] > 0 and totals["missing"] > 0, totals
        reports = get(client, f"{rep}/reports", admin, limit=5000).json()["items"]
        periods = {r["period"] for r in reports}
        passed = {latest, shift(latest, -1), shift(latest, -2)}  # what the health score judges
        assert passed <= periods, (periods, today)
        # Beyond those, only the month that has ended but is not yet due (days 1-10).
        assert periods <= passed | {shift(period_of(today), -1)}, (periods, today)
        now = clock.now()
        for r in reports:
            submitted = at(r["submitted_at"])
            submitted_day = submitted.astimezone(clock.WIB).date()
            assert submitted <= now + SKEW, r
            # A month's report is written once the month is over.
            assert submitted_day >= date.fromisoformat(shift(r["period"], 1) + "-01"), r
            assert date.fromisoformat(r["due_date"]) == due_date(r["period"]), r
            assert r["on_time"] == (submitted_day <= due_date(r["period"])), r
            if today <= due_date(r["period"]):
                assert r["on_time"], f"late for a period not yet due on {today}: {r}"

        # --- notifications: a stalled item's manager is told, announcements reach their readers ---
        coop_id = stalled[0]["cooperative_id"]
        code = next(c["kelurahan_code"] for c in coops["items"] if c["id"] == coop_id)
        stalled_manager = login(city, "pengurus-" + code.replace(".", ""))

        def inbox(auth: dict[str, str]) -> list[dict[str, Any]]:
            return get(client, f"{notif}/me/notifications", auth, limit=200).json()

        def told_of_stall() -> bool:
            mine = inbox(stalled_manager)
            return any(n["event_type"] == "stock.stalled.v1" and n["cooperative_id"] == coop_id for n in mine)

        wait_for(told_of_stall, 120, "the stalled item's manager notified")
        # The department's announcements: the city-wide one to managers and officers, the Wonocolo
        # one to Wonocolo's managers only.
        assert any(n["title"] == "Rapat koordinasi KKMP se-Surabaya" for n in inbox(stalled_manager))
        assert any(n["title"] == "Rapat koordinasi KKMP se-Surabaya" for n in inbox(officer))
        assert any(n["title"] == "Pelatihan pembukuan Kec. Wonocolo" for n in inbox(manager))


def test_seeding_again_does_nothing(city: City) -> None:
    admin = login(city, "admin", ADMIN_PASSWORD)
    reg, src, rep = (city.url(s) for s in ("registry", "sourcing", "reporting"))
    with httpx.Client(timeout=60) as client:

        def counts() -> tuple[int, int, int, int]:
            return (
                get(client, f"{reg}/cooperatives", admin, limit=1).json()["total"],
                len(get(client, f"{reg}/users", admin, limit=1000).json()),
                get(client, f"{src}/needs", admin, limit=1).json()["total"],
                get(client, f"{rep}/reports", admin, limit=1).json()["total"],
            )

        before = counts()
        assert before[0] == CITY
        assert seed_if_empty(SEED, city.urls, ADMIN_PASSWORD) is False
        assert counts() == before


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """The read models follow the seed's events: poll to a deadline."""
    return wait_until(condition, timeout=timeout, interval=1.0, message=what)
