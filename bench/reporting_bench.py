"""Reporting at national scale: dashboard query times over 80,000 cooperatives.

Builds a throwaway PostgreSQL database, runs reporting's migrations, and fills the read model with
set-based SQL (`generate_series`): 80,000 cooperatives in 7,277 kecamatan (Indonesia's count), eight
stock items each, three needs each, monthly reports, health rows and ten days of sales. Then it lets
reporting's own refresher build the per-kecamatan and city rows (timed), and measures through HTTP
(in-process ASGI, the app as `uvicorn` would serve it, without the broker):

- `dashboard_summary_p95_ms`: `GET /dashboard/summary` as an administrator (the whole country);
- `dashboard_kecamatan_p95_ms`: `GET /kecamatan` (7,277 rows, served from memory while no refresh
  has changed them); `dashboard_kecamatan_after_refresh_p95_ms` when a refresh has just rewritten a
  kecamatan (that row is re-rendered), and `dashboard_kecamatan_cold_p95_ms` with nothing rendered
  yet (after a restart);
- `dashboard_summary_officer_p95_ms`: the summary for an officer scoped to 20 kecamatan (summed rows
  and a live median);
- `reporting_refresh_all_kecamatan_s` and `reporting_health_recompute_all_s`: what a full refresh and
  a scheduled recompute of every cooperative's health cost.

`make bench` calls `run(results)`; `python bench/reporting_bench.py` prints a table.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from figures import percentile_ms

COOPERATIVES = int(os.environ.get("BENCH_COOPERATIVES", "80000"))
KECAMATAN = int(os.environ.get("BENCH_KECAMATAN", "7277"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200"))

# Kecamatan k gets the code PP.RR.KK (a province, regency and district number derived from k).
KECAMATAN_CODE = (
    "format('%s.%s.%s', 11 + {k} / 400, lpad((({k} / 20) % 20 + 1)::text, 2, '0'),"
    " lpad(({k} % 20 + 1)::text, 2, '0'))"
)

GENERATE = [
    # Cooperatives (the common directory's table) and when they were registered.
    f"""
    INSERT INTO known_cooperatives (id, name, kelurahan_code, kecamatan_code, kelurahan_name, lat, lon,
                                    status, business_units, member_count, updated_at)
    SELECT md5('coop' || i)::uuid::text, 'KKMP Desa ' || i,
           {KECAMATAN_CODE.format(k="(i % :kec)")} || '.' || (1001 + i / :kec),
           {KECAMATAN_CODE.format(k="(i % :kec)")}, 'Desa ' || i, -7.0, 112.0,
           CASE WHEN i % 97 = 0 THEN 'suspended' ELSE 'operating' END, '["sembako"]'::json,
           20 + i % 180, now()
    FROM generate_series(0, :n - 1) AS i
    """,
    """
    INSERT INTO cooperative_facts (cooperative_id, kecamatan_code, registered_at, formation)
    SELECT id, kecamatan_code, now() - ((abs(hashtext(id)) % 400) || ' days')::interval, 'new'
    FROM known_cooperatives
    """,
    # Eight commodities per cooperative: about 5% stalled, 5% low, 2% out of stock.
    """
    INSERT INTO stock_items (cooperative_id, commodity, kecamatan_code, unit, on_hand_milli, on_hand_at,
                             last_sale_at, stalled, stalled_since, stalled_changed_at,
                             stalled_on_hand_milli, stalled_value, stalled_days_since_sale, low, low_since,
                             low_changed_at, stockout, stockout_since, stockout_changed_at)
    SELECT c.id, x.commodity, c.kecamatan_code, 'kg', 10000 + r % 100000, now(),
           now() - (r % 40 || ' days')::interval,
           r % 100 < 5, CASE WHEN r % 100 < 5 THEN now() - interval '3 days' END,
           CASE WHEN r % 100 < 5 THEN now() - interval '3 days' END,
           CASE WHEN r % 100 < 5 THEN 10000 + r % 100000 END,
           CASE WHEN r % 100 < 5 THEN 50000 + r % 500000 ELSE 0 END,
           CASE WHEN r % 100 < 5 THEN 14 + r % 30 END,
           r % 100 BETWEEN 5 AND 9, CASE WHEN r % 100 BETWEEN 5 AND 9 THEN now() END,
           CASE WHEN r % 100 BETWEEN 5 AND 9 THEN now() END,
           r % 100 BETWEEN 10 AND 11, CASE WHEN r % 100 BETWEEN 10 AND 11 THEN now() END,
           CASE WHEN r % 100 BETWEEN 10 AND 11 THEN now() END
    FROM known_cooperatives c
    CROSS JOIN unnest(ARRAY['beras_medium', 'beras_premium', 'lpg_3kg', 'minyakita', 'gula', 'telur',
                            'tepung_terigu', 'garam']) AS x(commodity)
    CROSS JOIN LATERAL (SELECT abs(hashtext(c.id || x.commodity)) AS r) h
    """,
    # Three needs per cooperative: 70% answered (response between 0 and 96 hours), 20% resolved.
    """
    INSERT INTO needs (need_id, cooperative_id, kecamatan_code, kind, commodity, description, status,
                       submitted_at, status_changed_at, first_response_at, response_seconds, closed_at)
    SELECT md5(c.id || n)::uuid::text, c.id, c.kecamatan_code, 'supply', 'gula', 'Butuh pasokan',
           CASE WHEN r % 10 < 3 THEN 'open' WHEN r % 10 < 5 THEN 'resolved' ELSE 'acknowledged' END,
           now() - interval '10 days',
           CASE WHEN r % 10 >= 3 THEN now() - interval '9 days' END,
           CASE WHEN r % 10 >= 3
                THEN now() - interval '10 days' + (r % 345600 || ' seconds')::interval END,
           CASE WHEN r % 10 >= 3 THEN r % 345600 END,
           CASE WHEN r % 10 BETWEEN 3 AND 4 THEN now() - interval '8 days' END
    FROM known_cooperatives c
    CROSS JOIN generate_series(1, 3) AS n
    CROSS JOIN LATERAL (SELECT abs(hashtext(c.id || n)) AS r) h
    """,
    # The latest due period's reports: 70% submitted, 80% of those on time.
    """
    INSERT INTO monthly_reports (id, cooperative_id, kecamatan_code, period, omzet, transactions, members,
                                 simpanan, notes, submitted_at, submitted_by, due_date, on_time)
    SELECT md5('report' || c.id)::uuid::text, c.id, c.kecamatan_code, :period,
           10000000 + r % 90000000, r % 900, c.member_count, NULL, NULL, now() - interval '20 days',
           'bench', :due, r % 10 < 8
    FROM known_cooperatives c CROSS JOIN LATERAL (SELECT abs(hashtext('r' || c.id)) AS r) h
    WHERE r % 100 < 70
    """,
    # Ten days of sales for most cooperatives (health's trading factor reads them).
    """
    INSERT INTO coop_sales_daily (cooperative_id, day, kecamatan_code, sale_count, sale_value)
    SELECT c.id, current_date - d, c.kecamatan_code, 1 + r % 20, 100000 + r % 2000000
    FROM known_cooperatives c
    CROSS JOIN generate_series(0, 9) AS d
    CROSS JOIN LATERAL (SELECT abs(hashtext(c.id || d)) AS r) h
    WHERE r % 10 < 7
    """,
]


async def _timed(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    await call()  # warm caches and the connection pool
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def run(results: dict[str, Any]) -> None:
    """Fill `results` with reporting's dashboard timings at national scale (PostgreSQL required)."""
    from kkmp_testkit.harness import running_app
    from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
    from kkmp_testkit.tokens import TokenFactory
    from reporting.adapters import refresh_store
    from reporting.adapters.views.kecamatan_list import KecamatanList
    from reporting.bootstrap import create_app
    from reporting.settings import ReportingSettings
    from sqlalchemy import text

    ensure_postgres()
    url = await acreate_database("kkmp_bench_reporting")
    previous = os.environ.get("REPORTING_DATABASE_URL")
    os.environ["REPORTING_DATABASE_URL"] = url
    try:
        tokens = TokenFactory()
        settings = ReportingSettings(
            demo=True,
            broker_enabled=False,
            refresh_interval_s=3600,  # the bench runs the refresher itself, not in the background
            health_interval_s=0,
            overdue_interval_s=0,
            log_level="WARNING",
        )
        app = create_app(settings, key_source=lambda _s: tokens.key_source())
        async with running_app(app) as client:
            ctx = app.state.reporting
            db = app.state.db
            period = ctx.current_period()
            started = time.perf_counter()
            async with db.transaction() as session:
                for statement in GENERATE:
                    await session.execute(
                        text(statement),
                        {
                            "n": COOPERATIVES,
                            "kec": KECAMATAN,
                            "period": str(period),
                            "due": ctx.due.due_date(period),
                        },
                    )
            async with db.transaction() as session:
                await session.execute(text("ANALYZE"))
            results["reporting_generate_s"] = round(time.perf_counter() - started, 1)

            started = time.perf_counter()
            health = await ctx.refresher.recompute_all_health()
            results["reporting_health_recompute_all_s"] = round(time.perf_counter() - started, 1)
            results["reporting_bench_cooperatives"] = health.cooperatives
            async with db.transaction() as session:
                await refresh_store.mark_all(session, cooperatives=False, kecamatan=True)
            started = time.perf_counter()
            refreshed = await ctx.refresher.run_once()
            results["reporting_refresh_all_kecamatan_s"] = round(time.perf_counter() - started, 2)
            results["reporting_bench_kecamatan"] = refreshed.kecamatan

            admin = tokens.headers("admin")
            codes = sorted({row[0] for row in (await _codes(db, text))})[:20]
            officer = tokens.headers("officer", kecamatan_codes=codes)

            async def summary() -> None:
                response = await client.get("/dashboard/summary", headers=admin)
                assert (
                    response.status_code == 200 and response.json()["cooperatives"]["total"] == COOPERATIVES
                )

            async def kecamatan() -> None:
                response = await client.get("/kecamatan", headers=admin)
                assert response.status_code == 200

            async def kecamatan_cold() -> None:
                # Nothing rendered yet (a restart): every row is rendered.
                ctx.kecamatan_list = KecamatanList()
                response = await client.get("/kecamatan", headers=admin)
                assert response.status_code == 200

            touched = itertools.cycle(codes)

            async def kecamatan_after_refresh() -> float:
                # What a refresh cycle leaves behind: one kecamatan row and the city row rewritten;
                # only the request that follows is timed.
                async with db.transaction() as session:
                    await session.execute(
                        text(
                            "UPDATE kecamatan_figures SET refreshed_at = clock_timestamp()"
                            " WHERE kecamatan_code IN (:code, '*')"
                        ),
                        {"code": next(touched)},
                    )
                started = time.perf_counter()
                response = await client.get("/kecamatan", headers=admin)
                assert response.status_code == 200
                return (time.perf_counter() - started) * 1000

            async def scoped_summary() -> None:
                response = await client.get("/dashboard/summary", headers=officer)
                assert response.status_code == 200

            rows = (await client.get("/kecamatan", headers=admin)).json()
            results["reporting_kecamatan_rows"] = len(rows)
            for key, call in (
                ("dashboard_summary", summary),
                ("dashboard_kecamatan", kecamatan),
                ("dashboard_summary_officer", scoped_summary),
                ("dashboard_kecamatan_cold", kecamatan_cold),
            ):
                timings = await _timed(call, REQUESTS if call is not kecamatan_cold else 20)
                results[f"{key}_p50_ms"] = round(statistics.median(timings), 2)
                results[f"{key}_p95_ms"] = percentile_ms(timings, 95)
            after_refresh = [await kecamatan_after_refresh() for _ in range(REQUESTS)]
            results["dashboard_kecamatan_after_refresh_p50_ms"] = round(statistics.median(after_refresh), 2)
            results["dashboard_kecamatan_after_refresh_p95_ms"] = percentile_ms(after_refresh, 95)
    finally:
        if previous is None:
            os.environ.pop("REPORTING_DATABASE_URL", None)
        else:
            os.environ["REPORTING_DATABASE_URL"] = previous
        await adrop_database(url)


async def _codes(db: Any, text: Any) -> list[Any]:
    async with db.session() as session:
        return list(
            (await session.execute(text("SELECT DISTINCT kecamatan_code FROM known_cooperatives"))).all()
        )


def main() -> None:
    results: dict[str, Any] = {}
    asyncio.run(run(results))
    width = max(len(k) for k in results)
    print(f"reporting at national scale ({COOPERATIVES:,} cooperatives, {REQUESTS} requests per query)")
    for key, value in results.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
