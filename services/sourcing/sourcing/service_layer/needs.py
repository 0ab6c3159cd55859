"""Needs (kebutuhan/kendala): submit, move along the lifecycle, comment. None of these commit: the unit
of work does, so a request is all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kkmp_shared.auth import Principal, ensure_can_write
from kkmp_shared.errors import ApiError, conflict, forbidden, not_found, unprocessable
from kkmp_shared.events.contracts import NeedStatus, NeedStatusChanged, NeedSubmitted
from kkmp_shared.unit_of_work import UnitOfWork

from sourcing.adapters import needs as need_rows
from sourcing.domain.needs import IllegalStatusChange, answers_need, check_status_change
from sourcing.service_layer import matching
from sourcing.service_layer.commands import SubmitNeed
from sourcing.service_layer.common import (
    Context,
    check_backdating,
    check_whole_units,
    local_date,
    new_id,
    now,
    require_staff_for,
    unknown,
)
from sourcing.service_layer.events import SupplyNeedSubmitted

# --- submitting ---------------------------------------------------------------------------------


async def submit_need(uow: UnitOfWork, ctx: Context, principal: Principal, data: SubmitNeed) -> str:
    """Record a need, announce it, and for a supply need rank suppliers and raise `SupplyNeedSubmitted`
    (stalled stock elsewhere may serve it before any supplier does)."""
    session = uow.session
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot post a cooperative's needs.")
    if principal.role == "coop_manager" and data.cooperative_id != principal.cooperative_id:
        raise forbidden("You may only post needs for your own cooperative.")
    coop = await ctx.directory.get(session, data.cooperative_id)
    if coop is None:
        # Not (yet) known from the registry's events: an unknown id, as on every route (404).
        raise ApiError(
            404,
            "unknown_cooperative",
            "The cooperative does not exist (or sourcing has not heard of it yet).",
            [{"field": "cooperative_id", "message": f"Unknown cooperative {data.cooperative_id!r}."}],
        )
    ensure_can_write(principal, coop.id, coop.kecamatan_code)
    if coop.status == "dissolved":
        raise conflict("cooperative_dissolved", "A dissolved cooperative cannot post needs.")
    submitted_at = check_backdating(principal, "submitted_at", data.submitted_at)
    commodity = None
    if data.commodity is not None:
        commodity = ctx.reference.commodity(data.commodity)
        if commodity is None:
            raise unknown("commodity", "commodity", data.commodity, "unknown_commodity")
    check_whole_units(commodity, "quantity", data.quantity)
    if data.needed_by is not None and data.needed_by < local_date(submitted_at):
        raise unprocessable("needed_by", "needed_by cannot be in the past.", "needed_by_in_past")
    need_id = new_id()
    unit = commodity.unit if commodity else None
    await need_rows.add(
        session,
        {
            "id": need_id,
            "cooperative_id": coop.id,
            "kelurahan_code": coop.kelurahan_code,
            "kecamatan_code": coop.kecamatan_code,
            "kind": data.kind,
            "commodity": data.commodity,
            "quantity": data.quantity,
            "unit": unit,
            "amount": data.amount,
            "needed_by": data.needed_by,
            "description": data.description,
            "status": "open",
            "submitted_at": submitted_at,
            "submitted_by": principal.sub,
            "submitted_by_role": principal.role,
            "status_changed_at": submitted_at,
        },
    )
    await need_rows.add_history(
        session,
        need_id,
        old_status=None,
        new_status="open",
        note=None,
        changed_by=principal.sub,
        changed_by_role=principal.role,
        changed_at=submitted_at,
    )
    await uow.publish(
        NeedSubmitted(
            cooperative_id=coop.id,
            kelurahan_code=coop.kelurahan_code,
            kecamatan_code=coop.kecamatan_code,
            need_id=need_id,
            kind=data.kind,
            commodity=data.commodity,
            quantity=data.quantity,
            unit=unit,
            needed_by=data.needed_by,
            description=data.description,
            submitted_at=submitted_at,
            submitted_by=principal.sub,
        ),
    )
    if data.kind == "supply":
        need = await need_rows.get(session, need_id)
        await matching.match_need(uow, ctx, need, as_of=local_date(submitted_at))
        uow.emit(SupplyNeedSubmitted(need_id, coop.id, data.commodity or ""))
    return need_id


async def submit_needs(
    uow: UnitOfWork, ctx: Context, principal: Principal, batch: Sequence[SubmitNeed]
) -> list[str]:
    """Several needs, all or none. Each need's follow-ups run before the next need is recorded, so a
    batch offers stalled stock exactly as the same needs posted one by one would."""
    ids = []
    for item in batch:
        ids.append(await submit_need(uow, ctx, principal, item))
        await uow.handle_internal()
    return ids


# --- lifecycle ----------------------------------------------------------------------------------


async def change_status(
    uow: UnitOfWork,
    principal: Principal,
    need_id: str,
    new_status: NeedStatus,
    *,
    note: str | None = None,
    assigned_to: str | None = None,
    changed_at: datetime | None = None,
    check_scope: bool = True,
) -> None:
    """Move a need along its lifecycle (officers and administrators in scope), announce the change."""
    session = uow.session
    need = await need_rows.get(session, need_id)
    if need is None:
        raise not_found("need")
    if check_scope:
        require_staff_for(principal, [need.kecamatan_code])
    try:
        check_status_change(need.status, new_status)
    except IllegalStatusChange as exc:
        raise conflict(
            "illegal_status_change", str(exc), {"from": exc.old, "to": exc.new, "allowed": exc.allowed}
        ) from exc
    at = (
        check_backdating(principal, "changed_at", changed_at, earliest=need.status_changed_at)
        if check_scope
        else (changed_at or now())
    )
    values: dict[str, Any] = {"status": new_status, "status_changed_at": at}
    if assigned_to is not None:
        values["assigned_to"] = assigned_to
    if answers_need(need.status):
        values["responded_at"] = at
    if new_status in ("acknowledged", "in_progress") and need.acknowledged_at is None:
        values["acknowledged_at"] = at
    if new_status in ("resolved", "rejected"):
        values["resolved_at"] = at
    # Only if nobody moved it meanwhile: two officers answering at once get one change and one 409.
    if not await need_rows.change_if_status(session, need_id, need.status, values):
        raise conflict("illegal_status_change", "The need's status changed meanwhile; reload and retry.")
    await need_rows.add_history(
        session,
        need_id,
        old_status=need.status,
        new_status=new_status,
        note=note,
        assigned_to=assigned_to,
        changed_by=principal.sub,
        changed_by_role=principal.role,
        changed_at=at,
    )
    await uow.publish(
        NeedStatusChanged(
            cooperative_id=need.cooperative_id,
            kelurahan_code=need.kelurahan_code,
            kecamatan_code=need.kecamatan_code,
            need_id=need_id,
            kind=need.kind,
            commodity=need.commodity,
            old_status=need.status,
            new_status=new_status,
            note=note,
            submitted_at=need.submitted_at,
            changed_at=at,
            changed_by=principal.sub,
        ),
    )


async def rematch(uow: UnitOfWork, ctx: Context, principal: Principal, need_id: str) -> None:
    need = await need_rows.get(uow.session, need_id)
    if need is None:
        raise not_found("need")
    require_staff_for(principal, [need.kecamatan_code])
    if need.kind != "supply":
        raise unprocessable("need_id", "Only supply needs are matched to suppliers.", "not_a_supply_need")
    await matching.match_need(uow, ctx, need)


# --- comments -----------------------------------------------------------------------------------


async def add_comment(uow: UnitOfWork, principal: Principal, need_id: str, text: str) -> dict[str, Any]:
    session = uow.session
    need = await need_rows.get(session, need_id)
    if need is None:
        raise not_found("need")
    if principal.role == "supplier":
        if not principal.supplier_id or not await need_rows.is_addressed_to(
            session, principal.supplier_id, need_id
        ):
            raise forbidden("This need is not addressed to you.")
    elif principal.role == "coop_manager":
        if principal.cooperative_id != need.cooperative_id:
            raise forbidden("You may only comment on your own cooperative's needs.")
    elif principal.role == "officer":
        require_staff_for(principal, [need.kecamatan_code])
    elif principal.role != "admin":
        raise forbidden()
    comment = {
        "id": new_id(),
        "need_id": need_id,
        "text": text,
        "author": principal.sub,
        "author_name": principal.username,
        "author_role": principal.role,
        "created_at": now(),
    }
    await need_rows.add_comment(session, comment)
    return comment


async def system_comment(uow: UnitOfWork, need_id: str, text: str) -> None:
    """A note KKMP itself leaves on a need (a redistribution accepted for it)."""
    await need_rows.add_comment(
        uow.session,
        {
            "id": new_id(),
            "need_id": need_id,
            "text": text,
            "author": None,
            "author_name": "KKMP",
            "author_role": "system",
            "created_at": now(),
        },
    )
