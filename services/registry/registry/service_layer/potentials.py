"""Potentials: what a kelurahan could grow, make or sell, mapped for its cooperative to take up."""

from __future__ import annotations

from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.errors import forbidden, not_found
from kkmp_shared.events.contracts import PotentialMapped
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import cooperatives, potentials, regions
from registry.domain.ids import is_id, new_id
from registry.service_layer.commands import MapPotential


async def _managed_kelurahan(session: AsyncSession, principal: Principal) -> str | None:
    if not principal.cooperative_id or not is_id(principal.cooperative_id):
        return None
    return await cooperatives.kelurahan_of(session, principal.cooperative_id)


async def add_potential(uow: UnitOfWork, principal: Principal, command: MapPotential) -> dict[str, Any]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot map potentials.")
    code = command.kelurahan_code
    kel = await regions.kelurahan_by_code(uow.session, code)
    if kel is None:
        raise not_found("kelurahan")
    coop_id = await cooperatives.of_kelurahan(uow.session, code)
    if principal.role == "coop_manager":
        if coop_id is None or principal.cooperative_id != coop_id:
            raise forbidden("You may only map the potential of your own kelurahan.")
    elif principal.role == "officer":
        if not principal.covers_kecamatan(kel.kecamatan_code):
            raise forbidden("This kelurahan is outside your kecamatan scope.")
    elif principal.role not in ("admin", "service"):
        raise forbidden()
    now = clock.now()
    potential_id = new_id()
    await potentials.add(
        uow.session,
        {
            "id": potential_id,
            "kelurahan_code": code,
            "sector": command.sector,
            "description": command.description,
            "priority": command.priority,
            "created_by": principal.sub,
            "created_at": now,
        },
    )
    await uow.publish(
        PotentialMapped(
            potential_id=potential_id,
            kelurahan_code=code,
            kecamatan_code=kel.kecamatan_code,
            cooperative_id=coop_id,
            sector=command.sector,
            description=command.description,
            priority=command.priority,
        ),
        subject=coop_id,
    )
    return {
        "id": potential_id,
        "kelurahan_code": code,
        "kecamatan_code": kel.kecamatan_code,
        "cooperative_id": coop_id,
        "sector": command.sector,
        "description": command.description,
        "priority": command.priority,
        "created_at": now,
    }


async def list_potentials(session: AsyncSession, principal: Principal, code: str) -> list[dict[str, Any]]:
    """A kelurahan's potentials: a manager sees its own kelurahan's, an officer those in scope."""
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot read potentials.")
    kel = await regions.kelurahan_by_code(session, code)
    if kel is None:
        raise not_found("kelurahan")
    if principal.role == "coop_manager" and await _managed_kelurahan(session, principal) != code:
        raise not_found("kelurahan")
    if not principal.covers_kecamatan(kel.kecamatan_code) and principal.role != "coop_manager":
        raise not_found("kelurahan")
    return await potentials.of_kelurahan(session, code)


async def search_potentials(
    session: AsyncSession,
    principal: Principal,
    *,
    kecamatan_code: str | None,
    sector: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """Potentials across kelurahan (one request for a map or a table instead of one per kelurahan)."""
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot read potentials.")
    own = (await _managed_kelurahan(session, principal) or "") if principal.role == "coop_manager" else None
    return await potentials.search(
        session,
        kelurahan_code=own,
        kecamatan_scope=principal.kecamatan_filter(),
        kecamatan_code=kecamatan_code,
        sector=sector,
        limit=limit,
        offset=offset,
    )
