"""Inventory benchmark: a detection scan at national scale and movements per second through the API.

`make bench` imports this and awaits `run(results)`; `python bench/inventory_bench.py` prints a table.

- detection_scan_s: a full detection scan (`run_detection`, the code the schedule runs every five
  minutes) over a generated nationwide data set on PostgreSQL: 80,000 cooperatives x 19 commodities =
  1.52 M stock items, with about four days of sales each in the last 28 days (about 5 M daily rows),
  generated with set-based SQL (generate_series) in a throwaway database. It classifies every item and
  records and announces (outbox rows included) what changed.
- detection_daily_roll_s: what the day's first scan does on top: roll every item's 28-day sales a day
  on from the daily rows (here all 1.52 M from nothing; the production statement).
- detection_sql_limit_s: one SQL statement classifying the same 1.52 M items (the lower bound of a scan).
- api_movements_per_s: movements per second through `POST /cooperatives/{id}/movements/batch` (batches
  of 1,000, four clients at once) of an inventory started with uvicorn on PostgreSQL.

Sizes are overridable: BENCH_COOPERATIVES (80000), BENCH_API_MOVEMENTS (40000).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVICE_DIR = ROOT / "services" / "inventory"

COOPERATIVES = int(os.environ.get("BENCH_COOPERATIVES", "80000"))
API_MOVEMENTS = int(os.environ.get("BENCH_API_MOVEMENTS", "40000"))
API_CLIENTS = 4
BATCH = 1000


def _log(message: str) -> None:
    print(f"[inventory bench] {message}", file=sys.stderr, flush=True)


async def _prepare_database(prefix: str) -> tuple[str, Any]:
    from inventory.adapters import orm
    from inventory.service_layer.catalogue import seed_catalogue
    from inventory.service_layer.commands import SeedCatalogue
    from kkmp_shared import refdata
    from kkmp_shared.db import Database
    from kkmp_shared.messaging.outbox import Outbox
    from kkmp_shared.unit_of_work import UnitOfWork
    from kkmp_testkit.postgres import acreate_database

    url = await acreate_database(prefix)
    db = Database(url, pool_size=4)
    await db.migrate(SERVICE_DIR / "migrations")
    async with UnitOfWork(db.session(), Outbox(orm.messaging, source="/inventory")) as uow:
        await seed_catalogue(uow, SeedCatalogue(refdata.path(refdata.COMMODITIES)))
    return url, db


GENERATE = [
    # 80,000 cooperatives in 7,000 kecamatan-like groups.
    """
    INSERT INTO known_cooperatives
        (id, name, kelurahan_code, kecamatan_code, status, business_units, member_count, updated_at)
    SELECT 'coop-' || lpad(g::text, 6, '0'), 'KKMP ' || g, 'K.' || (g % 7000) || '.' || g,
           'K.' || (g % 7000), 'operating', '[]', 0, now()
    FROM generate_series(1, :n) AS g
    """,
    # Every cooperative stocks all 19 commodities: 8% sold out, the rest with up to 200 units; the last
    # sale skewed towards recent days (squared uniform over 40 days), so some items stall.
    """
    INSERT INTO stock_items
        (cooperative_id, commodity, on_hand_milli, stock_value, last_unit_cost, last_sale_at,
         stall_clock_at, version, updated_at)
    SELECT id, code, on_hand, on_hand / 1000 * typical_price, typical_price,
           now() - sale_days * interval '1 day',
           CASE WHEN on_hand > 0 THEN now() - sale_days * interval '1 day' END, 1, now()
    FROM (
        SELECT k.id, c.code, c.typical_price,
               CASE WHEN random() < 0.08 THEN 0 ELSE (random() * 200000)::bigint END AS on_hand,
               power(random(), 2) * 40 AS sale_days
        FROM known_cooperatives k CROSS JOIN commodities c
    ) AS generated
    """,
    # About four sale days per item within the 28-day window (every 6th to 9th day).
    """
    INSERT INTO daily_sales (cooperative_id, commodity, day, quantity_milli, value)
    SELECT s.cooperative_id, s.commodity, current_date - d, 1000 + (random() * 20000)::bigint, 0
    FROM stock_items s
    CROSS JOIN LATERAL generate_series(
        hashtext(s.cooperative_id || s.commodity) & 3, 27,
        6 + (hashtext(s.commodity || s.cooperative_id) & 3)
    ) AS d
    """,
    "ANALYZE",
]


async def bench_detection(results: dict[str, Any]) -> None:
    from inventory.adapters import orm
    from inventory.adapters.detection_sql import classified_items, roll_sales_window
    from inventory.adapters.repository import load_thresholds
    from inventory.domain.detection import sales_window
    from inventory.service_layer.commands import RunDetection
    from inventory.service_layer.detection import run_detection
    from inventory.settings import InventorySettings
    from kkmp_shared.bootstrap import Platform
    from kkmp_shared.messaging.outbox import Outbox
    from kkmp_testkit.postgres import adrop_database
    from sqlalchemy import func, select, text, update

    url, db = await _prepare_database("inventory_bench_scan")
    try:
        started = time.perf_counter()
        async with db.engine.connect() as conn:
            for statement in GENERATE:
                await conn.execute(text(statement), {"n": COOPERATIVES} if ":n" in statement else {})
                await conn.commit()
        async with db.session() as session:
            items = (await session.execute(select(func.count()).select_from(orm.stock_items))).scalar_one()
            sales = (await session.execute(select(func.count()).select_from(orm.daily_sales))).scalar_one()
        results["detection_items"] = int(items)
        results["detection_daily_sales_rows"] = int(sales)
        results["detection_generate_s"] = round(time.perf_counter() - started, 2)
        _log(
            f"generated {items:,} stock items, {sales:,} daily sales rows:"
            f" {results['detection_generate_s']} s"
        )

        # The day's first scan rolls every item's 28-day sales a day on from the daily rows (the
        # production statement), here from nothing.
        as_of = datetime.now(UTC)
        async with db.transaction() as session:
            await session.execute(text("SET LOCAL work_mem = '256MB'"))
            started = time.perf_counter()
            rolled = await roll_sales_window(session, sales_window(as_of)[1])
            results["detection_daily_roll_s"] = round(time.perf_counter() - started, 2)
        _log(f"daily roll of {rolled:,} 28-day sums: {results['detection_daily_roll_s']} s")
        # The episodes as the incremental detection and earlier scans left them (one statement).
        started = time.perf_counter()
        async with db.transaction() as session:
            thresholds = await load_thresholds(session)
            state = classified_items(as_of, thresholds, only_changed=False).subquery()
            items = orm.stock_items
            await session.execute(
                update(items)
                .where(
                    items.c.cooperative_id == state.c.cooperative_id, items.c.commodity == state.c.commodity
                )
                .values(condition=state.c.new_condition, condition_since=as_of)
            )
        _log(f"episodes recorded in {time.perf_counter() - started:.1f} s")

        outbox = Outbox(orm.messaging, source="/inventory")
        platform = Platform(settings=InventorySettings(demo=True), tables=orm.messaging, db=db, outbox=outbox)
        for minutes in (5, 10):
            command = RunDetection(as_of=as_of + timedelta(minutes=minutes), trigger="bench")
            scan = await run_detection(platform, command)
            assert scan is not None
            _log(
                f"full scan {minutes} minutes later: {scan['duration_ms'] / 1000:.2f} s,"
                f" {scan['announced']} announced"
            )
        # The figure is the second scan's (the first also warms the caches after the bulk load).
        results["detection_scan_s"] = round(scan["duration_ms"] / 1000, 2)
        results["detection_scan_announced"] = scan["announced"]
        # The lower bound: one SQL statement classifying every item (best of two runs).
        async with db.session() as session:
            query = classified_items(as_of, thresholds, only_changed=False).subquery()
            statement = select(query.c.new_condition, func.count()).group_by(query.c.new_condition)
            timings = []
            for _ in range(2):
                started = time.perf_counter()
                by_condition = dict((await session.execute(statement)).all())
                timings.append(time.perf_counter() - started)
            results["detection_sql_limit_s"] = round(min(timings), 2)
        results["detection_found"] = {str(k): int(v) for k, v in by_condition.items()}
        _log(
            f"one SQL statement classifying every item: {results['detection_sql_limit_s']} s"
            f" {results['detection_found']}"
        )
    finally:
        await db.dispose()
        await adrop_database(url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bench_api(results: dict[str, Any]) -> None:
    import httpx
    from inventory.adapters import orm
    from kkmp_testkit.postgres import adrop_database
    from kkmp_testkit.tokens import TokenFactory
    from sqlalchemy import insert

    url, db = await _prepare_database("inventory_bench_api")
    coops = [str(uuid.uuid4()) for _ in range(max(1, API_MOVEMENTS // BATCH))]
    async with db.transaction() as session:
        await session.execute(
            insert(orm.known_cooperatives),
            [
                {
                    "id": c,
                    "name": f"KKMP {i}",
                    "kelurahan_code": f"35.78.01.{1000 + i}",
                    "kecamatan_code": "35.78.01",
                    "status": "operating",
                    "business_units": [],
                    "member_count": 0,
                    "updated_at": datetime.now(UTC),
                }
                for i, c in enumerate(coops)
            ],
        )
    await db.dispose()
    tokens = TokenFactory()
    workdir = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    jwks = tokens.write_jwks(workdir / "jwks.json")
    port = _free_port()
    env = {
        **os.environ,
        "INVENTORY_DATABASE_URL": url,
        "KKMP_DEMO": "1",
        "KKMP_DATA_DIR": str(workdir),
        "JWKS_FILE": str(jwks),
        # The API's own cost: no broker (events stay in the outbox, written as always), no schedule.
        "BROKER_ENABLED": "false",
        "DETECTION_INTERVAL_S": "0",
        "LOG_LEVEL": "WARNING",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "inventory.bootstrap:create_app",
        "--factory",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=120, headers=tokens.headers("admin")) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await client.get("/health/live")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.returncode is not None:
                    raise RuntimeError("inventory did not start for the benchmark")
                await asyncio.sleep(0.2)
            commodities = ["beras_medium", "beras_sphp", "minyakita", "gula", "telur", "lpg_3kg"]
            start = datetime.now(UTC) - timedelta(days=30)

            def batch_for(index: int) -> list[dict[str, Any]]:
                # A shop's day: a receipt per commodity, then sales spread over the day.
                body = [
                    {
                        "commodity": c,
                        "kind": "receipt",
                        "quantity": "500",
                        "unit_price": 12000,
                        "occurred_at": start.isoformat(),
                        "reference": f"SJ-{index}-{c}",
                    }
                    for c in commodities
                ]
                for n in range(BATCH - len(commodities)):
                    body.append(
                        {
                            "commodity": commodities[n % len(commodities)],
                            "kind": "sale",
                            "quantity": "0.5",
                            "unit_price": 13000,
                            "occurred_at": (start + timedelta(minutes=n)).isoformat(),
                        }
                    )
                return body

            bodies = [batch_for(i) for i in range(len(coops))]
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(len(coops)):
                queue.put_nowait(i)

            async def worker() -> int:
                done = 0
                while not queue.empty():
                    i = queue.get_nowait()
                    response = await client.post(
                        f"/cooperatives/{coops[i]}/movements/batch", json={"movements": bodies[i]}
                    )
                    if response.status_code != 201:
                        raise RuntimeError(f"batch refused: {response.status_code} {response.text[:300]}")
                    done += len(bodies[i])
                return done

            started = time.perf_counter()
            moved = sum(await asyncio.gather(*(worker() for _ in range(API_CLIENTS))))
            elapsed = time.perf_counter() - started
        results["api_movements"] = moved
        results["api_movements_per_s"] = round(moved / elapsed)
        _log(f"API: {moved:,} movements in {elapsed:.1f} s = {results['api_movements_per_s']:,}/s")
    finally:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), timeout=15)
        except TimeoutError:
            server.kill()
            await server.wait()
        await adrop_database(url)


async def run(results: dict[str, Any]) -> None:
    """Fill `results` with the inventory's figures (see the module docstring)."""
    from kkmp_testkit.postgres import ensure_postgres

    ensure_postgres()
    await bench_detection(results)
    await bench_api(results)


def main() -> None:
    results: dict[str, Any] = {}
    asyncio.run(run(results))
    width = max(len(k) for k in results)
    print(f"{'inventory benchmark'.ljust(width)}  value")
    for key, value in results.items():
        print(f"{key.ljust(width)}  {value:,}" if isinstance(value, int) else f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
