"""`kkmp seed`: a living demo city, generated deterministically from a seed number.

Everything goes through the services' public APIs, as an operator's script would: 153 KKMP with
boards, members and users; about 90 days of stock movements in which some cooperatives thrive, some
slow down and some go dormant, and some items stop selling; suppliers, needs and an order; monthly
reports, some late and some missing. Detection then runs, so the first dashboard shows stalled stock,
proposals and notifications.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from kkmp_shared import clock, refdata
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
DEMO_PASSWORD = "kkmp-demo-2025"

FIRST = [
    "Budi",
    "Siti",
    "Agus",
    "Dewi",
    "Eko",
    "Sri",
    "Hadi",
    "Wati",
    "Joko",
    "Rina",
    "Bambang",
    "Yuli",
    "Slamet",
    "Endang",
    "Heru",
    "Nur",
    "Teguh",
    "Lilik",
    "Sugeng",
    "Ani",
    "Rudi",
    "Fitri",
    "Dedi",
    "Umi",
    "Imam",
    "Ratna",
]
LAST = [
    "Santoso",
    "Rahayu",
    "Wibowo",
    "Lestari",
    "Prasetyo",
    "Susanti",
    "Hidayat",
    "Wahyuni",
    "Setiawan",
    "Kurniawati",
    "Saputra",
    "Handayani",
    "Nugroho",
    "Purnomo",
    "Maulana",
    "Safitri",
]
UMKM = [
    ("kue", ["kue basah", "roti", "jajan pasar"]),
    ("katering", ["nasi kotak", "lauk pauk"]),
    ("warung makan", ["nasi pecel", "lontong balap"]),
    ("kerupuk", ["kerupuk udang", "rengginang"]),
    ("jamu", ["jamu kunyit asam", "beras kencur"]),
    ("sambal", ["sambal bawang", "sambal terasi"]),
    ("minuman", ["es tebu", "sari kedelai"]),
    ("toko kelontong", ["sembako eceran"]),
]
POTENTIALS = [
    ("kue dan jajanan", "Sentra pembuatan kue basah dan kering; butuh tepung, gula, telur rutin"),
    ("kuliner", "Banyak warung makan dan katering rumahan di sekitar pasar"),
    ("perikanan", "Nelayan dan pengolahan ikan asap di pesisir"),
    ("kerajinan", "Perajin batik dan sepatu rumahan"),
    ("pertanian kota", "Kebun sayur dan hidroponik warga"),
    ("jasa", "Titik layanan pembayaran dan agen LPG"),
]
# Requests in flight at once (cooperatives seeded side by side).
SEED_CONCURRENCY = 4
SEMBAKO = ["beras_medium", "beras_premium", "beras_sphp", "minyakita", "gula", "telur", "tepung_terigu"]


def _env_url(name: str, default: str) -> Any:
    # Read when a Urls is made, not when this module is imported: the variables may be set later.
    return field(default_factory=lambda: os.environ.get(name, default))


@dataclass
class Urls:
    """Where the services answer: `<SERVICE>_URL` when set, else `kkmp run`'s ports."""

    registry: str = _env_url("REGISTRY_URL", "http://127.0.0.1:8001")
    inventory: str = _env_url("INVENTORY_URL", "http://127.0.0.1:8002")
    sourcing: str = _env_url("SOURCING_URL", "http://127.0.0.1:8003")
    reporting: str = _env_url("REPORTING_URL", "http://127.0.0.1:8004")
    notifications: str = _env_url("NOTIFICATIONS_URL", "http://127.0.0.1:8005")


@dataclass
class Coop:
    id: str
    name: str
    kelurahan_code: str
    kecamatan_code: str
    profile: str  # thriving | slowing | dormant | new
    units: list[str]
    manager_token: str | None = None
    items: list[str] = field(default_factory=list)


class SeedError(RuntimeError):
    pass


class PatientClient(httpx.Client):
    """A client that waits and retries when a service says it is busy (503/429) while the seed floods it."""

    def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        for attempt in range(6):
            response = super().request(method, url, **kwargs)
            if response.status_code not in (429, 503):
                return response
            time.sleep(min(2**attempt, 15))
        return response


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise SeedError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


def until_known(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send until the service knows the cooperative: each service learns the registry's cooperatives
    from its events, a moment after they are registered, and answers 404 (storing nothing) before."""
    deadline = time.monotonic() + 120
    while True:
        response = client.request(method, url, **kwargs)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def token(client: httpx.Client, url: str, username: str, password: str) -> str:
    body = _check(
        client.post(f"{url}/auth/token", data={"username": username, "password": password}),
        f"login {username}",
    )
    return str(body["access_token"])


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def commodities() -> dict[str, dict[str, str]]:
    return {row["code"]: row for row in refdata.rows(refdata.COMMODITIES)}


def kelurahan() -> list[dict[str, str]]:
    return refdata.rows(refdata.KELURAHAN)


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def already_seeded(urls: Urls, admin_password: str) -> bool:
    with PatientClient(timeout=30) as client:
        admin = token(client, urls.registry, "admin", admin_password)
        body = _check(
            client.get(f"{urls.registry}/cooperatives", params={"limit": 1}, headers=bearer(admin)),
            "list cooperatives",
        )
    return int(body["total"]) > 0


def seed_if_empty(seed: int, urls: Urls | None = None, admin_password: str | None = None) -> bool:
    """Seed the demo city unless cooperatives exist already; True when it seeded."""
    urls = urls or Urls()
    admin_password = admin_password or os.environ.get("KKMP_ADMIN_PASSWORD", "kkmp-demo-admin")
    if already_seeded(urls, admin_password):
        console.print("Demo data already present: not seeding again.")
        return False
    seed_city(seed, urls, admin_password)
    return True


def seed_city(seed: int, urls: Urls | None = None, admin_password: str | None = None) -> None:
    urls = urls or Urls()
    admin_password = admin_password or os.environ.get("KKMP_ADMIN_PASSWORD", "kkmp-demo-admin")
    rng = random.Random(seed)
    today = business_morning()
    with PatientClient(timeout=120) as client:
        admin = token(client, urls.registry, "admin", admin_password)
        coops = seed_registry(client, urls, admin, rng, today)
        services = {
            "inventory": _up(client, urls.inventory),
            "sourcing": _up(client, urls.sourcing),
            "reporting": _up(client, urls.reporting),
        }
        if services["inventory"]:
            seed_inventory(client, urls, admin, coops, rng, today)
        if services["sourcing"]:
            seed_sourcing(client, urls, admin, coops, rng, today)
        if services["reporting"]:
            seed_reports(client, urls, admin, coops, rng)
            _check(
                client.post(f"{urls.reporting}/reports/overdue/run", json={}, headers=bearer(admin)),
                "overdue reports",
            )
        if _up(client, urls.notifications):
            seed_notifications(client, urls, admin, today)
        if services["inventory"]:
            found = _check(
                client.post(f"{urls.inventory}/detections/run", json={}, headers=bearer(admin)),
                "run detection",
            )
            console.print(f"Detection: {found}")
        if services["reporting"]:
            _check(
                client.post(f"{urls.reporting}/admin/health/recompute", json={}, headers=bearer(admin)),
                "health recompute",
            )
    console.print(f"[green]Seeded[/] {len(coops)} KKMP (seed {seed}).")


def business_morning() -> datetime:
    """The demo's "today": the latest 10:00 in Surabaya (WIB) that has passed. Anchored to the local
    day, not UTC's (Surabaya's day starts at 17:00 UTC), and never ahead of business time."""
    now = clock.now().astimezone(clock.WIB)
    morning = now.replace(hour=10, minute=0, second=0, microsecond=0)
    return morning if morning <= now else morning - timedelta(days=1)


def _up(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(f"{url}/health/live", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class CoopPlan:
    """One KKMP as the registry is to receive it, drawn before any request is sent."""

    row: dict[str, str]
    profile: str
    units: list[str]
    body: dict[str, Any]
    suspend: bool
    board: list[dict[str, str]]
    members: list[dict[str, Any]]
    potential: dict[str, Any] | None


def plan_coop(i: int, row: dict[str, str], rng: random.Random, today: datetime) -> CoopPlan:
    """The random draws for one cooperative, in the order the seed has always made them (a seed
    number gives the same city)."""
    roll = rng.random()
    profile = "thriving" if roll < 0.55 else "slowing" if roll < 0.8 else "dormant" if roll < 0.93 else "new"
    units = ["sembako"] + [
        u
        for u, p in (
            ("lpg", 0.6),
            ("payment_services", 0.4),
            ("apotek", 0.2),
            ("klinik", 0.15),
            ("simpan_pinjam", 0.5),
            ("kemitraan", 0.3),
        )
        if rng.random() < p
    ]
    deed_day = date(2025, 6, 1) + timedelta(days=rng.randint(0, 50))
    body = {
        "name": f"KKMP {row['kelurahan_name'].title()}",
        "kelurahan_code": row["kelurahan_code"],
        "formation": "revitalized" if rng.random() < 0.3 else "new",
        "deed": {
            "number": f"AHU-{rng.randint(10000, 99999):05d}.AH.01.29.TAHUN 2025",
            "date": deed_day.isoformat(),
            "notary": f"{person(rng)}, S.H., M.Kn.",
        },
        "business_units": units,
    }
    suspend = profile == "dormant" and rng.random() < 0.3
    names: list[str] = []
    while len(names) < 6:  # six different people: nobody sits in both pengurus and pengawas
        if (candidate := person(rng)) not in names:
            names.append(candidate)
    positions = ("ketua", "wakil_ketua", "sekretaris", "bendahara", "pengawas_ketua", "pengawas")
    board = [{"name": name, "position": p} for name, p in zip(names, positions, strict=True)]
    members: list[dict[str, Any]] = []
    for _ in range({"thriving": 12, "slowing": 7, "dormant": 3, "new": 2}[profile] + rng.randint(0, 4)):
        joined = (today - timedelta(days=rng.randint(1, 120))).isoformat()
        if rng.random() < 0.35:
            sector, products = rng.choice(UMKM)
            members.append(
                {
                    "name": f"UMKM {person(rng)}",
                    "kind": "umkm",
                    "joined_at": joined,
                    "business": {"sector": sector, "products": products},
                }
            )
        else:
            members.append({"name": person(rng), "kind": "resident", "joined_at": joined})
    potential = None
    if i % 5 == 0 and rng.random() < 0.6:
        sector, description = rng.choice(POTENTIALS)
        potential = {"sector": sector, "description": description, "priority": rng.randint(1, 3)}
    return CoopPlan(row, profile, units, body, suspend, board, members, potential)


def register_coop(client: httpx.Client, urls: Urls, h: dict[str, str], plan: CoopPlan) -> Coop:
    """Send one planned cooperative: registration, status, board, members, its manager's account."""
    row = plan.row
    coop = _check(client.post(f"{urls.registry}/cooperatives", json=plan.body, headers=h), "register")

    def set_status(status: str, reason: str, what: str) -> None:
        body = {"status": status, "status_reason": reason}
        _check(client.patch(f"{urls.registry}/cooperatives/{coop['id']}", json=body, headers=h), what)

    if plan.profile != "new":
        set_status("operating", "gerai mulai beroperasi", "operating")
    if plan.suspend:
        set_status("suspended", "pengurus tidak aktif", "suspend")
    _check(
        client.put(
            f"{urls.registry}/cooperatives/{coop['id']}/board", json={"members": plan.board}, headers=h
        ),
        "board",
    )
    _check(
        client.post(
            f"{urls.registry}/cooperatives/{coop['id']}/members/batch",
            json={"members": plan.members},
            headers=h,
        ),
        "members",
    )
    _check(
        client.post(
            f"{urls.registry}/users",
            headers=h,
            json={
                "username": "pengurus-" + row["kelurahan_code"].replace(".", ""),
                "password": DEMO_PASSWORD,
                "role": "coop_manager",
                "cooperative_id": coop["id"],
                "full_name": plan.board[0]["name"],
            },
        ),
        "manager user",
    )
    if plan.potential is not None:
        _check(
            client.post(
                f"{urls.registry}/kelurahan/{row['kelurahan_code']}/potentials",
                headers=h,
                json=plan.potential,
            ),
            "potential",
        )
    return Coop(
        coop["id"], coop["name"], row["kelurahan_code"], row["kecamatan_code"], plan.profile, plan.units
    )


def seed_registry(
    client: httpx.Client, urls: Urls, admin: str, rng: random.Random, today: datetime
) -> list[Coop]:
    h = bearer(admin)
    plans = [plan_coop(i, row, rng, today) for i, row in enumerate(kelurahan())]
    with progress() as bar:
        task = bar.add_task("Koperasi, pengurus, anggota", total=len(plans))

        def send(plan: CoopPlan) -> Coop:
            coop = register_coop(client, urls, h, plan)
            bar.advance(task)
            return coop

        # A few cooperatives at a time: each request waits on a commit and on argon2 (a manager's
        # password), which overlap; the list keeps the kelurahan order.
        with ThreadPoolExecutor(SEED_CONCURRENCY) as pool:
            coops = list(pool.map(send, plans))
        _check(
            client.post(
                f"{urls.registry}/users",
                headers=h,
                json={
                    "username": "petugas",
                    "password": DEMO_PASSWORD,
                    "role": "officer",
                    "full_name": "Petugas Dinkopdag",
                    "supervisor": True,
                },
            ),
            "officer",
        )
        _check(
            client.post(
                f"{urls.registry}/users",
                headers=h,
                json={
                    "username": "petugas-wonocolo",
                    "password": DEMO_PASSWORD,
                    "role": "officer",
                    "full_name": "Petugas Kec. Wonocolo",
                    "kecamatan_codes": ["35.78.02"],
                },
            ),
            "scoped officer",
        )
        seed_trainings(client, urls, h, coops, rng, today)
    return coops


def seed_trainings(
    client: httpx.Client,
    urls: Urls,
    h: dict[str, str],
    coops: list[Coop],
    rng: random.Random,
    today: datetime,
) -> None:
    plans = [
        ("Pembukuan koperasi dasar", "pembukuan", 60, True),
        ("Manajemen stok gerai sembako", "stok", 35, True),
        ("Layanan LPG dan MAP Pertamina", "lpg", 20, True),
        ("Akses permodalan UMKM", "permodalan", -10, False),
    ]
    for title, topic, days_ago, done in plans:
        start = (today - timedelta(days=days_ago)).date()
        training = _check(
            client.post(
                f"{urls.registry}/trainings",
                headers=h,
                json={
                    "title": title,
                    "topic": topic,
                    "starts_on": start.isoformat(),
                    "location": "Kantor Dinkopdag Surabaya",
                },
            ),
            "training",
        )
        chosen = rng.sample([c for c in coops if c.profile != "dormant"], 25)
        _check(
            client.post(
                f"{urls.registry}/trainings/{training['id']}/participants",
                headers=h,
                json={
                    "participants": [
                        {"cooperative_id": c.id, "name": person(rng), "role": "pengurus"} for c in chosen
                    ]
                },
            ),
            "participants",
        )
        if done:
            _check(
                client.post(f"{urls.registry}/trainings/{training['id']}/complete", headers=h, json={}),
                "complete training",
            )


def seed_inventory(
    client: httpx.Client, urls: Urls, admin: str, coops: list[Coop], rng: random.Random, today: datetime
) -> None:
    catalogue = commodities()
    h = bearer(admin)
    with progress() as bar:
        task = bar.add_task("Pergerakan stok 90 hari", total=len(coops))

        def send(coop: Coop, movements: list[dict[str, Any]]) -> None:
            for start in range(0, len(movements), 1000):
                url = f"{urls.inventory}/cooperatives/{coop.id}/movements/batch"
                chunk = {"movements": movements[start : start + 1000]}
                _check(until_known(client, "POST", url, headers=h, json=chunk), f"movements {coop.name}")
            bar.advance(task)

        # Drawn here in order (the same seed, the same ledgers), sent a few cooperatives at a time.
        with ThreadPoolExecutor(SEED_CONCURRENCY) as pool:
            sent = []
            for coop in coops:
                items = list(rng.sample(SEMBAKO, rng.randint(3, 6)))
                if "lpg" in coop.units:
                    items.append("lpg_3kg")
                coop.items = items
                sent.append(pool.submit(send, coop, coop_movements(coop, items, catalogue, rng, today)))
            for future in sent:
                future.result()


def coop_movements(
    coop: Coop, items: list[str], catalogue: dict[str, dict[str, str]], rng: random.Random, today: datetime
) -> list[dict[str, Any]]:
    """About 90 days of receipts and daily sales, shaped by the cooperative's profile; some items stall."""
    out: list[dict[str, Any]] = []
    # Nothing may be dated in the future (the API refuses it): the seed may run at any hour.
    latest = clock.now() - timedelta(minutes=2)
    horizon = 90 if coop.profile != "new" else 20
    last_sale_day = {"thriving": 0, "slowing": 8, "dormant": 40, "new": 0}[coop.profile]
    for commodity in items:
        info = catalogue[commodity]
        price = int(info["typical_price"])
        ceiling = int(info["price_ceiling"]) if info["price_ceiling"] else None
        cost = int(price * 0.9)
        base = {
            "beras_medium": 25,
            "beras_premium": 12,
            "beras_sphp": 15,
            "minyakita": 10,
            "gula": 8,
            "telur": 9,
            "tepung_terigu": 6,
            "lpg_3kg": 14,
        }.get(commodity, 5) * rng.uniform(0.5, 1.5)
        # An item that stalls: restocked, then nobody buys it any more (stok macet).
        stalls_from = rng.randint(16, 30) if rng.random() < 0.12 else 0
        on_hand = 0.0
        for day in range(horizon, -1, -1):
            at = today - timedelta(days=day, hours=rng.randint(0, 6))
            if day % 14 == horizon % 14 or on_hand < base * 2:
                qty = round(base * 16)
                out.append(
                    {
                        "commodity": commodity,
                        "kind": "receipt",
                        "quantity": str(qty),
                        "unit_price": cost,
                        "occurred_at": min(at, latest).isoformat(),
                        "reference": f"SJ-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}",
                    }
                )
                on_hand += qty
            if day < last_sale_day or (stalls_from and day < stalls_from):
                continue
            sold = min(
                on_hand,
                round(
                    base * rng.uniform(0.3, 1.3) * (0.4 if coop.profile == "slowing" and day < 30 else 1.0)
                ),
            )
            if sold <= 0:
                continue
            unit_price = price
            if ceiling and rng.random() < 0.004:
                unit_price = ceiling + rng.choice([500, 1000, 2000])  # an occasional sale above the HET
            out.append(
                {
                    "commodity": commodity,
                    "kind": "sale",
                    "quantity": str(sold),
                    "unit_price": unit_price,
                    "occurred_at": min(at + timedelta(hours=4), latest).isoformat(),
                }
            )
            on_hand -= sold
    out.sort(key=lambda m: m["occurred_at"])
    return out


def seed_sourcing(
    client: httpx.Client, urls: Urls, admin: str, coops: list[Coop], rng: random.Random, today: datetime
) -> None:
    h = bearer(admin)
    all_kec = sorted({c.kecamatan_code for c in coops})
    suppliers = [
        (
            "Perum Bulog Kanwil Jatim",
            "bulog",
            all_kec,
            [
                ("beras_sphp", 12000, 500, 20000, 3),
                ("beras_medium", 12600, 500, 10000, 4),
                ("minyakita", 14500, 100, 3000, 5),
                ("gula", 15800, 100, 3000, 5),
            ],
        ),
        ("Agen LPG Sinar Jaya", "pertamina_agent", all_kec[:16], [("lpg_3kg", 16000, 50, 3000, 1)]),
        ("Agen LPG Mitra Timur", "pertamina_agent", all_kec[12:], [("lpg_3kg", 16000, 50, 2500, 2)]),
        (
            "CV Sumber Pangan Surabaya",
            "wholesaler",
            all_kec,
            [
                ("beras_premium", 13800, 200, 5000, 2),
                ("beras_medium", 12900, 200, 6000, 2),
                ("tepung_terigu", 10500, 100, 2000, 2),
                ("telur", 26500, 50, 800, 1),
            ],
        ),
        ("UD Telur Makmur", "umkm_producer", all_kec[:10], [("telur", 25500, 20, 400, 1)]),
        (
            "Gapoktan Lamongan (mitra daerah)",
            "partner_region",
            all_kec,
            [("beras_medium", 12300, 1000, 15000, 5)],
        ),
    ]
    supplier_ids = []
    for name, kind, kec, offers in suppliers:
        body = {
            "name": name,
            "kind": kind,
            "contact": f"{person(rng)} / 08{rng.randint(1000000000, 9999999999)}",
            "service_kecamatan_codes": kec,
            "offers": [
                {
                    "commodity": c,
                    "unit_price": p,
                    "min_order": m,
                    "capacity_per_week": cap,
                    "lead_time_days": lt,
                }
                for c, p, m, cap, lt in offers
            ],
        }
        supplier = _check(client.post(f"{urls.sourcing}/suppliers", json=body, headers=h), "supplier")
        supplier_ids.append(supplier["id"])
    _check(
        client.post(
            f"{urls.registry}/users",
            headers=h,
            json={
                "username": "pemasok-bulog",
                "password": DEMO_PASSWORD,
                "role": "supplier",
                "supplier_id": supplier_ids[0],
                "full_name": "Bulog Kanwil Jatim",
            },
        ),
        "supplier user",
    )
    active = [c for c in coops if c.profile in ("thriving", "slowing", "new")]
    needs = []
    for coop in rng.sample(active, 30):
        roll = rng.random()
        if roll < 0.6:
            commodity = rng.choice(["beras_medium", "beras_sphp", "minyakita", "gula", "lpg_3kg", "telur"])
            body = {
                "cooperative_id": coop.id,
                "kind": "supply",
                "commodity": commodity,
                "quantity": str(rng.choice([200, 500, 1000, 2000])),
                "needed_by": (today + timedelta(days=rng.randint(7, 30))).date().isoformat(),
                "description": f"Kebutuhan {commodity.replace('_', ' ')} untuk gerai sembako",
            }
        elif roll < 0.8:
            body = {
                "cooperative_id": coop.id,
                "kind": "capital",
                "description": "Butuh modal kerja untuk stok awal gerai sembako (± Rp50 juta)",
            }
        elif roll < 0.93:
            body = {
                "cooperative_id": coop.id,
                "kind": "training",
                "description": "Pengurus butuh pelatihan pembukuan dan aplikasi kasir",
            }
        else:
            body = {
                "cooperative_id": coop.id,
                "kind": "other",
                "description": "Kendala: tempat gerai belum ada, masih menumpang di balai RW",
            }
        need = until_known(client, "POST", f"{urls.sourcing}/needs", json=body, headers=h)
        needs.append(_check(need, "need"))
    for need in needs[:12]:
        _check(
            client.post(
                f"{urls.sourcing}/needs/{need['id']}/status",
                headers=h,
                json={"status": "acknowledged", "note": "Diterima, sedang dicarikan pemasok"},
            ),
            "ack",
        )
    for need in needs[:5]:
        _check(
            client.post(
                f"{urls.sourcing}/needs/{need['id']}/status",
                headers=h,
                json={"status": "in_progress", "note": "Koordinasi dengan pemasok"},
            ),
            "in progress",
        )
    # One order delivered end to end: the best match that can take the order as it is (its minimum order
    # and weekly capacity respected), for what it can fill.
    for need in [n for n in needs[:5] if n.get("kind") == "supply"]:
        detail = _check(client.get(f"{urls.sourcing}/needs/{need['id']}", headers=h), "need detail")
        usable = [
            m
            for m in detail.get("matches", [])
            if float(m.get("can_fill_quantity") or 0) > 0
            and not any("minimum" in r.lower() or "minimal" in r.lower() for r in m.get("reasons", []))
        ]
        if not usable:
            continue
        match = usable[0]
        quantity = min(float(need["quantity"]), float(match["can_fill_quantity"]))
        response = client.post(
            f"{urls.sourcing}/orders",
            headers=h,
            json={"need_id": need["id"], "supplier_id": match["supplier_id"], "quantity": str(quantity)},
        )
        if response.status_code != 201:
            continue  # the supplier cannot take it after all (minimum order, capacity): try the next need
        order = response.json()
        _check(client.post(f"{urls.sourcing}/orders/{order['id']}/confirm", headers=h, json={}), "confirm")
        _check(client.post(f"{urls.sourcing}/orders/{order['id']}/deliver", headers=h, json={}), "deliver")
        break


REPORT_DUE_DAY = 10  # reporting's REPORT_DUE_DAY: a month's report is due on the 10th of the next


def _month(day: date, shift: int = 0) -> date:
    """The first day of the month `shift` months from `day`'s."""
    index = day.year * 12 + day.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def report_periods(today: date) -> tuple[list[date], date | None]:
    """The three latest periods whose due date has passed on `today` (a WIB day), oldest first, as
    the health score and the report rates judge them; and the month that has ended but is not yet due
    (days 1-10), if any. Periods are given by their first day."""
    latest = _month(today, -1 if today.day > REPORT_DUE_DAY else -2)
    open_period = _month(today, -1) if today.day <= REPORT_DUE_DAY else None
    return [_month(latest, -2), _month(latest, -1), latest], open_period


def _wib(day: date, hour: float) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=clock.WIB) + timedelta(hours=hour)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + (end - start) * rng.random()


def plan_reports(coops: list[Coop], rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """Monthly reports of the three latest periods that are due, as the department received them:
    thriving cooperatives report on time, others late or not at all. Reports for P are due on the
    10th of P+1 (Surabaya's calendar), so on days 1-10 the latest due period is two months back; the
    month just ended then has a few early reports, all on time. Nothing is dated after `now`."""
    today = now.astimezone(clock.WIB).date()
    passed, open_period = report_periods(today)
    body: list[dict[str, Any]] = []
    for coop in coops:
        chance = {"thriving": 0.95, "slowing": 0.7, "dormant": 0.25, "new": 0.5}[coop.profile]
        late_chance = {"thriving": 0.1, "slowing": 0.45, "dormant": 0.7, "new": 0.3}[coop.profile]
        omzet = {"thriving": 45_000_000, "slowing": 15_000_000, "dormant": 2_000_000, "new": 5_000_000}[
            coop.profile
        ]
        for period in [*passed, open_period]:
            if period is None or rng.random() > (chance if period != open_period else chance / 2):
                continue
            due = _month(period, 1).replace(day=REPORT_DUE_DAY)
            if period == open_period:  # sent since the month ended: early, so on time
                submitted = _between(rng, _wib(_month(period, 1), 0), now)
            elif rng.random() < late_chance:
                submitted = _wib(due + timedelta(days=rng.randint(1, 12)), rng.uniform(8, 16))
                if submitted > now:  # the due date passed only lately: late, but not in the future
                    submitted = _between(rng, _wib(due + timedelta(days=1), 0), now)
            else:
                submitted = _wib(due - timedelta(days=rng.randint(0, 8)), rng.uniform(8, 16))
            body.append(
                {
                    "cooperative_id": coop.id,
                    "period": period.strftime("%Y-%m"),
                    "omzet": int(omzet * rng.uniform(0.6, 1.4)),
                    "transactions": rng.randint(50, 900),
                    "members": rng.randint(5, 60),
                    "simpanan": rng.randint(1, 30) * 500_000,
                    "notes": "Laporan bulanan gerai sembako",
                    "submitted_at": submitted.isoformat(),
                }
            )
    return body


def seed_reports(client: httpx.Client, urls: Urls, admin: str, coops: list[Coop], rng: random.Random) -> None:
    for coop in coops:  # the batch is all or none: every cooperative must be known first
        url = f"{urls.reporting}/cooperatives/{coop.id}"
        _check(until_known(client, "GET", url, headers=bearer(admin)), f"reporting knows {coop.name}")
    now = clock.now()
    body = plan_reports(coops, rng, now)
    for start in range(0, len(body), 1000):  # the batch route takes up to 1,000, all or none
        chunk = body[start : start + 1000]
        response = client.post(
            f"{urls.reporting}/reports/batch", json={"reports": chunk}, headers=bearer(admin)
        )
        if response.status_code == 409:  # seeding again (--force): keep the reports already there
            for item in chunk:
                report = {k: v for k, v in item.items() if k != "cooperative_id"}
                one = client.post(
                    f"{urls.reporting}/cooperatives/{item['cooperative_id']}/reports",
                    json=report,
                    headers=bearer(admin),
                )
                if one.status_code not in (201, 409):
                    _check(one, f"report {item['period']}")
        else:
            _check(response, "monthly reports")
    passed, _open = report_periods(now.astimezone(clock.WIB).date())
    console.print(
        f"Laporan bulanan: {len(body)} ({', '.join(p.strftime('%Y-%m') for p in passed)} jatuh tempo)"
    )


def seed_notifications(client: httpx.Client, urls: Urls, admin: str, today: datetime) -> None:
    """Announcements from the department, and preferences that show muting and the daily digest."""
    h = bearer(admin)
    _check(
        client.post(
            f"{urls.notifications}/announcements",
            headers=h,
            json={
                "title": "Rapat koordinasi KKMP se-Surabaya",
                "body": "Rapat koordinasi pengurus KKMP di Kantor Dinkopdag, Kamis pukul 09.00 WIB.",
                "roles": ["coop_manager", "officer"],
                "created_at": (today - timedelta(days=5)).isoformat(),
            },
        ),
        "announcement",
    )
    _check(
        client.post(
            f"{urls.notifications}/announcements",
            headers=h,
            json={
                "title": "Pelatihan pembukuan Kec. Wonocolo",
                "body": "Pelatihan pembukuan untuk pengurus KKMP di Kecamatan Wonocolo minggu depan.",
                "kecamatan_codes": ["35.78.02"],
                "created_at": (today - timedelta(days=2)).isoformat(),
            },
        ),
        "announcement",
    )
    scoped = token(client, urls.registry, "petugas-wonocolo", DEMO_PASSWORD)
    _check(
        client.put(f"{urls.notifications}/me/preferences", headers=bearer(scoped), json={"digest": "daily"}),
        "digest preference",
    )
