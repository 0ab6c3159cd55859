"""Sourcing's subscriptions, listed in one place.

- `sourcing.directory`: cooperative.registered.v1, cooperative.updated.v1, member.joined.v1 (the shared
  directory of cooperatives and their location).
- `sourcing.stock`: stock.stalled.v1, stock.low.v1, stock.stockout.v1, stock.recovered.v1 (who has stock
  that does not sell, who runs short).
- `sourcing.members`: member.joined.v1 (UMKM members and what they make: who could use stalled stock).

Each handler runs a use case in the runner's transaction, committed with the inbox row.
"""

from __future__ import annotations

from kkmp_shared.bootstrap import Platform
from kkmp_shared.events.contracts import MemberJoined, StockLow, StockRecovered, StockStalled, StockStockout
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from sqlalchemy.ext.asyncio import AsyncSession

from sourcing.service_layer import members, stock_conditions
from sourcing.service_layer.common import Context


def subscriptions(platform: Platform, ctx: Context) -> ConsumerGroup:
    group = ConsumerGroup("sourcing")
    ctx.directory.subscribe(group)

    @group.on("stock", StockStalled)
    async def stock_stalled(session: AsyncSession, event: CloudEvent, data: StockStalled) -> None:
        async with platform.joined(session) as uow:
            await stock_conditions.on_stock_stalled(uow, ctx, event, data)

    @group.on("stock", StockLow)
    async def stock_low(session: AsyncSession, _event: CloudEvent, data: StockLow) -> None:
        async with platform.joined(session) as uow:
            await stock_conditions.on_stock_low(uow, ctx, data)

    @group.on("stock", StockStockout)
    async def stock_stockout(session: AsyncSession, _event: CloudEvent, data: StockStockout) -> None:
        async with platform.joined(session) as uow:
            await stock_conditions.on_stock_stockout(uow, ctx, data)

    @group.on("stock", StockRecovered)
    async def stock_recovered(session: AsyncSession, _event: CloudEvent, data: StockRecovered) -> None:
        async with platform.joined(session) as uow:
            await stock_conditions.on_stock_recovered(uow, data)

    @group.on("members", MemberJoined)
    async def member_joined(session: AsyncSession, _event: CloudEvent, data: MemberJoined) -> None:
        async with platform.joined(session) as uow:
            await members.on_member_joined(uow, data)

    return group
