"""Sourcing's subscriptions, listed in one place.

- `sourcing.directory`: cooperative.registered.v1, cooperative.updated.v1, member.joined.v1 (the shared
  directory of cooperatives and their location).
- `sourcing.stock`: stock.stalled.v1, stock.low.v1, stock.stockout.v1, stock.recovered.v1 (who has stock
  that does not sell, who runs short).
- `sourcing.members`: member.joined.v1 (UMKM members and what they make: who could use stalled stock).

Handlers run inside the runner's transaction with the inbox row; they never commit.
"""

from __future__ import annotations

from kkmp_shared import clock
from kkmp_shared.events.contracts import MemberJoined, StockLow, StockRecovered, StockStalled, StockStockout
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.adapters import orm
from sourcing.service_layer import redistribution
from sourcing.service_layer.common import Context, upsert


def subscriptions(ctx: Context) -> ConsumerGroup:
    group = ConsumerGroup("sourcing")
    ctx.directory.subscribe(group)

    @group.on("stock", StockStalled)
    async def stock_stalled(session: AsyncSession, event: CloudEvent, data: StockStalled) -> None:
        await redistribution.on_stock_stalled(session, ctx, event, data)

    @group.on("stock", StockLow)
    async def stock_low(session: AsyncSession, event: CloudEvent, data: StockLow) -> None:
        await redistribution.on_stock_low(session, ctx, event, data)

    @group.on("stock", StockStockout)
    async def stock_stockout(session: AsyncSession, event: CloudEvent, data: StockStockout) -> None:
        await redistribution.on_stock_stockout(session, ctx, event, data)

    @group.on("stock", StockRecovered)
    async def stock_recovered(session: AsyncSession, event: CloudEvent, data: StockRecovered) -> None:
        await redistribution.on_stock_recovered(session, ctx, event, data)

    @group.on("members", MemberJoined)
    async def member_joined(session: AsyncSession, _event: CloudEvent, data: MemberJoined) -> None:
        if data.kind != "umkm":
            return
        await upsert(
            session,
            orm.umkm_members,
            {
                "member_id": data.member_id,
                "cooperative_id": data.cooperative_id,
                "sector": data.sector,
                "products": list(data.products),
                "joined_at": data.joined_at or clock.now(),
            },
            keys=("member_id",),
            update=("cooperative_id", "sector", "products"),
        )

    return group
