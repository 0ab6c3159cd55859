"""Use cases decide what is refused before they read or write anything: run here over a unit of work
whose session fails the test if it is touched, so each refusal is shown to cost no database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest
from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.errors import ApiError
from kkmp_shared.messaging.outbox import Outbox
from kkmp_shared.unit_of_work import UnitOfWork
from notifications.adapters import orm
from notifications.service_layer import announcements, delivery_log, inbox, routing_rules, subscriptions
from notifications.service_layer.commands import (
    AddRoutingRule,
    Announce,
    ChangePreferences,
    DeliveryFilter,
    Subscribe,
)
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.unit


class NoDatabase:
    """A session that must not be used."""

    info: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the use case touched the database ({name})")


def no_database() -> AsyncSession:
    return cast(AsyncSession, NoDatabase())


def unit() -> UnitOfWork:
    return UnitOfWork(no_database(), Outbox(orm.messaging, source="/notifications"), owns=False)


officer = Principal(sub="o1", role="officer", kecamatan_codes=("35.78.01",))
admin = Principal(sub="a1", role="admin")
manager = Principal(sub="m1", role="coop_manager", cooperative_id="c1")


async def refused(status: int, call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    assert caught.value.status == status
    return caught.value


async def test_a_cooperative_manager_is_not_offered_the_daily_digest() -> None:
    error = await refused(422, inbox.put_preferences(unit(), manager, ChangePreferences(digest="daily"), 7))
    assert error.details[0]["field"] == "digest"


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (AddRoutingRule("stock.stalled.v1", "admins", match_field="cooperative_id"), "match_field"),
        (AddRoutingRule("stock.stalled.v1", "supplier"), "match_field"),  # a stall names no supplier
        (AddRoutingRule("stock.stalled.v1", "admins", when={"colour": ["red"]}), "when.colour"),
    ],
)
async def test_a_routing_rule_on_a_field_the_event_does_not_carry_is_refused(
    command: AddRoutingRule, field: str
) -> None:
    error = await refused(422, routing_rules.create_rule(unit(), admin, command))
    assert error.details[0]["field"] == field


async def test_an_announcement_dated_in_the_future_is_refused() -> None:
    command = Announce("Rapat", "Besok", ["coop_manager"], created_at=clock.now() + timedelta(hours=1))
    await refused(422, announcements.announce(unit(), admin, command, "http://portal"))


async def test_an_officer_writes_only_within_their_own_kecamatan() -> None:
    command = Announce("Rapat", "Besok", ["coop_manager"], kecamatan_codes=["35.78.02"])
    await refused(403, announcements.announce(unit(), officer, command, "http://portal"))


async def test_subscriptions_are_for_staff_and_an_officer_subscribes_within_their_scope() -> None:
    mail = Subscribe("email", "dinas@example.org", ["stock.stalled.v1"])
    await refused(
        403, subscriptions.create_subscription(unit(), manager, mail, allow_internal_webhooks=False)
    )
    elsewhere = Subscribe("email", "dinas@example.org", ["stock.stalled.v1"], kecamatan_codes=["35.78.02"])
    await refused(
        403, subscriptions.create_subscription(unit(), officer, elsewhere, allow_internal_webhooks=False)
    )


async def test_a_cooperative_manager_sees_no_deliveries() -> None:
    await refused(403, delivery_log.list_deliveries(no_database(), manager, DeliveryFilter(), 10, 0))
