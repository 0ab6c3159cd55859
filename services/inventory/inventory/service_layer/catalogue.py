"""Catalogue use cases: seeding the commodities, adding them, changing thresholds and ceilings.

A ceiling change is a new period from its effective date; earlier periods stay, so history is kept and
a back-dated sale is judged against the ceiling of its day.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from kkmp_shared import clock
from kkmp_shared.errors import conflict, not_found, unprocessable
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import repository
from inventory.adapters.repository import CommodityInfo
from inventory.domain.catalogue import (
    CeilingPeriod,
    initial_ceilings,
    read_catalogue,
    read_ceiling_history,
)
from inventory.domain.ledger import utc
from inventory.service_layer.commands import AddCommodity, ChangeCommodity, SeedCatalogue, SetCeiling

log = logging.getLogger("kkmp.inventory.catalogue")

PACKAGE_DIR = Path(__file__).resolve().parent.parent
CEILING_HISTORY = PACKAGE_DIR / "ceiling_history.csv"


async def seed_catalogue(uow: UnitOfWork, command: SeedCatalogue) -> int:
    """Add the commodities of the seed file that are not there yet (an admin's later changes stay)."""
    now = clock.now()
    entries = read_catalogue(command.csv_path)
    history_path = command.ceiling_history or CEILING_HISTORY
    history = read_ceiling_history(history_path) if history_path.exists() else {}
    existing = await repository.catalogue_codes(uow.session)
    new = [e for e in entries if e.code not in existing]
    if not new:
        return 0
    await repository.insert_commodities(
        uow.session,
        [
            {
                "code": e.code,
                "name": e.name,
                "unit": e.unit,
                "stall_days": e.stall_days,
                "low_cover_days": e.low_cover_days,
                "typical_price": e.typical_price,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            for e in new
        ],
    )
    ceilings = [
        {
            "commodity": e.code,
            "price_ceiling": p.price_ceiling,
            "ceiling_kind": p.ceiling_kind,
            "legal_basis": p.legal_basis,
            "effective_from": p.effective_from,
            "recorded_at": now,
            "recorded_by": "catalogue seed",
        }
        for e in new
        for p in initial_ceilings(e, history.get(e.code, []))
    ]
    if ceilings:
        await repository.insert_ceilings(uow.session, ceilings)
    log.info("catalogue seeded with %d commodities", len(new))
    return len(new)


def commodity_out(info: CommodityInfo, now: datetime) -> dict[str, Any]:
    current = info.ceiling_at(now)
    has_ceiling = current is not None and current.price_ceiling is not None
    return {
        "code": info.code,
        "name": info.name,
        "unit": info.unit,
        "price_ceiling": current.price_ceiling if has_ceiling else None,  # type: ignore[union-attr]
        "ceiling_kind": current.ceiling_kind if has_ceiling else None,  # type: ignore[union-attr]
        "legal_basis": current.legal_basis if has_ceiling else None,  # type: ignore[union-attr]
        "ceiling_effective_from": current.effective_from if has_ceiling else None,  # type: ignore[union-attr]
        "stall_days": info.stall_days,
        "low_cover_days": info.low_cover_days,
        "typical_price": info.typical_price,
        "active": info.active,
        "updated_at": info.updated_at,
    }


def ceiling_out(period: CeilingPeriod, now: datetime, current: CeilingPeriod | None) -> dict[str, Any]:
    return {
        "price_ceiling": period.price_ceiling,
        "ceiling_kind": period.ceiling_kind,
        "legal_basis": period.legal_basis,
        "effective_from": period.effective_from,
        "in_force": period is current,
        "upcoming": period.effective_from > now,
    }


async def catalogue(session: AsyncSession) -> dict[str, CommodityInfo]:
    """The whole catalogue (this process's short-lived copy, see `repository.cached_catalogue`)."""
    return await repository.cached_catalogue(session)


async def get_commodity(session: AsyncSession, code: str) -> CommodityInfo:
    info = (await repository.load_catalogue(session, [code])).get(code)
    if info is None:
        raise not_found("commodity")
    return info


async def add_commodity(uow: UnitOfWork, command: AddCommodity) -> CommodityInfo:
    now = clock.now()
    if (await repository.load_catalogue(uow.session, [command.code])).get(command.code) is not None:
        raise conflict("duplicate_commodity", f"Commodity {command.code!r} already exists.")
    await repository.insert_commodities(
        uow.session,
        [
            {
                "code": command.code,
                "name": command.name,
                "unit": command.unit,
                "stall_days": command.stall_days,
                "low_cover_days": command.low_cover_days,
                "typical_price": command.typical_price,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    if command.price_ceiling is not None:
        await _add_ceiling(
            uow,
            command.code,
            command.price_ceiling,
            command.ceiling_kind,
            command.legal_basis,
            now,
            command.recorded_by,
            now,
        )
    return await get_commodity(uow.session, command.code)


async def change_commodity(uow: UnitOfWork, command: ChangeCommodity) -> CommodityInfo:
    now = clock.now()
    await get_commodity(uow.session, command.code)
    fields = dict(command.changes)
    ceiling_fields = {
        k: fields.pop(k) for k in ("price_ceiling", "ceiling_kind", "legal_basis") if k in fields
    }
    for name in ("name", "stall_days", "low_cover_days", "active"):
        if name in fields and fields[name] is None:
            raise unprocessable(name, f"{name} cannot be null.")
    if fields:
        await repository.update_commodity(uow.session, command.code, {**fields, "updated_at": now})
    if ceiling_fields:
        if "price_ceiling" not in ceiling_fields:
            raise unprocessable("price_ceiling", "A ceiling change needs price_ceiling (null to remove it).")
        await _add_ceiling(
            uow,
            command.code,
            ceiling_fields["price_ceiling"],
            ceiling_fields.get("ceiling_kind"),
            ceiling_fields.get("legal_basis"),
            now,
            command.recorded_by,
            now,
        )
        await repository.update_commodity(uow.session, command.code, {"updated_at": now})
    return await get_commodity(uow.session, command.code)


async def set_ceiling(uow: UnitOfWork, command: SetCeiling) -> CommodityInfo:
    now = clock.now()
    await get_commodity(uow.session, command.code)
    effective_from = utc(command.effective_from) if command.effective_from is not None else now
    await _add_ceiling(
        uow,
        command.code,
        command.price_ceiling,
        command.ceiling_kind,
        command.legal_basis,
        effective_from,
        command.recorded_by,
        now,
    )
    await repository.update_commodity(uow.session, command.code, {"updated_at": now})
    return await get_commodity(uow.session, command.code)


async def _add_ceiling(
    uow: UnitOfWork,
    code: str,
    price_ceiling: int | None,
    ceiling_kind: str | None,
    legal_basis: str | None,
    effective_from: datetime,
    recorded_by: str,
    now: datetime,
) -> None:
    if price_ceiling is not None and ceiling_kind is None:
        raise unprocessable("ceiling_kind", "Say whether the ceiling is a HET or a HAP.")
    await repository.insert_ceilings(
        uow.session,
        [
            {
                "commodity": code,
                "price_ceiling": price_ceiling,
                "ceiling_kind": ceiling_kind if price_ceiling is not None else None,
                "legal_basis": legal_basis,
                "effective_from": effective_from,
                "recorded_at": now,
                "recorded_by": recorded_by,
            }
        ],
    )
