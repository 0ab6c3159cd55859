"""Fixtures of the security tests: the principals of the authorisation matrix and a small city of real
objects in every service, created through the public APIs (as an operator and the cooperatives would).

Two sides, A and B, each a cooperative in its own kecamatan with a partner cooperative next door, and
in every service the objects that belong to them: members, potentials and a training in the registry;
movements and stalled stock in inventory; a supplier, needs, orders and redistribution proposals in
sourcing; monthly reports in reporting; inbox notifications, a webhook subscription and its deliveries
in notifications. The principals: a manager of A, a manager of B, an officer whose scope is A's
kecamatan, an officer of a third kecamatan, the supplier A's orders are addressed to, a service client
and an administrator (not the bootstrap `admin`, so no test can lock that account out).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from kkmp_shared import clock
from kkmp_testkit.processes import Platform, started_platform
from kkmp_testkit.wait import wait_until

KEC_A = "35.78.24"  # Tenggilis Mejoyo
KEC_B = "35.78.25"  # Gunung Anyar
KEC_ELSEWHERE = "35.78.23"  # Jambangan: the out-of-scope officer's area, where nothing of A or B is
PASSWORD = "security-password-123"
SERVICE_CLIENT = {"client_id": "kkmp-service", "client_secret": "kkmp-demo-service-secret"}
MISSING_ID = "00000000-0000-4000-8000-00000000dead"
# Each side buys its own commodity from its own supplier, so that nothing of B is ever addressed to A's.
SUPPLY = {"A": "beras_medium", "B": "minyakita"}
# Stock that stalls at each side (one proposal to accept, one to decline), a commodity per side and
# exactly what the partner needs, so that no proposal ever joins the two sides (or reaches a
# cooperative of another test: nothing is left over to offer).
STALLED = {"A": ("telur", "gula"), "B": ("beras_premium", "bawang_putih")}  # stall_days <= 21
STALLED_QUANTITY = "50"


def _ok(response: httpx.Response, *codes: int) -> Any:
    expected = codes or (200, 201)
    assert response.status_code in expected, (
        f"{response.request.method} {response.request.url} → {response.status_code} {response.text[:500]}"
    )
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


@dataclass
class Principal:
    """One caller of the matrix: a name, its role, and the Authorization header (None: anonymous)."""

    name: str
    role: str | None
    headers: dict[str, str]
    user_id: str | None = None
    username: str | None = None
    password: str | None = None
    cooperative: str | None = None  # the side a manager belongs to
    kecamatan_codes: tuple[str, ...] = ()


@dataclass
class Side:
    """Everything that belongs to one side (A or B), by name → id."""

    name: str
    kecamatan: str
    kelurahan: str
    cooperative: str
    partner: str  # a second cooperative in the same kecamatan (the other end of a redistribution)
    partner_kelurahan: str
    ids: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.ids[key]

    def canaries(self) -> set[str]:
        """Ids that must never appear in a 2xx answer to someone who may not see this side."""
        keys = (
            "movement",
            "need",
            "need_status",
            "order",
            "order_cancel",
            "proposal_accept",
            "proposal_decline",
            "report",
            "member",
            "potential",
        )
        return {self.cooperative, self.partner, *(self.ids[k] for k in keys if k in self.ids)}


@dataclass
class City:
    platform: Platform
    principals: dict[str, Principal]
    sides: dict[str, Side]
    globals: dict[str, str]
    coop_kecamatan: dict[str, str]
    free_kelurahan: list[dict[str, str]]

    def url(self, service: str) -> str:
        return self.platform.url(service)

    def kelurahan(self) -> dict[str, str]:
        """A kelurahan with no cooperative yet (for routes that register one)."""
        return self.free_kelurahan.pop()

    def kecamatan_of(self, cooperative_id: str) -> str | None:
        if cooperative_id not in self.coop_kecamatan:
            admin = self.principals["admin"].headers
            body = httpx.get(
                f"{self.url('registry')}/cooperatives/{cooperative_id}", headers=admin, timeout=30
            )
            if body.status_code == 200:
                self.coop_kecamatan[cooperative_id] = body.json()["kecamatan_code"]
        return self.coop_kecamatan.get(cooperative_id)


class CityBuilder:
    """Creates the city through the public APIs and waits for the events to reach every service."""

    def __init__(self, platform: Platform, bootstrap_admin: dict[str, str]) -> None:
        self.platform = platform
        self.http = httpx.Client(timeout=60)
        self.bootstrap_admin = bootstrap_admin
        self.tag = uuid.uuid4().hex[:6]

    def url(self, service: str, path: str) -> str:
        return f"{self.platform.url(service)}{path}"

    def post(self, service: str, path: str, headers: dict[str, str], json: Any = None, *codes: int) -> Any:
        return _ok(self.http.post(self.url(service, path), headers=headers, json=json), *codes)

    def get(self, service: str, path: str, headers: dict[str, str], **params: Any) -> Any:
        return _ok(self.http.get(self.url(service, path), headers=headers, params=params), 200)

    def token(self, **form: str) -> str:
        response = self.http.post(self.url("registry", "/auth/token"), data=form)
        return str(_ok(response, 200)["access_token"])

    def user(self, name: str, role: str, **fields: Any) -> Principal:
        username = f"sec-{name.replace('_', '-')}-{self.tag}"
        body = self.post(
            "registry",
            "/users",
            self.bootstrap_admin,
            {"username": username, "password": PASSWORD, "role": role, **fields},
            201,
        )
        token = self.token(username=username, password=PASSWORD)
        return Principal(
            name,
            role,
            {"Authorization": f"Bearer {token}"},
            user_id=body["id"],
            username=username,
            password=PASSWORD,
            cooperative=None,
            kecamatan_codes=tuple(fields.get("kecamatan_codes") or ()),
        )

    def free_kelurahan(self) -> list[dict[str, str]]:
        taken = {
            c["kelurahan_code"]
            for c in self.get("registry", "/cooperatives", self.bootstrap_admin, limit=500)["items"]
        }
        rows = self.get("registry", "/regions/kelurahan", {})
        return [r for r in rows if r["code"] not in taken]

    def cooperative(self, kelurahan: dict[str, str]) -> str:
        body = self.post(
            "registry",
            "/cooperatives",
            self.bootstrap_admin,
            {
                "name": f"KKMP {kelurahan['name']} {self.tag}",
                "kelurahan_code": kelurahan["code"],
                "formation": "new",
            },
            201,
        )
        return str(body["id"])

    def build(self) -> City:
        free = self.free_kelurahan()
        by_kec: dict[str, list[dict[str, str]]] = {}
        for row in free:
            by_kec.setdefault(row["kecamatan_code"], []).append(row)
        sides: dict[str, Side] = {}
        for name, kec in (("A", KEC_A), ("B", KEC_B)):
            own, partner = by_kec[kec][:2]
            sides[name] = Side(
                name,
                kec,
                own["code"],
                self.cooperative(own),
                self.cooperative(partner),
                partner["code"],
            )
        used = {s.kelurahan for s in sides.values()} | {s.partner_kelurahan for s in sides.values()}
        spare = [r for r in free if r["code"] not in used and r["kecamatan_code"] not in (KEC_A, KEC_B)]

        admin = self.user("admin", "admin")
        principals = {
            "anonymous": Principal("anonymous", None, {}),
            "manager_a": self.user("manager_a", "coop_manager", cooperative_id=sides["A"].cooperative),
            "manager_b": self.user("manager_b", "coop_manager", cooperative_id=sides["B"].cooperative),
            "officer_in": self.user("officer_in", "officer", kecamatan_codes=[KEC_A]),
            "officer_out": self.user("officer_out", "officer", kecamatan_codes=[KEC_ELSEWHERE]),
            "service": Principal(
                "service",
                "service",
                {"Authorization": f"Bearer {self.token(grant_type='client_credentials', **SERVICE_CLIENT)}"},
            ),
            "admin": admin,
        }
        principals["manager_a"].cooperative = "A"
        principals["manager_b"].cooperative = "B"
        staff = admin.headers

        # --- sourcing: one supplier per side, and the supplier account of A's -------------------------
        for name, side in sides.items():
            supplier = self.post(
                "sourcing",
                "/suppliers",
                staff,
                {
                    "name": f"Grosir {name} {self.tag}",
                    "contact": "Bu Sri",
                    "service_kecamatan_codes": [side.kecamatan],
                    "offers": [
                        {
                            "commodity": SUPPLY[name],
                            "unit_price": 12000,
                            "min_order": 1,
                            "capacity_per_week": 100000,
                            "lead_time_days": 2,
                        }
                    ],
                },
                201,
            )
            side.ids["supplier"] = supplier["id"]
        principals["supplier"] = self.user("supplier", "supplier", supplier_id=sides["A"]["supplier"])
        managers = {"A": principals["manager_a"], "B": principals["manager_b"]}

        # --- notifications: subscriptions before anything happens, so deliveries follow ------------------
        hook = "http://127.0.0.1:9/kkmp-hook"  # nothing listens: the deliveries fail and are kept
        for name, owner in (("A", principals["officer_in"]), ("B", admin)):
            subscription = self.post(
                "notifications",
                "/subscriptions",
                owner.headers,
                {
                    "channel": "webhook",
                    "target": hook,
                    "event_types": ["stock.stalled.v1"],
                    "kecamatan_codes": [sides[name].kecamatan],
                },
                201,
            )
            sides[name].ids["subscription"] = subscription["id"]
        globals_: dict[str, str] = {}
        for key in ("rule", "rule_delete"):
            rule = self.post(
                "notifications",
                "/routing-rules",
                staff,
                {
                    "event_type": "stock.low.v1",
                    "audience": "admins",
                    "when": {"commodity": [f"{key}-{self.tag}"]},
                },
                201,
            )
            globals_[key] = rule["id"]

        # --- registry: members, potentials, trainings --------------------------------------------------
        for name, side in sides.items():
            member = self.post(
                "registry",
                f"/cooperatives/{side.cooperative}/members",
                managers[name].headers,
                {"name": f"Warga {name}", "kind": "resident"},
                201,
            )
            side.ids["member"] = member["id"]
            potential = self.post(
                "registry",
                f"/kelurahan/{side.kelurahan}/potentials",
                managers[name].headers,
                {"sector": "kuliner", "description": f"Sentra kue {name}", "priority": 2},
                201,
            )
            side.ids["potential"] = potential["id"]
            for key in ("training", "training_complete"):
                training = self.post(
                    "registry",
                    "/trainings",
                    staff,
                    {
                        "title": f"Pelatihan {key} {name} {self.tag}",
                        "topic": "pembukuan",
                        "kecamatan_code": side.kecamatan,
                        "starts_on": (clock.now() - timedelta(days=3)).date().isoformat(),
                    },
                    201,
                )
                side.ids[key] = training["id"]
            self.post(
                "registry",
                f"/trainings/{side['training']}/participants",
                managers[name].headers,
                {"participants": [{"cooperative_id": side.cooperative, "name": f"Pengurus {name}"}]},
                201,
            )

        # --- inventory: stock that stalls, and a movement of each side ---------------------------------
        long_ago = (clock.now() - timedelta(days=25)).isoformat()
        for name, side in sides.items():
            stock_url = f"/cooperatives/{side.cooperative}/stock"
            wait_until(
                lambda u=stock_url, h=managers[name].headers: (
                    self.http.get(self.url("inventory", u), headers=h).status_code == 200
                ),
                timeout=60,
                message=f"inventory knows cooperative {name}",
            )
            for commodity in STALLED[name]:
                movement = self.post(
                    "inventory",
                    f"/cooperatives/{side.cooperative}/movements",
                    managers[name].headers,
                    {
                        "commodity": commodity,
                        "kind": "receipt",
                        "quantity": STALLED_QUANTITY,
                        "unit_price": 15000,
                        "occurred_at": long_ago,
                        "reference": f"SJ-{commodity}-{name}-{self.tag}",
                    },
                    201,
                )
                side.ids.setdefault("movement", movement["id"])
            movement = self.post(
                "inventory",
                f"/cooperatives/{side.cooperative}/movements",
                managers[name].headers,
                {"commodity": "lpg_3kg", "kind": "receipt", "quantity": "40", "unit_price": 16000},
                201,
            )
            side.ids["movement_recent"] = movement["id"]

        # --- sourcing: needs (sourcing learns cooperatives from events: retry until it knows them) -------
        future = (clock.now() + timedelta(days=14)).date().isoformat()

        def need(side: Side, cooperative: str, body: dict[str, Any]) -> str:
            def attempt() -> str | None:
                r = self.http.post(
                    self.url("sourcing", "/needs"),
                    headers=staff,
                    json={"cooperative_id": cooperative, "needed_by": future, **body},
                )
                if r.status_code == 404:
                    return None
                return str(_ok(r, 201)["id"])

            return wait_until(attempt, timeout=60, message=f"sourcing knows {cooperative}")

        for name, side in sides.items():
            supply = {"kind": "supply", "commodity": SUPPLY[name], "quantity": "1000"}
            side.ids["need"] = need(side, side.cooperative, {**supply, "description": f"Stok {name}"})
            side.ids["need_status"] = need(
                side, side.cooperative, {"kind": "training", "description": f"Pelatihan kasir {name}"}
            )
            side.ids["need_partner"] = need(
                side, side.partner, {**supply, "description": f"Stok mitra {name}"}
            )
            for commodity in STALLED[name]:  # the partner needs what stalls at the side: proposals follow
                need(
                    side,
                    side.partner,
                    {
                        "kind": "supply",
                        "commodity": commodity,
                        "quantity": STALLED_QUANTITY,
                        "description": "Butuh",
                    },
                )
            for key in ("order", "order_cancel"):
                order = self.post(
                    "sourcing",
                    "/orders",
                    staff,
                    {"need_id": side["need"], "supplier_id": side["supplier"], "quantity": "20"},
                    201,
                )
                side.ids[key] = order["id"]
            self.post(
                "sourcing",
                f"/needs/{side['need']}/comments",
                managers[name].headers,
                {"text": f"Mohon segera {name}"},
                201,
            )

        # --- detection: the stock stalls, and every service reacts to the events -----------------------
        self.post("inventory", "/detections/run", staff, {}, 200)
        for name, side in sides.items():

            def proposals(side: Side = side) -> dict[str, str] | None:
                body = self.get(
                    "sourcing", "/redistributions", staff, cooperative_id=side.cooperative, limit=50
                )
                found = {
                    p["commodity"]: p["id"]
                    for p in body["items"]
                    if p["from_cooperative_id"] == side.cooperative and p["to_cooperative_id"] == side.partner
                }
                return found if set(STALLED[side.name]) <= set(found) else None

            found = wait_until(proposals, timeout=60, message=f"redistribution proposals of {name}")
            accept, decline = STALLED[name]
            side.ids["proposal_accept"], side.ids["proposal_decline"] = found[accept], found[decline]

            def inbox(manager: Principal = managers[name], side: Side = side) -> str | None:
                rows = self.get("notifications", "/me/notifications", manager.headers)
                ids = [n["id"] for n in rows if n.get("cooperative_id") == side.cooperative]
                return ids[0] if ids else None

            side.ids["notification"] = wait_until(inbox, timeout=60, message=f"inbox of manager {name}")

            def delivery(side: Side = side) -> str | None:
                body = self.get("notifications", "/deliveries", staff, subscription_id=side["subscription"])
                return body["items"][0]["id"] if body["items"] else None

            side.ids["delivery"] = wait_until(delivery, timeout=60, message=f"delivery of {name}")

            def reported(side: Side = side) -> bool:
                rows = self.http.get(self.url("reporting", "/stalled"), headers=staff).json()
                return any(r["cooperative_id"] == side.cooperative for r in rows)

            wait_until(reported, timeout=60, message=f"reporting lists {name}'s stalled stock")

        # --- reporting: a monthly report of each side ------------------------------------------------------
        for name, side in sides.items():
            report = self.post(
                "reporting",
                f"/cooperatives/{side.cooperative}/reports",
                managers[name].headers,
                {"period": "2024-01", "omzet": 1_500_000, "transactions": 40, "members": 25},
                201,
            )
            side.ids["report"] = report["id"]

        # --- inventory: a commodity of the matrix's own (the catalogue is global, admin-only) ------------
        for key in ("commodity",):
            code = f"sec_{self.tag}"
            self.post(
                "inventory",
                "/commodities",
                staff,
                {"code": code, "name": "Kacang hijau", "unit": "kg", "stall_days": 14},
                201,
            )
            globals_[key] = code

        coop_kecamatan = {s.cooperative: s.kecamatan for s in sides.values()}
        coop_kecamatan.update({s.partner: s.kecamatan for s in sides.values()})
        return City(self.platform, principals, sides, globals_, coop_kecamatan, spare)


@pytest.fixture(scope="session")
def city_builder() -> type[CityBuilder]:
    """The builder itself, for tests that build the same city on a platform of their own."""
    return CityBuilder


@pytest.fixture(scope="session")
def city(platform: Platform, admin_headers: dict[str, str]) -> City:
    builder = CityBuilder(platform, admin_headers)
    try:
        return builder.build()
    except Exception:
        print(platform.logs())
        raise


@pytest.fixture(scope="session")
def fresh_platform(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Start a further platform of its own (for tests that must not touch the shared one: fuzzing,
    throttling); a context manager that stops it and drops its databases."""
    from contextlib import contextmanager

    @contextmanager
    def start(
        names: tuple[str, ...], *, postgres: bool = True, extra_env: dict[str, str] | None = None
    ) -> Iterator[Platform]:
        work = tmp_path_factory.mktemp("secplatform")
        with started_platform(names, work, prefix="sec", postgres=postgres, extra_env=extra_env) as plat:
            yield plat

    return start
