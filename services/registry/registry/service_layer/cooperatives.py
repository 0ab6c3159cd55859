"""Cooperatives (KKMP): registering them (one, a batch, an import file), reading them in the caller's
scope, changing their profile and status.

Who may read or change a cooperative is decided here (`readable_cooperative`, `writable_cooperative`),
for the other use cases too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import Principal, ensure_can_read, ensure_can_write
from kkmp_shared.errors import ApiError, conflict, forbidden, not_found, unprocessable
from kkmp_shared.events.contracts import CooperativeRegistered, CooperativeUpdated
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import cooperatives, regions
from registry.adapters.rows import Duplicate
from registry.domain.ids import is_id, new_id
from registry.domain.rules import IllegalStatusChange, check_status_change
from registry.service_layer.commands import ImportedRow, RegisterCooperative, UpdateCooperative

UPDATABLE_FIELDS = frozenset(
    {"name", "formation", "deed", "business_units", "address", "phone", "status", "status_reason"}
)
# Who may change which fields of a cooperative: the profile and the deed are Dinkopdag's records;
# officers move the status within their scope; a manager keeps its own contact details and units.
EDITABLE_FIELDS: dict[str, frozenset[str]] = {
    "admin": UPDATABLE_FIELDS,
    "service": UPDATABLE_FIELDS,
    "officer": frozenset({"status", "status_reason", "business_units", "address", "phone"}),
    "coop_manager": frozenset({"business_units", "address", "phone"}),
}


async def load_cooperative(session: AsyncSession, cooperative_id: str) -> dict[str, Any] | None:
    if not is_id(cooperative_id):
        return None
    return await cooperatives.get(session, cooperative_id)


async def readable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> dict[str, Any]:
    """The cooperative if the caller may see it; 404 alike for unknown and not-yours (no leak)."""
    if principal.role == "supplier" or (
        principal.role == "coop_manager" and principal.cooperative_id != cooperative_id
    ):
        raise not_found("cooperative")
    coop = await load_cooperative(session, cooperative_id)
    if coop is None:
        raise not_found("cooperative")
    ensure_can_read(principal, coop["id"], coop["kecamatan_code"])
    return coop


async def writable_cooperative(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> dict[str, Any]:
    """The cooperative if the caller may change it: 403 for another's (whether or not it exists)."""
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot change a cooperative's data.")
    if principal.role == "coop_manager" and principal.cooperative_id != cooperative_id:
        raise forbidden("You may only change your own cooperative's data.")
    coop = await load_cooperative(session, cooperative_id)
    if coop is None:
        raise not_found("cooperative")
    ensure_can_write(principal, coop["id"], coop["kecamatan_code"])
    return coop


def updated_event(coop: dict[str, Any], changed: list[str]) -> CooperativeUpdated:
    return CooperativeUpdated(
        cooperative_id=coop["id"],
        kelurahan_code=coop["kelurahan_code"],
        kecamatan_code=coop["kecamatan_code"],
        name=coop["name"],
        kelurahan_name=coop["kelurahan_name"],
        formation=coop["formation"],
        status=coop["status"],
        business_units=coop["business_units"],
        lat=coop["lat"],
        lon=coop["lon"],
        member_count=coop["member_count"],
        changed=changed,
        updated_at=coop["updated_at"],
    )


# --- registration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationProblem:
    """Why one item of a registration batch cannot be registered (`index` into the batch)."""

    index: int
    field: str
    code: str
    message: str


async def registration_problems(
    session: AsyncSession, items: Sequence[RegisterCooperative]
) -> tuple[list[RegistrationProblem], dict[str, Any]]:
    """Check a batch against the regions and the cooperatives already registered, in a few queries.

    Returns the problems and the kelurahan rows by code (for the registration itself)."""
    codes = list(dict.fromkeys(item.kelurahan_code for item in items))
    known = await regions.kelurahan_by_codes(session, codes)
    taken = await cooperatives.registered_in(session, codes)
    problems: list[RegistrationProblem] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        code = item.kelurahan_code
        if code not in known:
            problems.append(
                RegistrationProblem(
                    index, "kelurahan_code", "unknown_kelurahan", f"Unknown kelurahan code {code}."
                )
            )
        elif code in taken:
            problems.append(
                RegistrationProblem(
                    index,
                    "kelurahan_code",
                    "kelurahan_taken",
                    f"Kelurahan {known[code].name} ({code}) already has a KKMP.",
                )
            )
        elif code in first_seen:
            problems.append(
                RegistrationProblem(
                    index,
                    "kelurahan_code",
                    "duplicate_kelurahan",
                    f"{code} is already used by item {first_seen[code]}.",
                )
            )
        first_seen.setdefault(code, index)
    return problems, known


async def _register(
    uow: UnitOfWork,
    principal: Principal,
    items: Sequence[RegisterCooperative],
    regions_by_code: dict[str, Any],
) -> list[str]:
    """Insert checked registrations (see `registration_problems`) with their history rows and their
    `cooperative.registered.v1` events, in bulk."""
    now = clock.now()
    coops: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    events: list[CooperativeRegistered] = []
    for item in items:
        kel = regions_by_code[item.kelurahan_code]
        coop_id = new_id()
        at = item.registered_at or now
        units = list(dict.fromkeys(item.business_units))
        coops.append(
            {
                "id": coop_id,
                "name": item.name,
                "kelurahan_code": item.kelurahan_code,
                "kecamatan_code": kel.kecamatan_code,
                "formation": item.formation,
                "deed_number": item.deed.number if item.deed else None,
                "deed_date": item.deed.date if item.deed else None,
                "deed_notary": item.deed.notary if item.deed else None,
                "status": "formed",
                "business_units": units,
                "member_count": 0,
                "address": item.address,
                "phone": item.phone,
                "created_at": at,
                "updated_at": at,
            }
        )
        history.append(
            {
                "cooperative_id": coop_id,
                "old_status": None,
                "new_status": "formed",
                "reason": "registered",
                "changed_by": principal.sub,
                "changed_at": at,
            }
        )
        events.append(
            CooperativeRegistered(
                cooperative_id=coop_id,
                kelurahan_code=item.kelurahan_code,
                kecamatan_code=kel.kecamatan_code,
                name=item.name,
                kelurahan_name=kel.name,
                formation=item.formation,
                status="formed",
                business_units=units,
                lat=kel.lat,
                lon=kel.lon,
                registered_at=at,
            )
        )
    if coops:
        await cooperatives.add_many(uow.session, coops, history)
        await uow.publish_many(list(events))
    return [c["id"] for c in coops]


async def register_cooperative(
    uow: UnitOfWork, principal: Principal, command: RegisterCooperative
) -> dict[str, Any]:
    problems, known = await registration_problems(uow.session, [command])
    if problems:
        problem = problems[0]
        if problem.code == "kelurahan_taken":
            raise conflict(problem.code, problem.message, {"kelurahan_code": command.kelurahan_code})
        raise unprocessable(problem.field, problem.message, problem.code)
    try:
        [coop_id] = await _register(uow, principal, [command], known)
    except Duplicate as exc:  # a concurrent registration for the same kelurahan won the race
        raise conflict("kelurahan_taken", f"Kelurahan {command.kelurahan_code} already has a KKMP.") from exc
    coop = await load_cooperative(uow.session, coop_id)
    assert coop is not None
    return coop


async def register_batch(
    uow: UnitOfWork,
    principal: Principal,
    items: Sequence[RegisterCooperative],
    *,
    describe: Callable[[RegistrationProblem], dict[str, Any]] | None = None,
) -> list[str]:
    """All of the batch or nothing. `describe(problem)` turns a problem into an error detail."""
    problems, known = await registration_problems(uow.session, items)
    if problems:
        details = [
            describe(p)
            if describe
            else {"field": f"cooperatives.{p.index}.{p.field}", "message": p.message, "type": p.code}
            for p in problems
        ]
        only_taken = all(p.code == "kelurahan_taken" for p in problems)
        raise ApiError(
            409 if only_taken else 422,
            "batch_conflict" if only_taken else "batch_rejected",
            f"{len(problems)} problem(s) found; nothing was registered.",
            details,
        )
    try:
        return await _register(uow, principal, items, known)
    except Duplicate as exc:
        raise conflict(
            "batch_conflict", "Another registration took one of these kelurahan meanwhile."
        ) from exc


async def import_cooperatives(
    uow: UnitOfWork, principal: Principal, rows: Sequence[ImportedRow], row_errors: list[dict[str, Any]]
) -> list[str]:
    """Register the rows of an import file, all or none. `row_errors`: what was wrong with the file's
    rows already (row and field); any problem, theirs or the database's, imports nothing."""
    errors = list(row_errors)
    if rows:
        problems, _ = await registration_problems(uow.session, [r.cooperative for r in rows])
        errors.extend({"row": rows[p.index].row, "field": p.field, "message": p.message} for p in problems)
    if errors:
        raise ApiError(
            422,
            "import_rejected",
            f"{len(errors)} problem(s) found; nothing was imported.",
            sorted(errors, key=lambda e: e["row"]),
        )

    def describe(p: RegistrationProblem) -> dict[str, Any]:
        return {"row": rows[p.index].row, "field": p.field, "message": p.message}

    return await register_batch(uow, principal, [r.cooperative for r in rows], describe=describe)


# --- reading --------------------------------------------------------------------------------------


async def list_cooperatives(
    session: AsyncSession,
    principal: Principal,
    *,
    kecamatan_code: str | None,
    status: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot list cooperatives.")
    total, items = await cooperatives.search(
        session,
        only_id=(principal.cooperative_id or "") if principal.role == "coop_manager" else None,
        kecamatan_scope=principal.kecamatan_filter(),
        kecamatan_code=kecamatan_code,
        status=status,
        q=q,
        limit=limit,
        offset=offset,
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


async def status_history(
    session: AsyncSession, principal: Principal, cooperative_id: str
) -> list[dict[str, Any]]:
    await readable_cooperative(session, principal, cooperative_id)
    return await cooperatives.status_history(session, cooperative_id)


# --- changes --------------------------------------------------------------------------------------


async def update_cooperative(
    uow: UnitOfWork, principal: Principal, command: UpdateCooperative
) -> dict[str, Any]:
    cooperative_id = command.cooperative_id
    coop = await writable_cooperative(uow.session, principal, cooperative_id)
    changes = dict(command.changes)
    refused = sorted(set(changes) - EDITABLE_FIELDS.get(principal.role, frozenset()))
    if refused:
        raise forbidden(f"Your role may not change: {', '.join(refused)}.")
    for field in ("name", "formation", "business_units"):
        if field in changes and changes[field] is None:
            raise unprocessable(field, f"{field} cannot be emptied.")
    values: dict[str, Any] = {}
    now = clock.now()
    for field in ("name", "formation"):
        if changes.get(field) is not None and changes[field] != coop[field]:
            values[field] = changes[field]
    for field in ("address", "phone"):  # these may be cleared with null
        if field in changes and changes[field] != coop[field]:
            values[field] = changes[field]
    units = changes.get("business_units")
    if units is not None and list(dict.fromkeys(units)) != coop["business_units"]:
        values["business_units"] = list(dict.fromkeys(units))
    deed = changes.get("deed")
    if deed is not None:
        values.update(deed_number=deed.number, deed_date=deed.date, deed_notary=deed.notary)
    status = changes.get("status")
    if status is not None and status != coop["status"]:
        try:
            check_status_change(coop["status"], status)
        except IllegalStatusChange as exc:
            raise conflict("illegal_status_change", str(exc), {"from": exc.old, "to": exc.new}) from exc
        values["status"] = status
        await cooperatives.add_status_change(
            uow.session,
            cooperative_id=cooperative_id,
            old_status=coop["status"],
            new_status=status,
            reason=changes.get("status_reason"),
            changed_by=principal.sub,
            changed_at=now,
        )
    if not values:
        return coop
    values["updated_at"] = now
    if not await cooperatives.update_if_status(uow.session, cooperative_id, coop["status"], values):
        raise conflict("concurrent_change", "The cooperative changed meanwhile; reload and try again.")
    updated = await load_cooperative(uow.session, cooperative_id)
    assert updated is not None
    changed = sorted({"deed" if k.startswith("deed_") else k for k in values if k != "updated_at"})
    await uow.publish(updated_event(updated, changed))
    return updated
