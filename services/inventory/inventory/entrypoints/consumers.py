"""The inventory's subscriptions, listed in one place.

- `inventory.directory`: cooperative.registered / cooperative.updated / member.joined (the shared
  directory: which cooperatives exist, in which kelurahan and kecamatan).
- `inventory.orders`: order.delivered.v1 → a receipt.
- `inventory.redistributions`: redistribution.accepted.v1 → a transfer out and a transfer in.
"""

from __future__ import annotations

from kkmp_shared.events.contracts import OrderDelivered, RedistributionAccepted
from kkmp_shared.events.envelope import CloudEvent
from kkmp_shared.messaging.consumer import ConsumerGroup
from kkmp_shared.messaging.outbox import Outbox
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.adapters import repository
from inventory.service_layer.events_in import receive_delivery, transfer_redistribution


def subscriptions(outbox: Outbox) -> ConsumerGroup:
    group = ConsumerGroup("inventory")
    repository.directory.subscribe(group, purpose="directory")

    @group.on("orders", OrderDelivered)
    async def on_order_delivered(session: AsyncSession, _event: CloudEvent, data: OrderDelivered) -> None:
        await receive_delivery(session, outbox, data)

    @group.on("redistributions", RedistributionAccepted)
    async def on_redistribution_accepted(
        session: AsyncSession, _event: CloudEvent, data: RedistributionAccepted
    ) -> None:
        await transfer_redistribution(session, outbox, data)

    return group
