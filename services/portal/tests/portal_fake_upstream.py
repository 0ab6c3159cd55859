"""A small stand-in for the five services, serving contract-shaped JSON, for the portal's own page tests.

One ASGI app with each service mounted under its own prefix (``/registry``, ``/inventory``...), so the
portal is pointed at ``http://127.0.0.1:<port>/<service>``. Data is deterministic: the 153 real
kelurahan each get a KKMP, with stock, needs, stalled items and notifications derived from a seeded
random generator. Tokens are unsigned JWT-shaped strings (the real services verify signatures; the
portal never does). It enforces the contract's scope rule: a coop_manager reading another
cooperative's data gets 404, writing it gets 403.
"""

from __future__ import annotations

import base64
import csv
import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Form, Header, Request
from fastapi.responses import JSONResponse, Response
from kkmp_shared import clock, refdata
from starlette.applications import Starlette
from starlette.routing import Mount

DATA = refdata.directory()
NOW = clock.now()

COMMODITIES = [
    {"code": "beras_medium", "name": "Beras medium", "unit": "kg", "price_ceiling": 13500},
    {"code": "beras_premium", "name": "Beras premium", "unit": "kg", "price_ceiling": 14900},
    {"code": "lpg_3kg", "name": "LPG 3 kg", "unit": "tabung", "price_ceiling": 18000},
    {"code": "minyakita", "name": "MinyaKita", "unit": "liter", "price_ceiling": 15700},
    {"code": "gula", "name": "Gula pasir", "unit": "kg", "price_ceiling": 17500},
    {"code": "telur", "name": "Telur ayam ras", "unit": "kg", "price_ceiling": 30000},
    {"code": "tepung_terigu", "name": "Tepung terigu", "unit": "kg", "price_ceiling": None},
]
PRICE = {c["code"]: c["price_ceiling"] or 11500 for c in COMMODITIES}


def error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status_code=status)


def make_token(claims: dict[str, Any]) -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    body = {
        "iss": "kkmp-registry",
        "aud": "kkmp",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 3600,
        **claims,
    }
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(body)}.sig"


def claims_of(authorization: str | None) -> dict[str, Any] | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization.split(" ", 1)[1]
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None


class World:
    """All the fake services' state in one place."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.down: set[str] = set()  # services answering 503, for failure tests
        self.reject_tokens = False  # every token refused (401), as after expiry or key rotation
        self.kecamatan: list[dict[str, Any]] = []
        self.kelurahan: list[dict[str, Any]] = []
        coords: dict[str, tuple[float, float]] = {}
        with (DATA / "surabaya_coords.csv").open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                coords[row["code"]] = (float(row["lat"]), float(row["lon"]))
        seen: set[str] = set()
        with (DATA / "surabaya_kelurahan.csv").open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["kecamatan_code"] not in seen:
                    seen.add(row["kecamatan_code"])
                    self.kecamatan.append({"code": row["kecamatan_code"], "name": row["kecamatan_name"]})
                lat, lon = coords.get(row["kelurahan_code"], (None, None))
                self.kelurahan.append(
                    {
                        "code": row["kelurahan_code"],
                        "name": row["kelurahan_name"],
                        "kecamatan_code": row["kecamatan_code"],
                        "lat": lat,
                        "lon": lon,
                    }
                )
        self.coops: dict[str, dict[str, Any]] = {}
        self.health: dict[str, dict[str, Any]] = {}
        self.stock: dict[str, dict[str, dict[str, Any]]] = {}
        self.movements: dict[str, list[dict[str, Any]]] = {}
        for i, kel in enumerate(self.kelurahan):
            coop_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kkmp/{kel['code']}"))
            self.coops[coop_id] = {
                "id": coop_id,
                "name": f"KKMP {kel['name']}",
                "kelurahan_code": kel["code"],
                "kecamatan_code": kel["kecamatan_code"],
                "formation": "new" if i % 3 else "revitalized",
                "deed": {
                    "number": f"AHU-{1000 + i:04d}.AH.01.29",
                    "date": "2025-07-12",
                    "notary": "Rina Hartati, S.H., M.Kn.",
                },
                "status": "operating" if i % 11 else "formed",
                "business_units": ["sembako", "lpg"] + (["apotek"] if i % 4 == 0 else []),
                "board": [
                    {"id": f"b{i}-1", "name": f"Budi Santoso {i}", "position": "ketua"},
                    {"id": f"b{i}-2", "name": f"Siti Aminah {i}", "position": "sekretaris"},
                    {"id": f"b{i}-3", "name": f"Dewi Lestari {i}", "position": "bendahara"},
                    {"id": f"b{i}-4", "name": f"Agus Salim {i}", "position": "pengawas_ketua"},
                ],
                "kelurahan_name": kel["name"],
                "member_count": 40 + rng.randint(0, 260),
            }
            score = rng.randint(15, 98)
            level = "aktif" if score >= 70 else "kurang_aktif" if score >= 40 else "tidak_aktif"
            self.health[coop_id] = {
                "cooperative_id": coop_id,
                "score": score,
                "level": level,
                "factors": [
                    {
                        "name": "trading_activity",
                        "value": round(score / 100, 2),
                        "weight": 0.3,
                        "note": "Ada penjualan pada 12 dari 28 hari terakhir (target 20 hari).",
                    },
                    {
                        "name": "reports_on_time",
                        "value": 1.0 if score > 50 else 0.0,
                        "weight": 0.2,
                        "note": "1 dari 1 laporan bulanan terakhir tepat waktu.",
                    },
                    {"name": "stalled_stock", "value": round(rng.random(), 2), "weight": 0.2, "note": "–"},
                ],
                "computed_at": NOW.isoformat(),
            }
            items: dict[str, dict[str, Any]] = {}
            for c in COMMODITIES:
                if rng.random() < 0.25:
                    continue
                on_hand = (
                    round(rng.uniform(0, 400), 1) if c["unit"] != "tabung" else float(rng.randint(0, 120))
                )
                avg = round(rng.uniform(0.5, 20), 2)
                status = "ok"
                last_sale = NOW - timedelta(days=rng.randint(0, 3), hours=rng.randint(0, 20))
                if on_hand == 0 or rng.random() < 0.07:
                    on_hand, status = 0.0, "stockout"
                elif rng.random() < 0.12:
                    status = "stalled"
                    last_sale = NOW - timedelta(days=rng.randint(15, 40))
                elif on_hand / avg < 7:
                    status = "low"
                items[c["code"]] = {
                    "commodity": c["code"],
                    "name": c["name"],
                    "unit": c["unit"],
                    "on_hand": on_hand,
                    "last_sale_at": last_sale.isoformat(),
                    "avg_daily_sales": avg,
                    "days_of_cover": round(on_hand / avg, 1) if avg else None,
                    "status": status,
                }
            self.stock[coop_id] = items
            self.movements[coop_id] = []
        self.coop_ids = list(self.coops)
        self.needs: dict[str, dict[str, Any]] = {}
        kinds = ["supply", "supply", "supply", "capital", "training", "other"]
        for n in range(40):
            coop_id = rng.choice(self.coop_ids)
            created = NOW - timedelta(days=rng.randint(0, 50), hours=rng.randint(0, 23))
            kind = rng.choice(kinds)
            status = rng.choice(["open", "open", "acknowledged", "in_progress", "resolved", "rejected"])
            history = [{"status": "open", "at": created.isoformat()}]
            if status != "open":
                history.append(
                    {
                        "status": "acknowledged",
                        "at": (created + timedelta(hours=rng.randint(2, 96))).isoformat(),
                    }
                )
            need_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"need/{n}"))
            commodity = rng.choice(COMMODITIES)["code"] if kind == "supply" else None
            self.needs[need_id] = {
                "id": need_id,
                "cooperative_id": coop_id,
                "kind": kind,
                "commodity": commodity,
                "quantity": float(rng.choice([50, 100, 250, 500])) if kind == "supply" else None,
                "needed_by": (NOW + timedelta(days=rng.randint(3, 20))).date().isoformat(),
                "description": "Permintaan warga meningkat menjelang hari raya; stok di gudang tidak cukup."
                if kind == "supply"
                else "Butuh pendampingan pembukuan dan akses modal kerja.",
                "status": status,
                "submitted_at": created.isoformat(),
                "created_at": created.isoformat(),
                "history": history,
                "unit": next(c["unit"] for c in COMMODITIES if c["code"] == commodity) if commodity else None,
                "cooperative_name": self.coops[coop_id]["name"],
            }
        self.suppliers = [
            {
                "id": f"sup-{i}",
                "name": name,
                "kind": "wholesaler",
                "contact": "Bagian penjualan",
                "phone": f"0812-3456-78{i:02d}",
                "email": f"sales{i}@contoh.id",
                "active": True,
                "performance": {"orders": 4 + i, "on_time": 3, "on_time_rate": 0.75, "fill_rate": 0.9},
                "service_kecamatan_codes": codes,
                "offers": [
                    {
                        "commodity": c,
                        "unit_price": int(PRICE[c] * 0.9),
                        "unit": next(x["unit"] for x in COMMODITIES if x["code"] == c),
                        "min_order": 50,
                        "capacity_per_week": 2000,
                        "lead_time_days": 2 + i,
                    }
                    for c in offers
                ],
            }
            for i, (name, codes, offers) in enumerate(
                [
                    ("CV Sumber Pangan Jaya", [], ["beras_medium", "beras_premium", "gula"]),
                    ("PT Agen LPG Surabaya Timur", ["35.78.03", "35.78.08"], ["lpg_3kg"]),
                    ("UD Minyak Nusantara", [], ["minyakita", "tepung_terigu"]),
                    ("Koperasi Peternak Telur Benowo", ["35.78.26", "35.78.27"], ["telur"]),
                ]
            )
        ]
        self.orders: list[dict[str, Any]] = []
        self.redistributions: dict[str, dict[str, Any]] = {}
        stalled_coops = [
            (cid, code)
            for cid, items in self.stock.items()
            for code, it in items.items()
            if it["status"] == "stalled"
        ]
        for n, (cid, code) in enumerate(stalled_coops[:8]):
            to = self.coop_ids[(self.coop_ids.index(cid) + 1) % len(self.coop_ids)]
            pid = f"red-{n}"
            self.redistributions[pid] = {
                "id": pid,
                "commodity": code,
                "from_cooperative_id": cid,
                "to_cooperative_id": to,
                "quantity": round(self.stock[cid][code]["on_hand"] / 2, 1),
                "distance_km": round(rng.uniform(0.8, 6), 1),
                "status": "proposed",
                "reason": "stockout",
                "from_side": {"decision": None},
                "to_side": {"decision": None},
                "created_at": (NOW - timedelta(hours=n * 5)).isoformat(),
            }
        self.reports: dict[str, list[dict[str, Any]]] = {cid: [] for cid in self.coop_ids}
        self.notifications: dict[str, list[dict[str, Any]]] = {}
        self.users = {
            "admin": {
                "password": "rahasia-admin",
                "claims": {"sub": "u-admin", "role": "admin", "kecamatan_codes": []},
            },
            "petugas": {
                "password": "rahasia-petugas",
                "claims": {"sub": "u-officer", "role": "officer", "kecamatan_codes": []},
            },
            "pengurus": {
                "password": "rahasia-pengurus",
                "claims": {"sub": "u-manager", "role": "coop_manager", "cooperative_id": self.coop_ids[0]},
            },
        }
        for username, user in self.users.items():
            coop = user["claims"].get("cooperative_id") or self.coop_ids[3]
            self.notifications[user["claims"]["sub"]] = [
                {
                    "id": f"{username}-n1",
                    "event_type": "stock.stalled",
                    "title": "Stok macet: Beras medium",
                    "body": "Beras medium tidak terjual selama 16 hari.",
                    "cooperative_id": coop,
                    "created_at": (NOW - timedelta(hours=3)).isoformat(),
                    "read_at": None,
                },
                {
                    "id": f"{username}-n2",
                    "event_type": "need.status_changed",
                    "title": "Kebutuhan ditanggapi",
                    "body": "Dinkopdag menerima kebutuhan pasokan LPG Anda.",
                    "cooperative_id": coop,
                    "created_at": (NOW - timedelta(days=2)).isoformat(),
                    "read_at": (NOW - timedelta(days=1)).isoformat(),
                },
            ]
        self.idempotency: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []  # (method, path, headers, body) seen

    # --- scope ---
    def can_read(self, claims: dict[str, Any], coop_id: str) -> bool:
        if claims.get("role") == "coop_manager":
            return str(claims.get("cooperative_id")) == coop_id
        return True


def build_fake(world: World) -> Starlette:
    def service(name: str) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            if name in world.down:
                return error(503, "unavailable", f"{name} is down")
            body = await request.body()
            path = request.url.path.removeprefix(request.scope.get("root_path", ""))
            world.requests.append((request.method, f"/{name}{path}", dict(request.headers), body))
            if path.startswith(("/auth/", "/health")):
                return await call_next(request)
            claims = claims_of(request.headers.get("authorization"))
            if claims is None or world.reject_tokens:
                return error(401, "unauthorized", "Authentication is required.")
            request.state.claims = claims
            return await call_next(request)

        @app.get("/health/live")
        async def live() -> dict[str, str]:
            return {"status": "ok"}

        return app

    registry, inventory, sourcing, reporting, notifications = (
        service(n) for n in ("registry", "inventory", "sourcing", "reporting", "notifications")
    )

    def scope_read(request: Request, coop_id: str) -> JSONResponse | None:
        if coop_id not in world.coops or not world.can_read(request.state.claims, coop_id):
            return error(404, "not_found", "The cooperative does not exist.")
        return None

    def scope_write(request: Request, coop_id: str) -> JSONResponse | None:
        if coop_id not in world.coops:
            return error(404, "not_found", "The cooperative does not exist.")
        if not world.can_read(request.state.claims, coop_id):
            return error(403, "forbidden", "You may only change your own cooperative's data.")
        return None

    # --- registry ---
    @registry.post("/auth/token")
    async def token(username: str = Form(""), password: str = Form("")) -> Any:
        user = world.users.get(username)
        if not user or user["password"] != password:
            return error(401, "invalid_credentials", "Wrong username or password.")
        return {
            "access_token": make_token({**user["claims"], "username": username}),
            "token_type": "bearer",
            "expires_in": 3600,
        }

    @registry.get("/regions/kecamatan")
    async def kecamatan() -> Any:
        return world.kecamatan

    @registry.get("/regions/kelurahan")
    async def kelurahan(kecamatan_code: str | None = None) -> Any:
        return [k for k in world.kelurahan if not kecamatan_code or k["kecamatan_code"] == kecamatan_code]

    @registry.get("/cooperatives")
    async def cooperatives(
        request: Request,
        kecamatan_code: str | None = None,
        status: str | None = None,
        q: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Any:
        rows = [c for c in world.coops.values() if world.can_read(request.state.claims, c["id"])]
        rows = [
            c
            for c in rows
            if (not kecamatan_code or c["kecamatan_code"] == kecamatan_code)
            and (not status or c["status"] == status)
            and (not q or q.lower() in c["name"].lower())
        ]
        return {"items": rows[offset : offset + limit], "total": len(rows)}

    @registry.get("/cooperatives/{coop_id}")
    async def cooperative(request: Request, coop_id: str) -> Any:
        return scope_read(request, coop_id) or world.coops[coop_id]

    @registry.get("/cooperatives/{coop_id}/members")
    async def members(request: Request, coop_id: str) -> Any:
        return scope_read(request, coop_id) or {
            "items": [
                {
                    "id": f"m{i}",
                    "name": name,
                    "kind": kind,
                    "business": {"sector": "kuliner", "products": ["nasi bungkus"]}
                    if kind == "umkm"
                    else None,
                }
                for i, (name, kind) in enumerate(
                    [("Sri Wahyuni", "resident"), ("Warung Bu Yati", "umkm"), ("Ahmad Fauzi", "resident")]
                )
            ],
            "total": 3,
        }

    @registry.get("/kelurahan/{code}/potentials")
    async def potentials(code: str) -> Any:
        return (
            [
                {
                    "id": f"p-{code}",
                    "sector": "kuliner",
                    "description": "Sentra olahan ikan asap dan kerupuk",
                    "priority": 1,
                }
            ]
            if code.endswith(("1", "3"))
            else []
        )

    @registry.get("/trainings")
    async def trainings(cooperative_id: str | None = None) -> Any:
        return [
            {
                "id": "t1",
                "title": "Pembukuan koperasi dasar",
                "topic": "pembukuan",
                "starts_on": "2025-09-14",
                "status": "completed",
                "location": "Gedung Dinkopdag",
                "participants": [
                    {
                        "id": "pa1",
                        "cooperative_id": world.coop_ids[0],
                        "name": "Siti Aminah 0",
                        "attended": True,
                    }
                ],
            },
            {
                "id": "t2",
                "title": "Digitalisasi penjualan sembako",
                "topic": "digital",
                "starts_on": "2025-10-02",
                "status": "planned",
                "location": "Balai RW 5 Rungkut",
                "participants": [],
            },
        ]

    # --- inventory ---
    @inventory.get("/commodities")
    async def commodities() -> Any:
        return COMMODITIES

    @inventory.get("/cooperatives/{coop_id}/stock")
    async def stock(request: Request, coop_id: str) -> Any:
        return scope_read(request, coop_id) or list(world.stock[coop_id].values())

    @inventory.get("/cooperatives/{coop_id}/movements")
    async def movements(request: Request, coop_id: str, limit: int = 10) -> Any:
        rows = list(reversed(world.movements[coop_id])) if coop_id in world.movements else []
        return scope_read(request, coop_id) or {"items": rows[:limit], "total": len(rows)}

    @inventory.post("/cooperatives/{coop_id}/movements")
    async def record(request: Request, coop_id: str, idempotency_key: str | None = Header(None)) -> Any:
        denied = scope_write(request, coop_id)
        if denied:
            return denied
        if idempotency_key and idempotency_key in world.idempotency:
            status, body = world.idempotency[idempotency_key]
            return JSONResponse(body, status_code=status)
        body = await request.json()
        if "unit_price" in body and not isinstance(body["unit_price"], int):
            return error(
                422,
                "validation_error",
                "Invalid input: unit_price.",
                [{"field": "unit_price", "message": "whole rupiah", "type": "int_type"}],
            )
        qty = float(body.get("quantity") or 0)
        code = body.get("commodity")
        if qty <= 0 or code not in PRICE:
            return error(
                422,
                "validation_error",
                "Invalid input: quantity.",
                [{"field": "quantity", "message": "must be > 0", "type": "greater_than", "ctx": {"gt": 0}}],
            )
        item = world.stock[coop_id].setdefault(
            code,
            {
                "commodity": code,
                "on_hand": 0.0,
                "last_sale_at": None,
                "avg_daily_sales": 0.0,
                "days_of_cover": None,
                "status": "ok",
            },
        )
        sign = 1 if body["kind"] in ("receipt", "transfer_in", "adjustment") else -1
        if item["on_hand"] + sign * qty < 0:
            result = (
                409,
                {
                    "error": {
                        "code": "insufficient_stock",
                        "message": "Not enough stock.",
                        "details": {"on_hand": item["on_hand"]},
                    }
                },
            )
        else:
            item["on_hand"] = round(item["on_hand"] + sign * qty, 3)
            if body["kind"] == "sale":
                item["last_sale_at"] = NOW.isoformat()
                if item["status"] == "stalled":
                    item["status"] = "ok"
            if item["on_hand"] > 0 and item["status"] == "stockout":
                item["status"] = "ok"
            movement = {
                "id": str(uuid.uuid4()),
                "cooperative_id": coop_id,
                **body,
                "recorded_at": clock.now().isoformat(),
            }
            world.movements[coop_id].append(movement)
            result = (201, movement)
        if idempotency_key and result[0] == 201:  # like inventory: only a recorded movement is remembered
            world.idempotency[idempotency_key] = result
        return JSONResponse(result[1], status_code=result[0])

    # --- sourcing ---
    def page(rows: list[dict[str, Any]], limit: int = 500) -> dict[str, Any]:
        return {"items": rows[:limit], "total": len(rows), "limit": limit, "offset": 0}

    def visible_needs(request: Request) -> list[dict[str, Any]]:
        return [n for n in world.needs.values() if world.can_read(request.state.claims, n["cooperative_id"])]

    @sourcing.get("/needs")
    async def needs(
        request: Request,
        status: str | None = None,
        cooperative_id: str | None = None,
        kind: str | None = None,
    ) -> Any:
        if cooperative_id and not world.can_read(request.state.claims, cooperative_id):
            return page([])
        return page(
            sorted(
                (
                    n
                    for n in visible_needs(request)
                    if (not status or n["status"] == status)
                    and (not cooperative_id or n["cooperative_id"] == cooperative_id)
                    and (not kind or n["kind"] == kind)
                ),
                key=lambda n: n["created_at"],
                reverse=True,
            )
        )

    @sourcing.get("/needs/{need_id}")
    async def need(request: Request, need_id: str) -> Any:
        n = world.needs.get(need_id)
        if not n or not world.can_read(request.state.claims, n["cooperative_id"]):
            return error(404, "not_found", "The need does not exist.")
        matches = []
        if n["kind"] == "supply":
            for rank, s in enumerate(
                x for x in world.suppliers if any(o["commodity"] == n["commodity"] for o in x["offers"])
            ):
                offer = next(o for o in s["offers"] if o["commodity"] == n["commodity"])
                matches.append(
                    {
                        "supplier_id": s["id"],
                        "supplier_name": s["name"],
                        "score": round(0.92 - rank * 0.1, 2),
                        "unit_price": offer["unit_price"],
                        "lead_time_days": offer["lead_time_days"],
                        "can_fill_quantity": min(n["quantity"] or 0, offer["capacity_per_week"]),
                        "reasons": ["melayani kecamatan ini", "harga di bawah HET"],
                    }
                )
        return {**n, "matches": matches}

    @sourcing.post("/needs")
    async def submit_need(request: Request) -> Any:
        body = await request.json()
        coop_id = str(body.get("cooperative_id"))
        denied = scope_write(request, coop_id)
        if denied:
            return denied
        if not body.get("description"):
            return error(
                422,
                "validation_error",
                "Invalid input: description.",
                [{"field": "description", "message": "Field required", "type": "missing"}],
            )
        allowed = {"cooperative_id", "kind", "commodity", "quantity", "amount", "needed_by", "description"}
        if set(body) - allowed or (
            body["kind"] == "supply" and not (body.get("commodity") and body.get("quantity"))
        ):
            return error(
                422, "validation_error", "Invalid input.", [{"field": "quantity", "type": "missing"}]
            )
        need_id = str(uuid.uuid4())
        world.needs[need_id] = {
            "id": need_id,
            "status": "open",
            "created_at": clock.now().isoformat(),
            "submitted_at": clock.now().isoformat(),
            "cooperative_name": world.coops[coop_id]["name"],
            "history": [{"status": "open", "at": clock.now().isoformat()}],
            "commodity": None,
            "quantity": None,
            "needed_by": None,
            **body,
        }
        return JSONResponse(world.needs[need_id], status_code=201)

    flow = {
        "open": {"acknowledged", "in_progress", "rejected"},
        "acknowledged": {"in_progress", "rejected"},
        "in_progress": {"resolved", "rejected"},
    }

    @sourcing.post("/needs/{need_id}/status")
    async def need_status(request: Request, need_id: str) -> Any:
        if request.state.claims.get("role") not in ("admin", "officer"):
            return error(403, "forbidden", "Officers only.")
        n = world.needs.get(need_id)
        if not n:
            return error(404, "not_found", "The need does not exist.")
        body = await request.json()
        if set(body) - {"status", "note", "assigned_to"}:
            return error(422, "validation_error", "Unknown field.")
        if body.get("status") not in flow.get(n["status"], set()):
            return error(409, "illegal_transition", f"Cannot go from {n['status']} to {body.get('status')}.")
        n["status"] = body["status"]
        n["assigned_to"] = body.get("assigned_to") or n.get("assigned_to")
        n["history"].append(
            {
                "old_status": n["history"][-1]["status"],
                "status": body["status"],
                "at": clock.now().isoformat(),
                "note": body.get("note"),
                "assigned_to": body.get("assigned_to"),
            }
        )
        return n

    @sourcing.get("/suppliers")
    async def suppliers(commodity: str | None = None) -> Any:
        return page(
            [
                s
                for s in world.suppliers
                if not commodity or any(o["commodity"] == commodity for o in s["offers"])
            ]
        )

    @sourcing.get("/orders")
    async def orders(need_id: str | None = None) -> Any:
        return page([o for o in world.orders if not need_id or o["need_id"] == need_id])

    @sourcing.post("/orders")
    async def place_order(request: Request) -> Any:
        body = await request.json()
        supplier = next((s for s in world.suppliers if s["id"] == body.get("supplier_id")), None)
        if supplier is None:
            return error(404, "not_found", "No such supplier.")
        order = {
            "id": str(uuid.uuid4()),
            "status": "placed",
            "supplier_name": supplier["name"],
            "placed_at": clock.now().isoformat(),
            "created_at": clock.now().isoformat(),
            **body,
        }
        world.orders.append(order)
        return JSONResponse(order, status_code=201)

    @sourcing.get("/redistributions")
    async def redistributions(
        request: Request,
        commodity: str | None = None,
        status: str | None = None,
        cooperative_id: str | None = None,
    ) -> Any:
        claims = request.state.claims
        rows = [
            p
            for p in world.redistributions.values()
            if (not commodity or p["commodity"] == commodity)
            and (not status or p["status"] == status)
            and (not cooperative_id or cooperative_id in (p["from_cooperative_id"], p["to_cooperative_id"]))
        ]
        if claims.get("role") == "coop_manager":
            rows = [
                p
                for p in rows
                if claims.get("cooperative_id") in (p["from_cooperative_id"], p["to_cooperative_id"])
            ]
        return page(rows)

    @sourcing.post("/redistributions/{pid}/{decision}")
    async def decide(request: Request, pid: str, decision: str) -> Any:
        p = world.redistributions.get(pid)
        if not p or decision not in ("accept", "decline"):
            return error(404, "not_found", "No such proposal.")
        if p["status"] != "proposed":
            return error(409, "already_decided", "The proposal was already answered.")
        claims = request.state.claims
        if claims.get("role") == "coop_manager":
            mine = claims.get("cooperative_id")
            sides = [
                s
                for s, key in (("from_side", "from_cooperative_id"), ("to_side", "to_cooperative_id"))
                if p[key] == mine
            ]
            if not sides:
                return error(404, "not_found", "No such proposal.")
        else:
            sides = ["from_side", "to_side"]
        for side in sides:
            p[side] = {"decision": decision, "decided_at": clock.now().isoformat()}
        if decision == "decline":
            p["status"] = "declined"
        elif all(p[s].get("decision") == "accept" for s in ("from_side", "to_side")):
            p["status"] = "accepted"
        return p

    # --- reporting ---
    def figures(coop_ids: list[str]) -> dict[str, Any]:
        by = {"aktif": 0, "kurang_aktif": 0, "tidak_aktif": 0}
        for cid in coop_ids:
            by[world.health[cid]["level"]] += 1
        stalled = [
            (cid, it) for cid in coop_ids for it in world.stock[cid].values() if it["status"] == "stalled"
        ]
        return {
            "cooperatives": {"total": len(coop_ids), "by_health": by},
            "needs": {
                "open": sum(
                    1
                    for n in world.needs.values()
                    if n["status"] == "open" and n["cooperative_id"] in coop_ids
                ),
                "median_response_hours": 31.5,
            },
            "stock": {
                "stalled_items": len(stalled),
                "stalled_value": sum(it["on_hand"] * PRICE[it["commodity"]] for _, it in stalled),
                "low_items": sum(
                    1 for cid in coop_ids for it in world.stock[cid].values() if it["status"] == "low"
                ),
                "stockout_items": sum(
                    1 for cid in coop_ids for it in world.stock[cid].values() if it["status"] == "stockout"
                ),
            },
            "reports": {"on_time_rate": 0.72},
        }

    @reporting.get("/dashboard/summary")
    async def summary() -> Any:
        return {**figures(world.coop_ids), "as_of": NOW.isoformat()}

    @reporting.get("/kecamatan")
    async def per_kecamatan() -> Any:
        return [
            {
                "kecamatan_code": k["code"],
                "name": k["name"],
                **figures([c for c in world.coop_ids if world.coops[c]["kecamatan_code"] == k["code"]]),
            }
            for k in world.kecamatan
        ]

    @reporting.get("/cooperatives")
    async def coop_health() -> Any:
        rows = [
            {
                "cooperative_id": cid,
                "name": world.coops[cid]["name"],
                "score": h["score"],
                "level": h["level"],
            }
            for cid, h in world.health.items()
        ]
        return {"items": rows, "total": len(rows)}

    @reporting.get("/cooperatives/{coop_id}/health")
    async def health(request: Request, coop_id: str) -> Any:
        return scope_read(request, coop_id) or world.health[coop_id]

    @reporting.get("/stalled")
    async def stalled(request: Request) -> Any:
        return [
            {
                "cooperative_id": cid,
                "cooperative_name": world.coops[cid]["name"],
                "commodity": it["commodity"],
                "on_hand": it["on_hand"],
                "unit": next(c["unit"] for c in COMMODITIES if c["code"] == it["commodity"]),
                "days_since_sale": (NOW - datetime.fromisoformat(it["last_sale_at"])).days,
                "value": it["on_hand"] * PRICE[it["commodity"]],
            }
            for cid in world.coop_ids
            if world.can_read(request.state.claims, cid)
            for it in world.stock[cid].values()
            if it["status"] == "stalled"
        ]

    @reporting.get("/dashboard/timeseries")
    async def timeseries(weeks: int = 12) -> Any:
        start = (NOW - timedelta(days=NOW.weekday(), weeks=weeks - 1)).date()
        return {
            "weeks": [
                {
                    "week_start": (start + timedelta(weeks=i)).isoformat(),
                    "value": 180_000_000 + i * 9_000_000 + (i % 3) * 14_000_000,
                    "sales": 1200 + i * 40,
                    "transactions": 1200 + i * 40,
                    "stalled_value": 42_000_000 - i * 1_500_000,
                }
                for i in range(weeks)
            ]
        }

    @reporting.get("/cooperatives/{coop_id}/reports")
    async def reports(request: Request, coop_id: str) -> Any:
        return scope_read(request, coop_id) or {
            "items": world.reports[coop_id],
            "total": len(world.reports[coop_id]),
        }

    @reporting.post("/cooperatives/{coop_id}/reports")
    async def submit_report(request: Request, coop_id: str) -> Any:
        denied = scope_write(request, coop_id)
        if denied:
            return denied
        body = await request.json()
        allowed = {"period", "omzet", "transactions", "members", "simpanan", "notes"}
        strict_ints = [k for k in ("omzet", "transactions", "members", "simpanan") if k in body]
        if set(body) - allowed or any(not isinstance(body[k], int) for k in strict_ints):
            return error(422, "validation_error", "Invalid input.", [{"field": "omzet", "type": "int_type"}])
        if any(r["period"] == body.get("period") for r in world.reports[coop_id]):
            return error(409, "duplicate", "A report for this period exists.")
        report = {
            **body,
            "cooperative_id": coop_id,
            "submitted_at": clock.now().isoformat(),
            "on_time": True,
        }
        world.reports[coop_id].append(report)
        return JSONResponse(report, status_code=201)

    @reporting.get("/exports/{name}.csv")
    async def export_csv(name: str) -> Any:
        if name not in ("cooperatives", "stalled", "needs", "reports"):
            return error(404, "not_found", "No such export.")
        lines = ["id,name"] + [f"{c['id']},{c['name']}" for c in list(world.coops.values())[:5]]
        return Response("\n".join(lines) + "\n", media_type="text/csv")

    @reporting.get("/exports/monthly-report.pdf")
    async def monthly_pdf(period: str = "") -> Any:
        return Response(b"%PDF-1.4\n% fake\n", media_type="application/pdf")

    # --- notifications ---
    @notifications.get("/me/notifications")
    async def inbox(request: Request, unread: str | None = None) -> Any:
        rows = world.notifications.get(request.state.claims["sub"], [])
        if unread == "true":
            rows = [n for n in rows if not n["read_at"]]
        return rows

    @notifications.get("/me/notifications/summary")
    async def inbox_summary(request: Request) -> Any:
        rows = world.notifications.get(request.state.claims["sub"], [])
        return {"total": len(rows), "unread": sum(1 for n in rows if not n["read_at"])}

    @notifications.post("/me/notifications/read-all")
    async def read_all(request: Request) -> Any:
        rows = [n for n in world.notifications.get(request.state.claims["sub"], []) if not n["read_at"]]
        for n in rows:
            n["read_at"] = clock.now().isoformat()
        return {"marked": len(rows)}

    @notifications.post("/me/notifications/{nid}/read")
    async def read(request: Request, nid: str) -> Any:
        for n in world.notifications.get(request.state.claims["sub"], []):
            if n["id"] == nid:
                n["read_at"] = n["read_at"] or clock.now().isoformat()
                return n
        return error(404, "not_found", "No such notification.")

    return Starlette(
        routes=[
            Mount(f"/{name}", app=app)
            for name, app in (
                ("registry", registry),
                ("inventory", inventory),
                ("sourcing", sourcing),
                ("reporting", reporting),
                ("notifications", notifications),
            )
        ]
    )
