"""The authorisation matrix: every route of every service (read from its /openapi.json) × every kind
of caller × {A's object, B's object, an object that does not exist}.

Each route is declared once below with who may call it and what it acts on; a route the services
publish that is not declared here (or declared and no longer published) fails the test, so a new
endpoint cannot ship without its access rule being stated and checked. For each cell the answer's
status must be the expected one, and every 2xx answer is searched for what the caller must never
see: the ids of the other side's objects (canaries), and rows of cooperatives outside its scope.
Denied calls go first, so that a write that should have been refused but was applied cannot hide
behind a later legitimate one.

The same route table drives two further sweeps: unknown and privileged fields added to every body
(mass assignment), and hostile text (NUL, lone surrogates, control characters, very long and
injection-shaped strings) in every parameter and every text field, which must never be a 500.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

MISSING_ID = "00000000-0000-4000-8000-00000000dead"
API_SERVICES = ("registry", "inventory", "sourcing", "reporting", "notifications")
# Routes anyone may call (reference data, the token endpoint, operations, the public figures).
PUBLIC = {
    ("registry", "GET", "/regions/kecamatan"),
    ("registry", "GET", "/regions/kelurahan"),
    ("registry", "GET", "/regions/summary"),
    ("registry", "GET", "/.well-known/jwks.json"),
    ("registry", "POST", "/auth/token"),
    ("reporting", "GET", "/public/summary"),
    ("reporting", "GET", "/public/kecamatan"),
}
OPERATIONS = ("/health/live", "/health/ready", "/metrics", "/asyncapi.json")
# The order callers are tried in: those who must be refused first.
PRINCIPALS = (
    "anonymous",
    "supplier",
    "officer_out",
    "manager_b",
    "manager_a",
    "officer_in",
    "service",
    "admin",
)
PEOPLE = frozenset({"admin", "officer", "coop_manager", "supplier"})
ALL = PEOPLE | {"service"}
STAFF = frozenset({"admin", "officer"})
RUNNERS = frozenset({"admin", "officer", "service"})
COOP_ROLES = frozenset({"admin", "officer", "coop_manager", "service"})
ADMIN = frozenset({"admin"})


@dataclass
class Ctx:
    """One cell of the matrix: the city, the caller, the object (A, B, missing or mixed) and its side."""

    city: Any
    principal: Any
    obj: str
    route: int  # the route's place in ROUTES
    seq: int  # a number of its own per call

    @property
    def side(self) -> Any:
        return self.city.sides["A" if self.obj in ("A", "mixed") else "B"] if self.obj != "missing" else None

    def id(self, key: str) -> str:
        """The side's object of that name, or an id nothing has."""
        return MISSING_ID if self.obj == "missing" else self.side[key]

    @property
    def coop(self) -> str:
        return MISSING_ID if self.obj == "missing" else self.side.cooperative

    @property
    def unique(self) -> str:
        return f"{uuid.uuid4().hex[:8]}{self.seq}"


Value = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str
    roles: frozenset[str]
    scope: str = "side"  # global | object | side | owner | filter
    params: Value | None = None
    query: Value | None = None
    body: Value | None = None
    files: Value | None = None
    ok: frozenset[int] = frozenset({200})
    tolerate: frozenset[int] = frozenset()  # for allowed callers after an earlier success (409)
    visible: Callable[[Any, Any, str], bool] | None = None  # (principal, side, obj) → may act on it
    denied: frozenset[int] = frozenset({403})  # a role that may not call the route at all
    missing: frozenset[int] | None = None  # the answer for an object that does not exist
    coop_in_request: bool = False  # the cooperative is named in the path/body: a manager's write → 403
    objects: tuple[str, ...] = ("missing", "B", "A")
    needs_success: bool = True
    kecamatan_rows: bool = True  # rows name kecamatan an officer must cover

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)

    @property
    def is_read(self) -> bool:
        return self.method == "GET"


def sees(principal: Any, side: Any) -> bool:
    """Whether a caller may see a side's cooperative data (the contract's scope rules)."""
    role = principal.role
    if role in ("admin", "service"):
        return True
    if role == "coop_manager":
        return principal.cooperative == side.name
    if role == "officer":
        return not principal.kecamatan_codes or side.kecamatan in principal.kecamatan_codes
    return False


def addressed(principal: Any, side: Any, obj: str) -> bool:
    """Needs and orders of A are addressed to the supplier; nothing of B is."""
    if principal.role == "supplier":
        return side.name == "A"
    return sees(principal, side)


def anyone(principal: Any, side: Any, obj: str) -> bool:
    return True


def own_supplier(principal: Any, side: Any, obj: str) -> bool:
    return principal.role != "supplier" or side.name == "A"


OWNERS = {
    "notification": {"A": "manager_a", "B": "manager_b"},
    "subscription": {"A": "officer_in", "B": "admin"},
}


def owned(kind: str, admin_sees_all: bool) -> Callable[[Any, Any, str], bool]:
    def check(principal: Any, side: Any, obj: str) -> bool:
        if admin_sees_all and principal.role == "admin":
            return True
        return OWNERS[kind][side.name] == principal.name

    return check


def p(**values: Value) -> Value:
    """Path parameters, each a function of the cell."""
    return lambda ctx: {k: v(ctx) for k, v in values.items()}


coop: Value = lambda ctx: ctx.coop  # noqa: E731


def ident(key: str) -> Value:
    return lambda ctx: ctx.id(key)


def kecamatan(ctx: Ctx) -> str:
    return "35.78.99" if ctx.obj == "missing" else ctx.side.kecamatan


def kelurahan(ctx: Ctx) -> str:
    return "35.78.99.9999" if ctx.obj == "missing" else ctx.side.kelurahan


def reserved_kelurahan(ctx: Ctx) -> str:
    """A free kelurahan per route: only the administrator's call registers a cooperative in it."""
    cache = ctx.city.__dict__.setdefault("_reserved", {})
    if ctx.route not in cache:
        cache[ctx.route] = ctx.city.kelurahan()["code"]
    return str(cache[ctx.route])


def movement(ctx: Ctx, commodity: str = "lpg_3kg") -> dict[str, Any]:
    return {"commodity": commodity, "kind": "receipt", "quantity": "1", "unit_price": 16000}


def period(ctx: Ctx) -> str:
    """A report period of its own per call and route (a second report of a period is a 409)."""
    year = 2000 + (ctx.route % 5) * 4 + (ctx.seq // 12) % 4
    return f"{year}-{ctx.seq % 12 + 1:02d}"


def csv_file(ctx: Ctx) -> dict[str, Any]:
    row = f"KKMP Impor {ctx.unique},{reserved_kelurahan(ctx)},new\n"
    return {"file": ("koperasi.csv", b"name,kelurahan_code,formation\n" + row.encode(), "text/csv")}


ROUTES: list[Route] = [
    # --- registry ------------------------------------------------------------------------------
    Route(
        "registry",
        "POST",
        "/users",
        ADMIN,
        "global",
        ok=frozenset({201}),
        body=lambda c: {"username": f"sec-user-{c.unique}", "password": "matrix-pass-123", "role": "officer"},
    ),
    Route("registry", "GET", "/users", ADMIN, "global"),
    Route("registry", "GET", "/users/me", PEOPLE, "global", denied=frozenset({404})),
    Route(
        "registry",
        "POST",
        "/users/me/password",
        PEOPLE,
        "global",
        ok=frozenset({204}),
        denied=frozenset({404}),
        body=lambda c: _password_change(c),
    ),
    Route("registry", "GET", "/users/{user_id}", ADMIN, params=p(user_id=lambda c: _manager_id(c))),
    Route(
        "registry",
        "POST",
        "/cooperatives",
        ADMIN,
        "global",
        ok=frozenset({201}),
        body=lambda c: {
            "name": f"KKMP Matriks {c.unique}",
            "kelurahan_code": reserved_kelurahan(c),
            "formation": "new",
        },
    ),
    Route(
        "registry",
        "POST",
        "/cooperatives/batch",
        ADMIN,
        "global",
        ok=frozenset({201}),
        body=lambda c: {
            "cooperatives": [
                {
                    "name": f"KKMP Batch {c.unique}",
                    "kelurahan_code": reserved_kelurahan(c),
                    "formation": "new",
                }
            ]
        },
    ),
    Route("registry", "POST", "/cooperatives/import", ADMIN, "global", ok=frozenset({201}), files=csv_file),
    Route(
        "registry",
        "GET",
        "/cooperatives",
        COOP_ROLES,
        "filter",
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route("registry", "GET", "/cooperatives/{cooperative_id}", COOP_ROLES, params=p(cooperative_id=coop)),
    Route(
        "registry",
        "PATCH",
        "/cooperatives/{cooperative_id}",
        COOP_ROLES,
        params=p(cooperative_id=coop),
        body=lambda c: {"phone": f"031-{c.seq:06d}"},
        coop_in_request=True,
    ),
    Route(
        "registry",
        "GET",
        "/cooperatives/{cooperative_id}/status-history",
        COOP_ROLES,
        params=p(cooperative_id=coop),
    ),
    Route(
        "registry",
        "PUT",
        "/cooperatives/{cooperative_id}/board",
        COOP_ROLES,
        params=p(cooperative_id=coop),
        body=lambda c: {"members": [{"name": "Ibu Ketua", "position": "ketua"}]},
        coop_in_request=True,
    ),
    Route(
        "registry",
        "POST",
        "/cooperatives/{cooperative_id}/members",
        COOP_ROLES,
        ok=frozenset({201}),
        params=p(cooperative_id=coop),
        body=lambda c: {"name": f"Warga {c.unique}", "kind": "resident"},
        coop_in_request=True,
    ),
    Route(
        "registry", "GET", "/cooperatives/{cooperative_id}/members", COOP_ROLES, params=p(cooperative_id=coop)
    ),
    Route(
        "registry",
        "POST",
        "/cooperatives/{cooperative_id}/members/batch",
        COOP_ROLES,
        ok=frozenset({201}),
        params=p(cooperative_id=coop),
        body=lambda c: {
            "members": [
                {
                    "name": f"Warga {c.unique}",
                    "kind": "umkm",
                    "business": {"sector": "kuliner", "products": ["kue"]},
                }
            ]
        },
        coop_in_request=True,
    ),
    Route(
        "registry",
        "POST",
        "/kelurahan/{code}/potentials",
        COOP_ROLES,
        ok=frozenset({201}),
        params=p(code=kelurahan),
        body=lambda c: {"sector": "kerajinan", "description": "Anyaman bambu", "priority": 3},
        coop_in_request=True,
    ),
    Route("registry", "GET", "/kelurahan/{code}/potentials", COOP_ROLES, params=p(code=kelurahan)),
    Route(
        "registry",
        "GET",
        "/potentials",
        COOP_ROLES,
        "filter",
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route(
        "registry",
        "POST",
        "/trainings",
        STAFF,
        ok=frozenset({201}),
        objects=("B", "A"),
        body=lambda c: {
            "title": f"Pelatihan {c.unique}",
            "topic": "koperasi",
            "kecamatan_code": kecamatan(c),
            "starts_on": "2025-01-10",
        },
    ),
    Route(
        "registry",
        "GET",
        "/trainings",
        COOP_ROLES,
        "filter",
        query=lambda c: {"cooperative_id": c.coop},
        kecamatan_rows=False,
    ),
    Route(
        "registry",
        "GET",
        "/trainings/{training_id}",
        COOP_ROLES,
        "object",
        visible=anyone,
        params=p(training_id=ident("training")),
        kecamatan_rows=False,
    ),
    Route(
        "registry",
        "POST",
        "/trainings/{training_id}/participants",
        COOP_ROLES,
        ok=frozenset({201}),
        params=p(training_id=ident("training")),
        kecamatan_rows=False,
        coop_in_request=True,
        body=lambda c: {"participants": [{"cooperative_id": c.coop, "name": f"Peserta {c.unique}"}]},
    ),
    Route(
        "registry",
        "POST",
        "/trainings/{training_id}/complete",
        STAFF,
        params=p(training_id=ident("training_complete")),
        tolerate=frozenset({409}),
        kecamatan_rows=False,
        body=lambda c: {},
    ),
    # --- inventory -----------------------------------------------------------------------------
    Route("inventory", "GET", "/commodities", ALL, "global"),
    Route(
        "inventory",
        "POST",
        "/commodities",
        ADMIN,
        "global",
        ok=frozenset({201}),
        body=lambda c: {"code": f"sec_new_{c.unique}", "name": "Jagung pipil", "unit": "kg"},
    ),
    Route(
        "inventory",
        "GET",
        "/commodities/{code}",
        ALL,
        "object",
        visible=anyone,
        objects=("missing", "A"),
        params=p(code=lambda c: c.city.globals["commodity"] if c.obj != "missing" else "no_such_thing"),
    ),
    Route(
        "inventory",
        "PATCH",
        "/commodities/{code}",
        ADMIN,
        "object",
        visible=anyone,
        objects=("missing", "A"),
        params=p(code=lambda c: c.city.globals["commodity"] if c.obj != "missing" else "no_such_thing"),
        body=lambda c: {"name": f"Kacang hijau {c.seq}"},
    ),
    Route(
        "inventory",
        "GET",
        "/commodities/{code}/ceilings",
        ALL,
        "object",
        visible=anyone,
        objects=("missing", "A"),
        params=p(code=lambda c: c.city.globals["commodity"] if c.obj != "missing" else "no_such_thing"),
    ),
    Route(
        "inventory",
        "POST",
        "/commodities/{code}/ceilings",
        ADMIN,
        "object",
        visible=anyone,
        objects=("missing", "A"),
        ok=frozenset({201}),
        params=p(code=lambda c: c.city.globals["commodity"] if c.obj != "missing" else "no_such_thing"),
        body=lambda c: {"price_ceiling": 21000, "ceiling_kind": "HET", "legal_basis": "Perwali"},
    ),
    Route(
        "inventory",
        "POST",
        "/cooperatives/{cooperative_id}/movements",
        COOP_ROLES,
        ok=frozenset({201}),
        params=p(cooperative_id=coop),
        body=movement,
        coop_in_request=True,
    ),
    Route(
        "inventory",
        "GET",
        "/cooperatives/{cooperative_id}/movements",
        COOP_ROLES,
        params=p(cooperative_id=coop),
    ),
    Route(
        "inventory",
        "POST",
        "/cooperatives/{cooperative_id}/movements/batch",
        COOP_ROLES,
        ok=frozenset({201}),
        params=p(cooperative_id=coop),
        body=lambda c: {"movements": [movement(c), movement(c, "garam")]},
        coop_in_request=True,
    ),
    Route(
        "inventory",
        "GET",
        "/cooperatives/{cooperative_id}/movements/{movement_id}",
        COOP_ROLES,
        objects=("missing", "B", "A", "mixed"),
        params=p(
            cooperative_id=coop,
            movement_id=lambda c: c.city.sides["B"]["movement"] if c.obj == "mixed" else c.id("movement"),
        ),
    ),
    Route(
        "inventory", "GET", "/cooperatives/{cooperative_id}/stock", COOP_ROLES, params=p(cooperative_id=coop)
    ),
    Route(
        "inventory",
        "GET",
        "/cooperatives/{cooperative_id}/valuation",
        COOP_ROLES,
        params=p(cooperative_id=coop),
    ),
    Route("inventory", "GET", "/stock", RUNNERS, "filter", query=lambda c: {"kecamatan_code": kecamatan(c)}),
    Route("inventory", "POST", "/detections/run", RUNNERS, "global", body=lambda c: {}),
    Route("inventory", "GET", "/detections", RUNNERS, "global"),
    # --- sourcing ------------------------------------------------------------------------------
    Route(
        "sourcing",
        "POST",
        "/suppliers",
        STAFF,
        "global",
        ok=frozenset({201}),
        body=lambda c: {"name": f"Toko {c.unique}", "service_kecamatan_codes": ["35.78.23"]},
    ),
    Route(
        "sourcing",
        "POST",
        "/suppliers/batch",
        STAFF,
        "global",
        ok=frozenset({201}),
        body=lambda c: {"suppliers": [{"name": f"Toko Batch {c.unique}"}]},
    ),
    Route("sourcing", "GET", "/suppliers", ALL, "global"),
    Route(
        "sourcing",
        "GET",
        "/suppliers/{supplier_id}",
        ALL,
        "object",
        visible=own_supplier,
        params=p(supplier_id=ident("supplier")),
    ),
    Route(
        "sourcing",
        "PATCH",
        "/suppliers/{supplier_id}",
        STAFF,
        "object",
        visible=anyone,
        params=p(supplier_id=ident("supplier")),
        body=lambda c: {"phone": f"0812{c.seq:06d}"},
    ),
    Route(
        "sourcing",
        "PUT",
        "/suppliers/{supplier_id}/offers",
        STAFF | {"supplier"},
        "object",
        visible=own_supplier,
        params=p(supplier_id=ident("supplier")),
        body=lambda c: {
            "offers": [
                {
                    "commodity": "beras_medium" if c.obj == "A" else "minyakita",
                    "unit_price": 12000,
                    "min_order": 1,
                    "capacity_per_week": 100000,
                    "lead_time_days": 2,
                }
            ]
        },
    ),
    Route(
        "sourcing",
        "POST",
        "/needs",
        COOP_ROLES,
        ok=frozenset({201}),
        coop_in_request=True,
        body=lambda c: {"cooperative_id": c.coop, "kind": "other", "description": f"Kendala {c.unique}"},
    ),
    Route(
        "sourcing",
        "POST",
        "/needs/batch",
        COOP_ROLES,
        ok=frozenset({201}),
        coop_in_request=True,
        body=lambda c: {
            "needs": [
                {
                    "cooperative_id": c.coop,
                    "kind": "capital",
                    "amount": 5_000_000,
                    "description": f"Modal {c.unique}",
                }
            ]
        },
    ),
    Route(
        "sourcing",
        "GET",
        "/needs",
        ALL,
        "filter",
        visible=addressed,
        query=lambda c: {"cooperative_id": c.coop},
    ),
    Route(
        "sourcing", "GET", "/needs/stats", RUNNERS, "filter", query=lambda c: {"kecamatan_code": kecamatan(c)}
    ),
    Route("sourcing", "GET", "/needs/pooling", STAFF, "global"),
    Route("sourcing", "GET", "/needs/{need_id}", ALL, visible=addressed, params=p(need_id=ident("need"))),
    Route(
        "sourcing",
        "POST",
        "/needs/{need_id}/status",
        STAFF,
        params=p(need_id=ident("need_status")),
        body=lambda c: {"status": "acknowledged", "note": "Diterima"},
        tolerate=frozenset({409}),
    ),
    Route("sourcing", "POST", "/needs/{need_id}/match", STAFF, params=p(need_id=ident("need"))),
    Route(
        "sourcing",
        "GET",
        "/needs/{need_id}/comments",
        ALL,
        visible=addressed,
        params=p(need_id=ident("need")),
    ),
    Route(
        "sourcing",
        "POST",
        "/needs/{need_id}/comments",
        PEOPLE,
        ok=frozenset({201}),
        visible=addressed,
        params=p(need_id=ident("need")),
        body=lambda c: {"text": f"Catatan {c.unique}"},
    ),
    Route(
        "sourcing",
        "GET",
        "/redistributions",
        COOP_ROLES | {"supplier"},
        "filter",
        query=lambda c: {"cooperative_id": c.coop},
    ),
    Route(
        "sourcing",
        "GET",
        "/redistributions/{proposal_id}",
        COOP_ROLES,
        params=p(proposal_id=ident("proposal_accept")),
    ),
    Route(
        "sourcing",
        "POST",
        "/redistributions/{proposal_id}/accept",
        PEOPLE - {"supplier"},
        params=p(proposal_id=ident("proposal_accept")),
        body=lambda c: {},
        tolerate=frozenset({409}),
    ),
    Route(
        "sourcing",
        "POST",
        "/redistributions/{proposal_id}/decline",
        PEOPLE - {"supplier"},
        params=p(proposal_id=ident("proposal_decline")),
        body=lambda c: {"note": "Tidak perlu"},
        tolerate=frozenset({409}),
    ),
    Route(
        "sourcing",
        "GET",
        "/stalled-items",
        COOP_ROLES | {"supplier"},
        "filter",
        query=lambda c: {"cooperative_id": c.coop},
    ),
    Route(
        "sourcing",
        "POST",
        "/orders",
        STAFF,
        ok=frozenset({201}),
        body=lambda c: {"need_id": c.id("need"), "supplier_id": c.id("supplier"), "quantity": "1"},
    ),
    Route(
        "sourcing",
        "POST",
        "/orders/pooled",
        STAFF,
        ok=frozenset({201}),
        body=lambda c: {
            "need_ids": [c.id("need"), c.id("need_partner") if c.side else MISSING_ID[:-4] + "beef"],
            "supplier_id": c.id("supplier"),
        },
        tolerate=frozenset({409}),
    ),
    Route(
        "sourcing",
        "GET",
        "/orders",
        ALL,
        "filter",
        visible=addressed,
        query=lambda c: {"cooperative_id": c.coop},
    ),
    Route("sourcing", "GET", "/orders/{order_id}", ALL, visible=addressed, params=p(order_id=ident("order"))),
    Route(
        "sourcing",
        "POST",
        "/orders/{order_id}/confirm",
        STAFF | {"supplier"},
        visible=addressed,
        params=p(order_id=ident("order")),
        body=lambda c: {},
        tolerate=frozenset({409}),
    ),
    Route(
        "sourcing",
        "POST",
        "/orders/{order_id}/deliver",
        STAFF | {"supplier"},
        visible=addressed,
        params=p(order_id=ident("order")),
        body=lambda c: {"quantity": "1"},
        tolerate=frozenset({409}),
    ),
    Route(
        "sourcing",
        "POST",
        "/orders/{order_id}/cancel",
        STAFF | {"supplier"},
        visible=addressed,
        params=p(order_id=ident("order_cancel")),
        body=lambda c: {"reason": "Batal"},
        tolerate=frozenset({409}),
    ),
    # --- reporting -----------------------------------------------------------------------------
    Route("reporting", "GET", "/dashboard/summary", RUNNERS, "global"),
    Route("reporting", "GET", "/kecamatan", RUNNERS, "global"),
    Route(
        "reporting",
        "GET",
        "/timeseries/sales",
        COOP_ROLES,
        "filter",
        query=lambda c: {"cooperative_id": c.coop},
    ),
    Route(
        "reporting",
        "GET",
        "/dashboard/timeseries",
        COOP_ROLES,
        "filter",
        query=lambda c: {"cooperative_id": c.coop},
    ),
    Route(
        "reporting", "GET", "/stalled", COOP_ROLES, "filter", query=lambda c: {"kecamatan_code": kecamatan(c)}
    ),
    Route(
        "reporting",
        "GET",
        "/needs/response-times",
        RUNNERS,
        "filter",
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route(
        "reporting",
        "GET",
        "/price-violations",
        COOP_ROLES,
        "filter",
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route(
        "reporting",
        "GET",
        "/cooperatives",
        COOP_ROLES,
        "filter",
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route("reporting", "GET", "/cooperatives/{cooperative_id}", COOP_ROLES, params=p(cooperative_id=coop)),
    Route(
        "reporting", "GET", "/cooperatives/{cooperative_id}/health", COOP_ROLES, params=p(cooperative_id=coop)
    ),
    Route(
        "reporting",
        "POST",
        "/cooperatives/{cooperative_id}/reports",
        COOP_ROLES,
        ok=frozenset({201}),
        params=p(cooperative_id=coop),
        coop_in_request=True,
        body=lambda c: {"period": period(c), "omzet": 2_000_000, "transactions": 30, "members": 20},
    ),
    Route(
        "reporting",
        "GET",
        "/cooperatives/{cooperative_id}/reports",
        COOP_ROLES,
        params=p(cooperative_id=coop),
    ),
    Route(
        "reporting", "GET", "/reports", COOP_ROLES, "filter", query=lambda c: {"kecamatan_code": kecamatan(c)}
    ),
    Route(
        "reporting",
        "POST",
        "/reports/batch",
        frozenset({"admin", "service"}),
        "object",
        visible=anyone,
        ok=frozenset({201}),
        missing=frozenset({422}),
        body=lambda c: {
            "reports": [
                {
                    "cooperative_id": c.coop,
                    "period": period(c),
                    "omzet": 1_000_000,
                    "transactions": 10,
                    "members": 20,
                }
            ]
        },
    ),
    Route(
        "reporting",
        "GET",
        "/reports/rates",
        RUNNERS,
        "filter",
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route("reporting", "POST", "/reports/overdue/run", RUNNERS, "global", body=lambda c: {}),
    Route("reporting", "GET", "/exports/monthly-report.pdf", RUNNERS, "global"),
    Route(
        "reporting",
        "GET",
        "/exports/{name}.csv",
        COOP_ROLES,
        "filter",
        params=p(name=lambda c: "cooperatives"),
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route(
        "reporting",
        "GET",
        "/exports/{name}.xlsx",
        COOP_ROLES,
        "filter",
        params=p(name=lambda c: "needs"),
        query=lambda c: {"kecamatan_code": kecamatan(c)},
    ),
    Route("reporting", "POST", "/admin/rebuild", ADMIN, "global"),
    Route("reporting", "POST", "/admin/health/recompute", RUNNERS, "global"),
    # --- notifications -------------------------------------------------------------------------
    Route("notifications", "GET", "/me/notifications", PEOPLE, "global"),
    Route("notifications", "GET", "/me/notifications/summary", PEOPLE, "global"),
    Route(
        "notifications",
        "POST",
        "/me/notifications/{notification_id}/read",
        PEOPLE,
        "owner",
        visible=owned("notification", admin_sees_all=False),
        params=p(notification_id=ident("notification")),
    ),
    Route("notifications", "POST", "/me/notifications/read-all", PEOPLE, "global"),
    Route("notifications", "GET", "/me/preferences", PEOPLE, "global"),
    Route("notifications", "PUT", "/me/preferences", PEOPLE, "global", body=lambda c: {"email": False}),
    Route("notifications", "GET", "/event-types", ALL, "global"),
    Route("notifications", "GET", "/routing-rules", STAFF, "global"),
    Route(
        "notifications",
        "POST",
        "/routing-rules",
        ADMIN,
        "global",
        ok=frozenset({201}),
        body=lambda c: {
            "event_type": "stock.low.v1",
            "audience": "admins",
            "when": {"commodity": [f"matrix-{c.unique}"]},
        },
    ),
    Route(
        "notifications",
        "PATCH",
        "/routing-rules/{rule_id}",
        ADMIN,
        "object",
        visible=anyone,
        objects=("missing", "A"),
        body=lambda c: {"enabled": False},
        params=p(rule_id=lambda c: c.city.globals["rule"] if c.obj != "missing" else MISSING_ID),
    ),
    Route(
        "notifications",
        "DELETE",
        "/routing-rules/{rule_id}",
        ADMIN,
        "object",
        visible=anyone,
        objects=("missing", "A"),
        ok=frozenset({204}),
        params=p(rule_id=lambda c: c.city.globals["rule_delete"] if c.obj != "missing" else MISSING_ID),
    ),
    Route(
        "notifications",
        "POST",
        "/subscriptions",
        STAFF,
        ok=frozenset({201}),
        objects=("B", "A"),
        body=lambda c: {
            "channel": "email",
            "target": f"dinas-{c.unique}@example.org",
            "event_types": ["stock.stalled.v1"],
            "kecamatan_codes": [kecamatan(c)],
        },
    ),
    Route("notifications", "GET", "/subscriptions", STAFF, "global"),
    Route(
        "notifications",
        "GET",
        "/subscriptions/{subscription_id}",
        STAFF,
        "owner",
        visible=owned("subscription", admin_sees_all=True),
        params=p(subscription_id=ident("subscription")),
    ),
    Route("notifications", "GET", "/deliveries", STAFF, "global"),
    Route(
        "notifications",
        "GET",
        "/deliveries/{delivery_id}",
        STAFF,
        "owner",
        visible=owned("subscription", admin_sees_all=True),
        params=p(delivery_id=ident("delivery")),
    ),
    Route(
        "notifications",
        "POST",
        "/deliveries/{delivery_id}/retry",
        ADMIN,
        "owner",
        visible=anyone,
        ok=frozenset({202}),
        tolerate=frozenset({409}),
        needs_success=False,
        params=p(delivery_id=ident("delivery")),
    ),
    Route(
        "notifications",
        "DELETE",
        "/subscriptions/{subscription_id}",
        STAFF,
        "owner",
        ok=frozenset({204}),
        visible=owned("subscription", admin_sees_all=True),
        params=p(subscription_id=ident("subscription")),
    ),
    Route("notifications", "POST", "/escalations/run", RUNNERS, "global", body=lambda c: {}),
    Route(
        "notifications", "POST", "/digests/run", frozenset({"admin", "service"}), "global", body=lambda c: {}
    ),
    Route(
        "notifications",
        "POST",
        "/announcements",
        STAFF,
        ok=frozenset({201}),
        objects=("B", "A"),
        body=lambda c: {
            "title": "Rapat anggota",
            "body": "Rapat tahunan",
            "roles": ["coop_manager"],
            "kecamatan_codes": [kecamatan(c)],
        },
    ),
]


def _manager_id(ctx: Ctx) -> str:
    if ctx.obj == "missing":
        return MISSING_ID
    return str(ctx.city.principals["manager_a" if ctx.obj == "A" else "manager_b"].user_id)


def _password_change(ctx: Ctx) -> dict[str, str]:
    """The caller's own password, changed for real (once per caller; its token stays valid)."""
    current = ctx.principal.password or "not-a-person"
    return {"current_password": current, "new_password": f"{current}-matrix"}


# --- expectations ---------------------------------------------------------------------------------


def may_act(route: Route, principal: Any, ctx: Ctx) -> bool:
    if principal.role not in route.roles:
        return False
    if route.scope == "global" or ctx.obj == "missing":
        return True
    if ctx.obj == "mixed":
        return False
    check = route.visible or (lambda pr, side, obj: sees(pr, side))
    return check(principal, ctx.side, ctx.obj)


def expected(route: Route, principal: Any, ctx: Ctx) -> frozenset[int]:
    if principal.role is None:
        return frozenset({401})
    if principal.role not in route.roles:
        return route.denied if route.scope == "global" else route.denied | {403, 404}
    if route.scope == "global":
        return route.ok | route.tolerate
    if route.scope == "filter" and ctx.obj == "missing":
        return frozenset({200, 403, 404})
    if ctx.obj == "missing":
        if route.missing is not None:
            return route.missing
        if route.is_read:
            return frozenset({404})
        # A manager or a supplier cannot tell a missing object from another's: either answer is right.
        return frozenset({403, 404}) if principal.role in ("coop_manager", "supplier") else frozenset({404})
    if may_act(route, principal, ctx):
        return route.ok | route.tolerate
    if route.scope == "filter":
        # A filter naming what the caller may not see: refused, or answered without those rows.
        return frozenset({200, 403, 404})
    if route.is_read:
        return frozenset({404})
    if route.coop_in_request and principal.role == "coop_manager":
        return frozenset({403})
    return frozenset({403, 404})


# --- what a 2xx answer may contain ---------------------------------------------------------------


def forbidden_ids(city: Any, principal: Any, route: Route) -> set[str]:
    """Ids of objects the caller must never be shown."""
    out: set[str] = set()
    for side in city.sides.values():
        if principal.role == "supplier" and side.name == "A":
            # A's needs and orders are addressed to the supplier; nothing else of A is.
            out |= side.canaries() - {
                side.cooperative,
                side.partner,
                side["need"],
                side["order"],
                side["order_cancel"],
            }
        elif not sees(principal, side):
            out |= side.canaries()
    return out


COOP_KEYS = re.compile(r"(^|_)cooperative_id$")


def walk(value: Any, key: str = "") -> Any:
    """Every (key, scalar) pair in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict | list):
                yield from walk(v, key)
            else:
                yield key, v
    else:
        yield key, value


def body_text(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "")
    if "spreadsheetml" in content_type:
        with zipfile.ZipFile(io.BytesIO(response.content)) as book:
            return " ".join(
                book.read(n).decode("utf-8", "replace") for n in book.namelist() if n.endswith(".xml")
            )
    if "pdf" in content_type:
        return ""  # figures only; rows are checked through the JSON and CSV routes
    return response.text


def leaks(city: Any, principal: Any, route: Route, response: httpx.Response) -> list[str]:
    """What a successful answer shows that the caller may not see."""
    problems = []
    text = body_text(response)
    for canary in forbidden_ids(city, principal, route):
        if canary in text:
            problems.append(f"shows {canary}")
    if not response.headers.get("content-type", "").startswith("application/json"):
        return problems
    role = principal.role
    for key, value in walk(response.json()):
        if not isinstance(value, str) or not value:
            continue
        if COOP_KEYS.search(key) or key == "cooperative_ids":
            if role == "coop_manager":
                side = city.sides[principal.cooperative]
                if value not in (side.cooperative, side.partner):
                    problems.append(f"{key}={value} of another cooperative")
            elif role == "officer":
                kec = city.kecamatan_of(value)
                if kec is not None and principal.kecamatan_codes and kec not in principal.kecamatan_codes:
                    problems.append(f"{key}={value} in {kec}, outside the officer's scope")
            elif role == "supplier":
                side = city.sides["A"]
                if value not in (side.cooperative, side.partner):
                    problems.append(f"{key}={value} not addressed to the supplier")
        elif key == "kecamatan_code" and role == "officer" and route.kecamatan_rows and value != "*":
            # ("*" is the total row of the officer's own area.)
            if principal.kecamatan_codes and value not in principal.kecamatan_codes:
                problems.append(f"kecamatan_code={value} outside the officer's scope")
    return problems


# --- the test -------------------------------------------------------------------------------------


def published_routes(city: Any) -> set[tuple[str, str, str]]:
    routes = set()
    for service in API_SERVICES:
        spec = httpx.get(f"{city.url(service)}/openapi.json", timeout=30).json()
        for path, methods in spec["paths"].items():
            if path in OPERATIONS:
                continue
            for method in methods:
                if method in ("get", "post", "put", "patch", "delete"):
                    routes.add((service, method.upper(), path))
    return routes


def test_every_route_is_in_the_matrix(city: Any) -> None:
    published = published_routes(city) - PUBLIC
    declared = {r.key for r in ROUTES}
    assert len(declared) == len(ROUTES), "a route is declared twice"
    missing = sorted(published - declared)
    stale = sorted(declared - published)
    assert not missing, "routes with no access rule in the matrix:\n" + "\n".join(map(str, missing))
    assert not stale, "routes in the matrix the services no longer publish:\n" + "\n".join(map(str, stale))


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    cells: Counter[str] = field(default_factory=Counter)
    succeeded: set[tuple[str, str, str]] = field(default_factory=set)


def call(client: httpx.Client, city: Any, route: Route, ctx: Ctx) -> httpx.Response:
    path = route.path
    for name, value in (route.params(ctx) if route.params else {}).items():
        path = path.replace("{" + name + "}", str(value))
    kwargs: dict[str, Any] = {"headers": ctx.principal.headers}
    if route.query:
        kwargs["params"] = route.query(ctx)
    if route.files:
        kwargs["files"] = route.files(ctx)
    elif route.body:
        # Serialised here (ASCII, escaped) so that text no encoder accepts, a lone surrogate, can be sent.
        kwargs["content"] = json.dumps(route.body(ctx)).encode()
        kwargs["headers"] = {**kwargs["headers"], "Content-Type": "application/json"}
    return client.request(route.method, f"{city.url(route.service)}{path}", **kwargs)


@pytest.mark.parametrize("service", API_SERVICES)
def test_authorisation_matrix(city: Any, service: str) -> None:
    outcome = Outcome()
    seq = itertools.count(1)
    with httpx.Client(timeout=60) as client:
        for route in (r for r in ROUTES if r.service == service):
            objects = ("-",) if route.scope == "global" else route.objects
            for obj, name in itertools.product(objects, PRINCIPALS):
                principal = city.principals[name]
                ctx = Ctx(city, principal, obj if obj != "-" else "A", ROUTES.index(route), next(seq))
                want = expected(route, principal, ctx)
                response = call(client, city, route, ctx)
                status = response.status_code
                cell = f"{route.method} {route.path} [{name} × {obj}]"
                outcome.cells["allowed" if may_act(route, principal, ctx) else "refused"] += 1
                if status not in want:
                    outcome.failures.append(
                        f"{cell} → {status}, expected {sorted(want)}: {response.text[:200]}"
                    )
                    continue
                if status >= 400:
                    body = response.json() if "json" in response.headers.get("content-type", "") else {}
                    if "error" not in body:
                        outcome.failures.append(f"{cell} → {status} without the contract's error body")
                    continue
                if status < 300 and not may_act(route, principal, ctx) and route.scope != "filter":
                    outcome.failures.append(f"{cell} → {status}: a refused caller got through")
                if status < 300:
                    if may_act(route, principal, ctx):
                        outcome.succeeded.add(route.key)
                    for leak in leaks(city, principal, route, response):
                        outcome.failures.append(f"{cell} → {status} {leak}")
    unproven = [
        f"{r.method} {r.path}"
        for r in ROUTES
        if r.service == service and r.needs_success and r.key not in outcome.succeeded
    ]
    print(f"{service}: {sum(outcome.cells.values())} cells, {dict(outcome.cells)}")
    assert not outcome.failures, f"{len(outcome.failures)} cells wrong:\n" + "\n".join(outcome.failures)
    # The allowed callers really got through (so the refusals above are not 'refuse everything').
    assert not unproven, "no allowed caller succeeded on:\n" + "\n".join(unproven)


def test_matrix_covers_every_kind_of_caller(city: Any) -> None:
    """The callers are what they claim: one per role and scope the contract names."""
    roles = {name: p.role for name, p in city.principals.items()}
    assert roles == {
        "anonymous": None,
        "manager_a": "coop_manager",
        "manager_b": "coop_manager",
        "officer_in": "officer",
        "officer_out": "officer",
        "supplier": "supplier",
        "service": "service",
        "admin": "admin",
    }
    assert set(PRINCIPALS) == set(roles)
    claims = json.loads(
        __import__("base64").urlsafe_b64decode(
            city.principals["officer_in"].headers["Authorization"].split(".")[1] + "=="
        )
    )
    assert claims["kecamatan_codes"] == [city.sides["A"].kecamatan]


# --- mass assignment: privileged or unknown fields in every body ---------------------------------

PRIVILEGED: dict[str, Any] = {
    "role": "admin",
    "cooperative_id": MISSING_ID,
    "status": "resolved",
    "id": MISSING_ID,
    "supplier_id": MISSING_ID,
    "kecamatan_codes": ["35.78.01"],
    "owner_id": MISSING_ID,
    "created_by": "someone-else",
    "recorded_by": "someone-else",
    "is_admin": True,
}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
        elif "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            return schema


def _request_schema(spec: dict[str, Any], route: Route) -> dict[str, Any] | None:
    """The route's JSON body schema (None: no JSON body)."""
    operation = spec["paths"][route.path][route.method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return None if schema is None else _resolve(spec, schema)


def _item_properties(spec: dict[str, Any], schema: dict[str, Any], key: str) -> set[str]:
    """The fields declared by the objects of the list `key` of a body."""
    items = _resolve(spec, schema.get("properties", {}).get(key, {}))
    return set(_resolve(spec, items.get("items", {})).get("properties", {}))


def _caller(city: Any, route: Route) -> Any:
    for name in ("admin", "service", "officer_in", "manager_a", "supplier"):
        if city.principals[name].role in route.roles:
            return city.principals[name]
    raise AssertionError(f"nobody may call {route.method} {route.path}")


@pytest.mark.parametrize("service", API_SERVICES)
def test_privileged_and_unknown_fields_are_refused(city: Any, service: str) -> None:
    """Every JSON body, with a field it does not declare added (at the top and inside each list of
    objects): 422 naming that field, so nothing of the request was applied. Fields a body does
    declare (a need's cooperative_id, a cooperative's status) are checked for who may set them in
    test_mass_assignment.py."""
    spec = httpx.get(f"{city.url(service)}/openapi.json", timeout=30).json()
    failures: list[str] = []
    tried = 0
    seq = itertools.count(50_000)
    with httpx.Client(timeout=60) as client:
        for route in (r for r in ROUTES if r.service == service and r.body is not None):
            schema = _request_schema(spec, route)
            if schema is None:
                continue
            declared = set(schema.get("properties", {}))
            principal = _caller(city, route)
            for field_name, value in PRIVILEGED.items():
                ctx = Ctx(city, principal, "A", ROUTES.index(route), next(seq))
                body = route.body(ctx)
                targets: list[tuple[str, dict[str, Any]]] = []
                if field_name not in declared:
                    targets.append((field_name, body))
                for key, item in body.items():
                    if (
                        isinstance(item, list)
                        and item
                        and isinstance(item[0], dict)
                        and field_name not in _item_properties(spec, schema, key)
                    ):
                        targets.append((f"{key}.0.{field_name}", item[0]))
                for where, target in targets:
                    attacked = json.loads(json.dumps(body))
                    holder = attacked if target is body else attacked[where.split(".")[0]][0]
                    holder[field_name] = value
                    tried += 1
                    fake = Route(**{**route.__dict__, "body": lambda c, b=attacked: b})
                    response = call(client, city, fake, ctx)
                    details = (
                        response.json().get("error", {}).get("details") or [] if response.content else []
                    )
                    named = any(isinstance(d, dict) and d.get("field") == where for d in details)
                    if response.status_code != 422 or not named:
                        got = f"{response.status_code} {response.text[:160]}"
                        failures.append(f"{route.method} {route.path} +{where} → {got}")
    print(f"{service}: {tried} bodies with an extra field")
    assert tried > 0
    assert not failures, "\n".join(failures)


# --- hostile text in every parameter and every text field ----------------------------------------

HOSTILE_PARAMS = (
    "a\x00b",
    "\x1b[31m",
    "x" * 5000,
    "' OR '1'='1' --",
    "..%2f..%2fetc%2fpasswd",
    "\u202e\ufeff",
)
HOSTILE_TEXT = ("nul\x00inside", "lone\ud800surrogate", "\x07bell\x1bescape")


def _problem(response: httpx.Response) -> str | None:
    if response.status_code >= 500:
        return f"{response.status_code}"
    if response.status_code >= 400:
        try:
            response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return f"{response.status_code} without the contract's error body"
    return None


@pytest.mark.parametrize("service", API_SERVICES)
def test_hostile_parameters_never_break_a_service(city: Any, service: str) -> None:
    """Each path and query parameter of each route, one at a time, set to hostile text (the others
    valid): a 4xx or a normal answer, never a 500."""
    from urllib.parse import quote

    a = city.sides["A"]
    valid = {
        "cooperative_id": a.cooperative,
        "code": a.kelurahan,
        "need_id": a["need"],
        "order_id": a["order"],
        "training_id": a["training"],
        "proposal_id": a["proposal_accept"],
        "supplier_id": a["supplier"],
        "movement_id": a["movement"],
        "user_id": MISSING_ID,
        "notification_id": a["notification"],
        "subscription_id": a["subscription"],
        "delivery_id": a["delivery"],
        "rule_id": city.globals["rule"],
        "name": "cooperatives",
    }
    admin = city.principals["admin"].headers
    spec = httpx.get(f"{city.url(service)}/openapi.json", timeout=30).json()
    failures = []
    tried = 0
    with httpx.Client(timeout=60) as client:
        for path, methods in spec["paths"].items():
            if path in OPERATIONS or (service, "POST", path) == ("registry", "POST", "/auth/token"):
                continue
            for method, operation in methods.items():
                if method not in ("get", "post", "put", "patch", "delete") or method == "delete":
                    continue  # (deleting is left to the matrix; a hostile id deletes nothing anyway)
                parameters = [q for q in operation.get("parameters", []) if q["in"] in ("path", "query")]
                for target in parameters:
                    for text in HOSTILE_PARAMS:
                        concrete, query = path, {}
                        for q in parameters:
                            if q["in"] == "path":
                                value = (
                                    quote(text, safe="") if q is target else valid.get(q["name"], MISSING_ID)
                                )
                                concrete = concrete.replace("{" + q["name"] + "}", value)
                        if target["in"] == "query":
                            query[target["name"]] = text
                        tried += 1
                        try:
                            response = client.request(
                                method.upper(),
                                f"{city.url(service)}{concrete}",
                                params=query,
                                headers=admin,
                                json=None if method == "get" else {},
                            )
                        except httpx.TransportError as exc:
                            failures.append(
                                f"{method.upper()} {path} {target['name']}={text[:12]!r} → {exc!r}"
                            )
                            continue
                        if problem := _problem(response):
                            failures.append(
                                f"{method.upper()} {path} {target['name']}={text[:12]!r} → {problem}"
                            )
    print(f"{service}: {tried} hostile parameters")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


def _text_leaves(value: Any, path: tuple[Any, ...] = ()) -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _text_leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _text_leaves(v, (*path, i))
    elif isinstance(value, str):
        yield path


def _replace(value: Any, path: tuple[Any, ...], new: str) -> Any:
    copy = json.loads(json.dumps(value))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = new
    return copy


@pytest.mark.parametrize("service", API_SERVICES)
def test_hostile_text_in_bodies_never_breaks_a_service(city: Any, service: str) -> None:
    """Each text field of each valid body (sent by a caller allowed to send it), set to text the
    databases cannot store or no name should hold: refused with a 4xx, never a 500."""
    failures = []
    tried = 0
    seq = itertools.count(80_000)
    with httpx.Client(timeout=60) as client:
        for route in (r for r in ROUTES if r.service == service and r.body is not None):
            if route.path == "/users/me/password":
                continue  # a hostile password is a wrong password; the matrix checks this route
            principal = _caller(city, route)
            sample = route.body(Ctx(city, principal, "A", ROUTES.index(route), next(seq)))
            for leaf in _text_leaves(sample):
                for text in HOSTILE_TEXT:
                    ctx = Ctx(city, principal, "A", ROUTES.index(route), next(seq))
                    body = _replace(route.body(ctx), leaf, text)
                    tried += 1
                    fake = Route(**{**route.__dict__, "body": lambda c, b=body: b})
                    where = ".".join(map(str, leaf))
                    try:
                        response = call(client, city, fake, ctx)
                    except (
                        httpx.TransportError
                    ) as exc:  # a 500 before this one may have closed the connection
                        failures.append(f"{route.method} {route.path} {where}={text[:10]!r} → {exc!r}")
                        continue
                    if problem := _problem(response):
                        failures.append(f"{route.method} {route.path} {where}={text[:10]!r} → {problem}")
    print(f"{service}: {tried} hostile texts")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


def test_the_checks_themselves_can_fail(city: Any) -> None:
    """Negative controls: the expectations and the leak detector flag what they are meant to flag
    (so a matrix that passes is not one that cannot fail)."""
    a, b = city.sides["A"], city.sides["B"]
    manager_a, officer_in = city.principals["manager_a"], city.principals["officer_in"]
    read = next(r for r in ROUTES if r.path == "/cooperatives/{cooperative_id}/stock")
    write = next(
        r for r in ROUTES if r.path == "/cooperatives/{cooperative_id}/movements" and r.method == "POST"
    )
    assert expected(read, manager_a, Ctx(city, manager_a, "B", 0, 0)) == {404}
    assert expected(write, manager_a, Ctx(city, manager_a, "B", 0, 0)) == {403}
    assert expected(read, manager_a, Ctx(city, manager_a, "A", 0, 0)) == {200}
    assert expected(read, city.principals["anonymous"], Ctx(city, manager_a, "A", 0, 0)) == {401}

    def answer(body: Any) -> httpx.Response:
        return httpx.Response(200, json=body, request=httpx.Request("GET", "http://test/"))

    listing = next(r for r in ROUTES if r.path == "/needs" and r.method == "GET")
    assert not leaks(city, manager_a, listing, answer({"items": [{"cooperative_id": a.cooperative}]}))
    assert leaks(city, manager_a, listing, answer({"items": [{"cooperative_id": b.cooperative}]}))
    assert leaks(city, manager_a, listing, answer({"items": [{"id": b["need"], "note": "x"}]}))
    assert leaks(city, officer_in, listing, answer([{"kecamatan_code": b.kecamatan}]))
    assert not leaks(city, officer_in, listing, answer([{"kecamatan_code": a.kecamatan}]))
