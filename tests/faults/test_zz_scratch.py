import asyncio, time
import httpx, pytest
from kkmp_shared.testing.wait import eventually

pytestmark = [pytest.mark.fault]

@pytest.mark.timeout(900)
async def test_throughput(kit, tmp_path_factory):
    t0 = time.monotonic()
    with kit.stack_up(tmp_path_factory.mktemp("scratch")) as stack:
        print("stack up", time.monotonic() - t0)
        town = kit.Town(stack)
        async with httpx.AsyncClient(timeout=60) as client:
            coops = await town.cooperatives(client, "35.78.09", 5) + await town.cooperatives(client, "35.78.10", 5)
            await town.known_everywhere(coops, [])
            print("coops known", time.monotonic() - t0)
            plans = [kit.plan_ledger(i, 1000) for i in range(10)]
            t1 = time.monotonic()
            for coop, (moves, exp) in zip(coops, plans):
                for i in range(0, 1000, 100):
                    r = await client.post(f"{stack.url('inventory')}/cooperatives/{coop.id}/movements/batch",
                        headers=coop.manager.headers, json={"movements": moves[i:i+100]})
                    assert r.status_code == 201, r.text
            t2 = time.monotonic()
            print("posted 10k in", t2 - t1)
            async def done():
                n = await stack.fetchval("reporting", "SELECT count(*) FROM inbox WHERE consumer='reporting.stock'")
                return n >= 10000
            await eventually(done, timeout=600, interval=1)
            print("reporting has all after", time.monotonic() - t1)
            print(await stack.consumed("reporting"))
