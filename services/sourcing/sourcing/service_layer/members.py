"""UMKM members heard of from the registry: what they make tells who could use stalled stock."""

from __future__ import annotations

from kkmp_shared import clock
from kkmp_shared.events.contracts import MemberJoined
from kkmp_shared.unit_of_work import UnitOfWork

from sourcing.adapters import members


async def on_member_joined(uow: UnitOfWork, data: MemberJoined) -> None:
    """Keep UMKM members only: the other kinds make nothing that stalled stock could feed."""
    if data.kind != "umkm":
        return
    await members.save_umkm_member(
        uow.session,
        member_id=data.member_id,
        cooperative_id=data.cooperative_id,
        sector=data.sector,
        products=list(data.products),
        joined_at=data.joined_at or clock.now(),
    )
