"""User accounts: an admin creates them (a manager bound to its cooperative, an officer to its
kecamatan, a supplier user to its supplier); the first admin is created on first start."""

from __future__ import annotations

from typing import Any

from kkmp_shared import clock
from kkmp_shared.errors import conflict, not_found, unprocessable
from kkmp_shared.events.contracts import UserCreated
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import passwords, regions, users
from registry.adapters.rows import Duplicate
from registry.domain.ids import is_id, new_id
from registry.service_layer.commands import CreateUser
from registry.service_layer.cooperatives import load_cooperative


async def create_user(uow: UnitOfWork, command: CreateUser) -> dict[str, Any]:
    session = uow.session
    cooperative: dict[str, Any] | None = None
    if command.role == "coop_manager":
        if not command.cooperative_id:
            raise unprocessable("cooperative_id", "A coop_manager must be bound to a cooperative.")
        cooperative = await load_cooperative(session, command.cooperative_id)
        if cooperative is None:
            raise unprocessable("cooperative_id", f"Unknown cooperative {command.cooperative_id}.")
    elif command.cooperative_id:
        raise unprocessable("cooperative_id", "Only a coop_manager is bound to a cooperative.")
    if command.role == "supplier" and not command.supplier_id:
        raise unprocessable("supplier_id", "A supplier user must name its supplier_id.")
    if command.role != "supplier" and command.supplier_id:
        raise unprocessable("supplier_id", "Only a supplier user has a supplier_id.")
    if command.role != "officer" and command.kecamatan_codes:
        raise unprocessable("kecamatan_codes", "Only officers have a kecamatan scope.")
    if command.role != "officer" and command.supervisor:
        raise unprocessable("supervisor", "Only officers can be supervisors.")
    if command.kecamatan_codes:
        known = await regions.known_kecamatan(session, command.kecamatan_codes)
        for i, code in enumerate(command.kecamatan_codes):
            if code not in known:
                raise unprocessable(f"kecamatan_codes.{i}", f"Unknown kecamatan code {code}.")
    if await users.id_of(session, command.username):
        raise conflict("username_taken", f"The username {command.username} is taken.")
    user_id = new_id()
    kecamatan_codes = list(dict.fromkeys(command.kecamatan_codes))
    values = {
        "id": user_id,
        "username": command.username,
        "password_hash": await passwords.hash_password(command.password),
        "role": command.role,
        "cooperative_id": command.cooperative_id,
        "supplier_id": command.supplier_id,
        "kecamatan_codes": kecamatan_codes,
        "full_name": command.full_name,
        "email": command.email,
        "supervisor": command.supervisor,
        "active": True,
        "created_at": clock.now(),
    }
    try:
        await users.add(session, values)
    except Duplicate as exc:  # a concurrent creation of the same username won the race
        raise conflict("username_taken", f"The username {command.username} is taken.") from exc
    await uow.publish(
        UserCreated(
            user_id=user_id,
            username=command.username,
            full_name=command.full_name,
            email=command.email,
            role=command.role,
            cooperative_id=command.cooperative_id,
            kelurahan_code=cooperative["kelurahan_code"] if cooperative else None,
            kecamatan_code=cooperative["kecamatan_code"] if cooperative else None,
            supplier_id=command.supplier_id,
            kecamatan_codes=kecamatan_codes,
            supervisor=command.supervisor,
        ),
        subject=command.cooperative_id,
    )
    values.pop("password_hash")
    return values


async def ensure_admin(uow: UnitOfWork, password: str) -> bool:
    """Create the bootstrap admin on first start; returns whether it was created. A replica starting
    at the same moment may create it first: then this one's unit of work fails with 409."""
    if await users.id_of(uow.session, "admin"):
        return False
    await create_user(
        uow,
        CreateUser(username="admin", password=password, role="admin", full_name="Administrator Dinkopdag"),
    )
    return True


async def list_users(
    session: AsyncSession, *, role: str | None, cooperative_id: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    return await users.page(session, role=role, cooperative_id=cooperative_id, limit=limit, offset=offset)


async def get_user(session: AsyncSession, user_id: str) -> dict[str, Any]:
    row = await users.get(session, user_id) if is_id(user_id) else None
    if row is None:
        raise not_found("user")
    return users.user_out(row)
