"""Who may read or change a cooperative's stock: a coop_manager its own cooperative only (404 reading
another's, 403 changing it), officers their kecamatan, admins and services everywhere, suppliers none."""

from __future__ import annotations

from kkmp_shared.auth import Principal, ensure_can_read, ensure_can_write
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.errors import forbidden, not_found
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import repository


async def readable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> KnownCooperative:
    coop = await repository.directory.get(session, cooperative_id)
    if coop is None or principal.role == "supplier":
        raise not_found("cooperative")
    ensure_can_read(principal, coop.id, coop.kecamatan_code)
    return coop


async def writable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> KnownCooperative:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot change a cooperative's stock.")
    coop = await repository.directory.get(session, cooperative_id)
    if coop is None:
        if principal.role == "coop_manager" and principal.cooperative_id != cooperative_id:
            raise forbidden("You may only change your own cooperative's data.")
        raise not_found("cooperative")
    ensure_can_write(principal, coop.id, coop.kecamatan_code)
    return coop
