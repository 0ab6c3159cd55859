"""The use cases through their unit of work, without the app or the broker: a use case never commits,
the unit of work does (or rolls everything back), and what it staged in the outbox goes with it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from inventory.adapters import orm, repository
from inventory.domain.ledger import MovementDraft
from inventory.service_layer import catalogue, commands
from inventory.service_layer.movements import Recorded, record_movements
from inventory.settings import InventorySettings
from kkmp_shared import clock, refdata
from kkmp_shared.auth import Principal
from kkmp_shared.bootstrap import Platform, build_platform
from kkmp_shared.errors import ApiError
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inventory_testkit import KECAMATAN

REPO_DATA = refdata.directory()
ADMIN = Principal(sub="admin-1", role="admin", username="admin")


@pytest.fixture
async def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Platform]:
    monkeypatch.delenv("INVENTORY_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    built = build_platform(InventorySettings(demo=True, data_dir=tmp_path), orm.messaging)
    async with built.db.engine.begin() as conn:
        await conn.run_sync(orm.metadata.create_all)
    async with built.unit_of_work() as uow:
        await catalogue.seed_catalogue(uow, commands.SeedCatalogue(REPO_DATA / "commodities.csv"))
        await repository.add_provisional_cooperative(uow.session, "c1", f"{KECAMATAN[0]}.1001", KECAMATAN[0])
    yield built
    await built.db.dispose()


async def _count(platform: Platform, table: Any) -> int:
    async with platform.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


def _receipt(quantity: str, key: commands.IdempotencyKey | None = None) -> commands.RecordMovements:
    now = clock.now()
    draft = MovementDraft(
        commodity="beras_medium",
        kind="receipt",
        quantity=Decimal(quantity),
        occurred_at=now - timedelta(minutes=1),
        unit_price=12000,
    )
    return commands.RecordMovements("c1", [draft], recorded_by="admin", now=now, idempotency=key)


def _present(recorded: Recorded) -> Any:
    return {"ids": [m["id"] for m in recorded.movements]}


async def test_a_recorded_movement_and_its_event_commit_with_the_unit(platform: Platform) -> None:
    async with platform.unit_of_work() as uow:
        answer = await record_movements(uow, ADMIN, _receipt("10"), _present)
    assert answer.status == 201 and not answer.replayed and len(answer.body["ids"]) == 1
    assert await _count(platform, orm.movements) == 1
    assert await _count(platform, orm.messaging.outbox) == 1  # stock.moved.v1


async def test_a_unit_that_fails_after_the_use_case_keeps_neither_the_movement_nor_its_event(
    platform: Platform,
) -> None:
    with pytest.raises(RuntimeError):
        async with platform.unit_of_work() as uow:
            await record_movements(uow, ADMIN, _receipt("10"), _present)
            raise RuntimeError("the answer could not be sent")
    assert await _count(platform, orm.movements) == 0
    assert await _count(platform, orm.messaging.outbox) == 0


async def test_an_idempotency_key_answers_its_retry_with_the_first_answer_and_refuses_another_body(
    platform: Platform,
) -> None:
    key = commands.IdempotencyKey("k1", "hash-of-the-first-body")
    async with platform.unit_of_work() as uow:
        first = await record_movements(uow, ADMIN, _receipt("10", key), _present)
    async with platform.unit_of_work() as uow:
        again = await record_movements(uow, ADMIN, _receipt("10", key), _present)
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    assert await _count(platform, orm.movements) == 1
    other = commands.IdempotencyKey("k1", "hash-of-another-body")
    with pytest.raises(ApiError) as refused:
        async with platform.unit_of_work() as uow:
            await record_movements(uow, ADMIN, _receipt("5", other), _present)
    assert refused.value.code == "idempotency_key_reused"


async def test_a_supplier_may_not_record_stock(platform: Platform) -> None:
    supplier = Principal(sub="s1", role="supplier", supplier_id="s1")
    with pytest.raises(ApiError) as refused:
        async with platform.unit_of_work() as uow:
            await record_movements(uow, supplier, _receipt("10"), _present)
    assert refused.value.status == 403
    assert await _count(platform, orm.movements) == 0


async def test_a_catalogue_change_is_read_back_in_its_own_unit_and_kept_only_on_commit(
    platform: Platform,
) -> None:
    change = commands.ChangeCommodity("gula", {"stall_days": 33}, recorded_by="admin")
    with pytest.raises(RuntimeError):
        async with platform.unit_of_work() as uow:
            assert (await catalogue.change_commodity(uow, change)).stall_days == 33
            raise RuntimeError("rolled back")
    async with platform.db.read_session() as session:
        assert (await catalogue.get_commodity(session, "gula")).stall_days != 33
    async with platform.unit_of_work() as uow:
        await catalogue.change_commodity(uow, change)
    async with platform.db.read_session() as session:
        assert (await catalogue.get_commodity(session, "gula")).stall_days == 33
