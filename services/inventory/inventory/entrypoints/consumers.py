"""The inventory's subscriptions, listed in one place; each handler is one line that runs a use case in
the consumer's unit of work (`platform.joined`: committed by the runner together with the inbox row).

- `inventory.directory`: cooperative.registered / cooperative.updated / member.joined (the shared
  directory: which cooperatives exist, in which kelurahan and kecamatan).
- `inventory.orders`: order.delivered.v1 → a receipt.
- `inventory.redistributions`: redistribution.accepted.v1 → a transfer out and a transfer in.
"""

from __future__ import annotations

from kkmp_shared.bootstrap import Platform
from kkmp_shared.events.contracts import OrderDelivered, RedistributionAccepted
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import repository
from inventory.service_layer.events_in import receive_delivery, transfer_redistribution


def subscriptions(platform: Platform) -> ConsumerGroup:
    group = ConsumerGroup("inventory")
    repository.directory.subscribe(group, purpose="directory")

    @group.on("orders", OrderDelivered)
    async def on_order_delivered(session: AsyncSession, _event: CloudEvent, data: OrderDelivered) -> None:
        async with platform.joined(session) as uow:
            await receive_delivery(uow, data)

    @group.on("redistributions", RedistributionAccepted)
    async def on_redistribution_accepted(
        session: AsyncSession, _event: CloudEvent, data: RedistributionAccepted
    ) -> None:
        async with platform.joined(session) as uow:
            await transfer_redistribution(uow, data)

    return group
