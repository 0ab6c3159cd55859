"""Who is who: recipients learned from `user.created.v1` (or a token), and audience resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.events.contracts import UserCreated
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import recipients as people
from notifications.domain.routing import Target
from notifications.service_layer.common import now


async def learn_user(uow: UnitOfWork, data: UserCreated) -> None:
    """Upsert the user and replace their kecamatan scope (the event carries the full state)."""
    moment = now()
    values: dict[str, Any] = {
        "user_id": data.user_id,
        "username": data.username,
        "full_name": data.full_name,
        "email": data.email,
        "role": data.role,
        "cooperative_id": data.cooperative_id,
        "supplier_id": data.supplier_id,
        "whole_city": data.role in ("officer", "admin") and not data.kecamatan_codes,
        "supervisor": bool(data.supervisor),
        "learned_from": "event",
        "created_at": moment,
        "updated_at": moment,
    }
    await people.save(uow.session, values, sorted(set(data.kecamatan_codes)))


async def learn_from_token(uow: UnitOfWork, principal: Principal) -> bool:
    """A user whose `user.created.v1` we never saw (created before this service's queue existed)
    becomes a recipient from the claims of their own token; the event, when it comes, overrides."""
    if principal.role == "service":
        return False
    if await people.known(uow.session, principal.sub):
        return False
    moment = now()
    values: dict[str, Any] = {
        "user_id": principal.sub,
        "username": principal.username,
        "role": principal.role,
        "cooperative_id": principal.cooperative_id,
        "supplier_id": principal.supplier_id,
        "whole_city": principal.role in ("officer", "admin") and not principal.kecamatan_codes,
        "supervisor": bool(principal.claims.get("supervisor", False)),
        "learned_from": "token",
        "created_at": moment,
        "updated_at": moment,
    }
    await people.add_if_unknown(uow.session, values, sorted(set(principal.kecamatan_codes)))
    return True


@dataclass(frozen=True)
class Recipient:
    user_id: str
    role: str
    email: str | None
    digest: bool
    email_enabled: bool


async def resolve(session: AsyncSession, targets: Sequence[Target], event_type: str) -> list[Recipient]:
    """Everyone in any of the audiences who has not muted this type: one query, whatever the scale."""
    return (await resolve_many(session, [(targets, event_type)]))[0]


@dataclass
class _Candidate:
    """A person who may be in one of a batch's audiences, with what deciding it takes."""

    recipient: Recipient
    cooperative_id: str | None
    supplier_id: str | None
    whole_city: bool
    supervisor: bool
    scopes: set[str] = field(default_factory=set)
    muted: set[str] = field(default_factory=set)

    def within(self, kecamatan_code: str | None) -> bool:
        return self.whole_city or (bool(kecamatan_code) and kecamatan_code in self.scopes)


def _member(candidate: _Candidate, target: Target) -> bool:
    """Whether one candidate the batch's query found is in this audience (the vocabulary routing rules
    are written in: domain/routing.py)."""
    role = candidate.recipient.role
    match target.audience:
        case "cooperative_managers":
            return role == "coop_manager" and candidate.cooperative_id == target.value
        case "officers_in_scope":
            return role == "officer" and candidate.within(target.value)
        case "supervisors_in_scope":
            return role == "officer" and candidate.supervisor and candidate.within(target.value)
        case "admins":
            return role == "admin"
        case "supplier":
            return role == "supplier" and candidate.supplier_id == target.value
    return False


_OFFICER_AUDIENCES = ("officers_in_scope", "supervisors_in_scope")


async def resolve_many(
    session: AsyncSession, requests: Sequence[tuple[Sequence[Target], str]]
) -> list[list[Recipient]]:
    """`resolve` for each (audiences, event type) request, for a batch of events in one query: every
    person who may be in one of the batch's audiences, with their scope and muted types among the
    batch's, matched to each request here. Each request gets the union of its audiences' people who
    have not muted its type, each once, ordered by user id."""
    wanted = {target for targets, _ in requests for target in targets}
    if not wanted:
        return [[] for _ in requests]

    def values(*audiences: str) -> list[str]:
        return sorted({str(t.value) for t in wanted if t.audience in audiences and t.value})

    rows = await people.candidates(
        session,
        cooperatives=values("cooperative_managers"),
        suppliers=values("supplier"),
        kecamatans=values(*_OFFICER_AUDIENCES),
        event_types=sorted({event_type for _, event_type in requests}),
        officers=any(t.audience in _OFFICER_AUDIENCES for t in wanted),
        admins=any(t.audience == "admins" for t in wanted),
    )
    found: dict[str, _Candidate] = {}
    for row in rows:
        candidate = found.get(row.user_id)
        if candidate is None:
            recipient = Recipient(
                user_id=row.user_id,
                role=row.role,
                email=row.email,
                digest=row.digest == "daily",
                email_enabled=True if row.email_enabled is None else bool(row.email_enabled),
            )
            candidate = found[row.user_id] = _Candidate(
                recipient, row.cooperative_id, row.supplier_id, bool(row.whole_city), bool(row.supervisor)
            )
        if row.kecamatan_code is not None:
            candidate.scopes.add(row.kecamatan_code)
        if row.muted_type is not None:
            candidate.muted.add(row.muted_type)
    ordered = sorted(found.values(), key=lambda c: c.recipient.user_id)
    members: dict[Target, list[_Candidate]] = {t: [c for c in ordered if _member(c, t)] for t in wanted}
    answers: list[list[Recipient]] = []
    for targets, event_type in requests:
        chosen: dict[str, Recipient] = {}
        for target in targets:
            for candidate in members[target]:
                if event_type not in candidate.muted:
                    chosen.setdefault(candidate.recipient.user_id, candidate.recipient)
        answers.append([chosen[user_id] for user_id in sorted(chosen)])
    return answers
