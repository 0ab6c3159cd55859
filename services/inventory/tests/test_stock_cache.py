"""The stock page's read cache: repeated reads answered from this process's copy, exactly as the route
answers them, and never after a change this process committed, nor to a principal the route would refuse.

`StockReadCache` alone first (its clock is the test's), then the running service on SQLite and
PostgreSQL. Each token a test reuses was verified once by the route, as a browser session's token is: a
token seen for the first time always goes to the route.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from inventory.adapters import repository
from inventory.adapters.stock_cache import StockReadCache
from inventory.bootstrap import create_app
from inventory.domain.ledger import StockState
from kkmp_shared import clock
from kkmp_shared.events.contracts import CooperativeUpdated
from kkmp_testkit.asserts import assert_error
from kkmp_testkit.harness import running_app, wait_ready
from kkmp_testkit.wait import eventually

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inventory_testkit import KECAMATAN, Inventory, known_cooperative

DAY = date(2026, 11, 29)


def _state(cooperative_id: str = "c1") -> StockState:
    return StockState(cooperative_id=cooperative_id, commodity="gula", on_hand=Decimal(5))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _cache(ttl_s: float = 2.0, size: int = 10) -> tuple[StockReadCache, Clock]:
    clock = Clock()
    return StockReadCache(ttl_s=ttl_s, size=size, clock=clock), clock


def _store(cache: StockReadCache, ticket: int, cooperative_id: str = "c1", day: date = DAY) -> bool:
    state = _state(cooperative_id)
    return cache.store(
        ticket, known_cooperative(cooperative_id), [state], {(cooperative_id, "gula"): Decimal(1)}, day
    )


# --- the cache alone ---------------------------------------------------------------------------------


def test_a_copy_is_served_until_its_time_is_up_or_the_sales_window_moves() -> None:
    cache, clock = _cache(ttl_s=2.0)
    assert _store(cache, cache.ticket())
    snapshot = cache.get("c1", DAY)
    assert snapshot is not None and snapshot.states[0].on_hand == 5
    assert cache.get("c1", DAY + timedelta(days=1)) is None  # a new day: the window's sums changed
    assert _store(cache, cache.ticket())
    clock.now += 0.99  # not due to be read again before half its time
    snapshot = cache.get("c1", DAY)
    assert snapshot is not None and not cache.due(snapshot)
    clock.now += 0.51  # due by three quarters of it, to one reader at a time, and still served
    snapshot = cache.get("c1", DAY)
    assert snapshot is not None and cache.due(snapshot) and not cache.due(snapshot)
    cache.refreshed("c1")
    assert cache.due(snapshot)
    cache.refreshed("c1")
    clock.now += 0.49
    assert cache.get("c1", DAY) is not None
    clock.now += 0.01  # never served past its time
    assert cache.get("c1", DAY) is None
    assert cache.get("c1", DAY) is None  # and it is gone
    # Copies stored together are due at different moments.
    due_in = set()
    for n in range(20):
        assert _store(cache, cache.ticket(), f"s{n}")
        snapshot = cache.get(f"s{n}", DAY)
        assert snapshot is not None
        assert 1.0 <= snapshot.refresh_at - clock.now <= 1.5 and snapshot.expires_at - clock.now == 2.0
        due_in.add(round(snapshot.refresh_at - clock.now, 3))
    assert len(due_in) > 5


def test_a_read_that_began_before_a_change_does_not_store_what_it_read() -> None:
    cache, _ = _cache()
    before = cache.ticket()
    cache.forget(["c1"])  # a transaction that changed c1 committed while the read was querying
    assert not _store(cache, before)
    assert cache.get("c1", DAY) is None
    assert _store(cache, before, "c2")  # the change was not c2's
    after = cache.ticket()
    assert _store(cache, after)
    assert cache.get("c1", DAY) is not None
    cache.forget(["c1"])
    assert cache.get("c1", DAY) is None


def test_the_cache_keeps_the_most_recently_read_and_bounds_what_it_remembers() -> None:
    cache, _ = _cache(size=2)
    for cooperative_id in ("a", "b"):
        assert _store(cache, cache.ticket(), cooperative_id)
    assert cache.get("a", DAY) is not None  # b is now the least recently read
    assert _store(cache, cache.ticket(), "c")
    assert cache.get("b", DAY) is None
    assert cache.get("a", DAY) is not None and cache.get("c", DAY) is not None
    # More changed cooperatives than it keeps track of (4 x size): every read in flight counts as stale.
    in_flight = cache.ticket()
    cache.forget([f"x{i}" for i in range(9)])
    assert not _store(cache, in_flight, "d")
    assert _store(cache, cache.ticket(), "d")


def test_a_cache_of_size_or_time_zero_keeps_nothing() -> None:
    for ttl_s, size in ((0, 10), (2.0, 0)):
        cache, _ = _cache(ttl_s=ttl_s, size=size)
        assert not cache.enabled
        assert not _store(cache, cache.ticket())
        assert cache.get("c1", DAY) is None


# --- the running service ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def copies_kept_long(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the service's tests a copy outlives the test, so that only the commit hooks can make a read
    see a change (with the default 2 s a slow test could pass on the copy's expiry alone)."""
    if "inventory" not in request.fixturenames:
        yield
        return
    cache: StockReadCache = request.getfixturevalue("inventory").app.state.stock_cache
    cache.ttl_s, ttl_s = 3600.0, cache.ttl_s
    try:
        yield
    finally:
        cache.ttl_s = ttl_s


async def _page(inventory: Inventory, cooperative_id: str, headers: dict[str, str]) -> tuple[bytes, int]:
    """The page's bytes, and how many reads the cache answered so far (this one included)."""
    response = await inventory.client.get(f"/cooperatives/{cooperative_id}/stock", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.content, inventory.app.state.stock_cache.hits


async def _stocked(inventory: Inventory, kecamatan_code: str = KECAMATAN[0]) -> str:
    coop = await inventory.register(kecamatan_code)
    now = clock.now()
    await inventory.batch(
        coop,
        [
            {
                "commodity": "gula",
                "kind": "receipt",
                "quantity": 40,
                "unit_price": 15000,
                "occurred_at": now - timedelta(days=3),
            },
            {
                "commodity": "telur",
                "kind": "receipt",
                "quantity": 10,
                "unit_price": 27000,
                "occurred_at": now - timedelta(days=3),
            },
            {
                "commodity": "gula",
                "kind": "sale",
                "quantity": 4,
                "unit_price": 17000,
                "occurred_at": now - timedelta(days=1),
            },
        ],
    )
    return coop


async def test_a_repeated_read_is_answered_from_the_copy_with_the_routes_own_bytes(
    inventory: Inventory,
) -> None:
    coop = await _stocked(inventory)
    admin = inventory.headers()
    first, hits = await _page(inventory, coop, admin)  # the route: the token's first use
    again, hits_after = await _page(inventory, coop, admin)
    assert hits_after == hits + 1
    assert again == first
    # A new token goes to the route, which answers the same bytes.
    route, hits_route = await _page(inventory, coop, inventory.headers())
    assert hits_route == hits_after and route == again
    # A filter goes to the route as well.
    filtered = await inventory.client.get(
        f"/cooperatives/{coop}/stock", params={"status": "ok"}, headers=admin
    )
    assert filtered.status_code == 200 and inventory.app.state.stock_cache.hits == hits_after
    assert {line["commodity"] for line in filtered.json()} <= {"gula", "telur"}


async def test_a_movement_is_seen_by_the_next_read(inventory: Inventory) -> None:
    coop = await _stocked(inventory)
    manager = inventory.manager(coop)
    await _page(inventory, coop, manager)
    before, hits = await _page(inventory, coop, manager)
    sale = {"commodity": "gula", "kind": "sale", "quantity": 6, "unit_price": 17000}
    response = await inventory.client.post(f"/cooperatives/{coop}/movements", json=sale, headers=manager)
    assert response.status_code == 201, response.text
    after, hits_after = await _page(inventory, coop, manager)
    assert hits_after == hits  # the copy was forgotten when the sale committed
    lines = {line["commodity"]: line for line in json.loads(after)}
    assert lines["gula"]["on_hand"] == 30 and after != before
    again, hits_again = await _page(inventory, coop, manager)
    assert hits_again == hits + 1 and again == after


async def test_an_episode_found_by_detection_is_seen_by_the_next_read(inventory: Inventory) -> None:
    coop = await inventory.register(KECAMATAN[0])
    long_ago = clock.now() - timedelta(days=30)
    await inventory.move(
        coop, commodity="minyakita", kind="receipt", quantity=12, unit_price=14000, occurred_at=long_ago
    )
    admin = inventory.headers()
    await _page(inventory, coop, admin)
    cached, hits = await _page(inventory, coop, admin)
    assert b'"episode":null' in cached
    await inventory.detect()
    found, hits_after = await _page(inventory, coop, admin)
    assert hits_after == hits
    assert b'"episode":"stalled"' in found and b'"status":"stalled"' in found


async def test_the_copy_is_not_served_to_whom_the_route_would_refuse(inventory: Inventory) -> None:
    mine = await _stocked(inventory, KECAMATAN[0])
    theirs = await inventory.register(KECAMATAN[1])
    client = inventory.client
    owner = inventory.manager(mine)
    await _page(inventory, mine, owner)
    await _page(inventory, mine, owner)  # the copy is there
    other_manager = inventory.manager(theirs)
    officer_elsewhere = inventory.headers("officer", kecamatan_codes=[KECAMATAN[1]])
    supplier = inventory.headers("supplier", supplier_id="s1")
    for headers in (other_manager, officer_elsewhere, supplier):
        assert (await client.get("/commodities", headers=headers)).status_code == 200  # token verified
        for _ in range(2):
            assert_error(await client.get(f"/cooperatives/{mine}/stock", headers=headers), 404)
    assert_error(await client.get(f"/cooperatives/{mine}/stock"), 401)
    assert_error(
        await client.get(
            f"/cooperatives/{mine}/stock", headers={"Authorization": "Basic " + owner["Authorization"][7:]}
        ),
        401,
    )
    # A token accepted once is refused once it expired, copy or not.
    short = {
        "Authorization": f"Bearer {inventory.tokens.mint('coop_manager', cooperative_id=mine, expires_in=2)}"
    }
    await _page(inventory, mine, short)

    async def refused() -> bool:
        return (await client.get(f"/cooperatives/{mine}/stock", headers=short)).status_code == 401

    await eventually(refused, timeout=10, message="the expired token refused")
    assert_error(await client.get(f"/cooperatives/{mine}/stock", headers=short), 401)


async def test_a_directory_change_is_seen_by_the_next_read(inventory: Inventory) -> None:
    coop = await _stocked(inventory, KECAMATAN[0])
    officer = inventory.headers("officer", kecamatan_codes=[KECAMATAN[0]])
    await _page(inventory, coop, officer)
    await _page(inventory, coop, officer)
    # The registry corrects the cooperative's kecamatan: this officer no longer oversees it.
    await inventory.probe.publish(
        CooperativeUpdated(
            cooperative_id=coop,
            kelurahan_code=f"{KECAMATAN[2]}.1001",
            kecamatan_code=KECAMATAN[2],
            name="KKMP corrected",
            formation="new",
            status="operating",
            updated_at=clock.now(),
        ),
        source="/registry",
    )

    async def moved() -> bool:
        async with inventory.app.state.db.read_session() as session:
            known = await repository.directory.get(session, coop)
        return known is not None and known.kecamatan_code == KECAMATAN[2]

    await eventually(moved, timeout=15, message="the directory row corrected")
    assert_error(await inventory.client.get(f"/cooperatives/{coop}/stock", headers=officer), 404)
    overseer = inventory.headers("officer", kecamatan_codes=[KECAMATAN[2]])
    await _page(inventory, coop, overseer)


async def test_a_write_through_another_replica_is_seen_within_the_time_allowed(inventory: Inventory) -> None:
    """Two replicas on one database: the other's sale reaches this one's copy by the background read
    of a copy still being read, or by its expiry, and never later than STOCK_CACHE_TTL_S."""
    coop = await _stocked(inventory)
    cache: StockReadCache = inventory.app.state.stock_cache
    clock = Clock()
    cache.clock, cache.ttl_s = clock, 2.0
    cache.clear()
    with pytest.MonkeyPatch.context() as env:  # the same database, as the fixture's replica reads it
        env.setenv("INVENTORY_DATABASE_URL", inventory.app.state.db.url)
        other = create_app(
            inventory.app.state.settings.model_copy(), key_source=lambda _s: inventory.tokens.key_source()
        )
    assert other.state.db.url == inventory.app.state.db.url
    admin = inventory.headers()
    sale = {"commodity": "gula", "kind": "sale", "quantity": 6, "unit_price": 17000}

    def on_hand(page: bytes) -> float:
        return {line["commodity"]: line for line in json.loads(page)}["gula"]["on_hand"]  # type: ignore[no-any-return]

    async with running_app(other) as replica:
        await wait_ready(replica, timeout=30)
        page, hits = await _page(inventory, coop, admin)
        assert on_hand(page) == 36
        response = await replica.post(f"/cooperatives/{coop}/movements", json=sale, headers=admin)
        assert response.status_code == 201, response.text
        page, hits_after = await _page(inventory, coop, admin)
        assert (on_hand(page), hits_after) == (36, hits + 1)  # this replica's copy, not yet read again

        clock.now += 1.5  # due to be read again: still answered, and read again in the background
        page, hits_after = await _page(inventory, coop, admin)
        assert (on_hand(page), hits_after) == (36, hits + 2)

        async def refreshed() -> bool:
            return on_hand((await _page(inventory, coop, admin))[0]) == 30

        await eventually(refreshed, timeout=10, message="the copy read again")
        assert inventory.app.state.stock_cache.hits > hits + 2  # by the fast path, from the new copy

        response = await replica.post(f"/cooperatives/{coop}/movements", json=sale, headers=admin)
        assert response.status_code == 201, response.text
        clock.now += 2.0  # nobody read it meanwhile: expired, so the route answers
        page, hits_now = await _page(inventory, coop, admin)
        assert on_hand(page) == 24 and inventory.app.state.stock_cache.hits == hits_now


async def test_the_catalogue_behind_the_copy_is_reloaded_when_old_and_at_once_when_changed_here(
    inventory: Inventory,
) -> None:
    coop = await _stocked(inventory)
    admin = inventory.headers()
    engine = inventory.app.state.db.engine
    await _page(inventory, coop, admin)
    _, hits = await _page(inventory, coop, admin)
    # Past its time: this read is still answered from the copies, while one reload runs.
    key = engine.sync_engine.pool
    stamp, catalogue = repository._catalogue_cache[key]
    repository._catalogue_cache[key] = (stamp - repository.CATALOGUE_TTL_S - 1, catalogue)
    assert repository.catalogue_copy(engine) == (catalogue, False)
    _, hits_after = await _page(inventory, coop, admin)
    assert hits_after == hits + 1

    async def reloaded() -> bool:
        copy, fresh = repository.catalogue_copy(engine)
        return fresh and copy is not catalogue

    await eventually(reloaded, timeout=10, message="the catalogue reloaded in the background")
    # A change made here is seen by the next read, answered from the stock copy all the same.
    renamed = await inventory.client.patch(
        "/commodities/telur", json={"name": "Telur ayam negeri"}, headers=admin
    )
    assert renamed.status_code == 200, renamed.text
    try:
        page, hits_now = await _page(inventory, coop, admin)
        assert b'"name":"Telur ayam negeri"' in page and hits_now == hits_after + 1
    finally:
        restored = await inventory.client.patch(
            "/commodities/telur", json={"name": "Telur ayam ras"}, headers=admin
        )
        assert restored.status_code == 200, restored.text
