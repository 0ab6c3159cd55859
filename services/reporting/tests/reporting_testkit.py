"""What reporting's tests share: the running service handle, and builders of contract events for the
fixture streams (a cooperative and what happens to it)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from kkmp_shared import clock
from kkmp_shared.events import contracts as ev
from kkmp_shared.events.envelope import CloudEvent
from kkmp_testkit.harness import EventProbe
from kkmp_testkit.tokens import TokenFactory
from kkmp_testkit.wait import eventually
from reporting.adapters import orm
from sqlalchemy import func, select

_kecamatan_numbers = itertools.count(40)


def fresh_kecamatan() -> str:
    """A kecamatan code no other test uses (35.78.40 onwards: beyond Surabaya's 31)."""
    return f"35.78.{next(_kecamatan_numbers)}"


@dataclass
class Running:
    app: FastAPI
    client: httpx.AsyncClient
    probe: EventProbe
    tokens: TokenFactory
    published: list[CloudEvent] = field(default_factory=list)

    def headers(self, role: str, **claims: Any) -> dict[str, str]:
        return self.tokens.headers(role, **claims)

    def officer(self, *codes: str) -> dict[str, str]:
        return self.tokens.headers("officer", kecamatan_codes=list(codes))

    def manager(self, cooperative_id: str) -> dict[str, str]:
        return self.tokens.headers("coop_manager", cooperative_id=cooperative_id)

    @property
    def admin(self) -> dict[str, str]:
        return self.tokens.headers("admin")

    @property
    def processed(self) -> int:
        return int(self.app.state.runner.stats["processed"])

    async def settle(self, processed_at_least: int, timeout: float = 30) -> None:
        """Wait until the consumers have processed that many events, then work off every queued
        refresh, so the derived figures (health, kecamatan rows) reflect all of them."""
        await eventually(lambda: self.processed >= processed_at_least, timeout=timeout)
        await self._refresh_all()

    async def applied(self, *events: CloudEvent, timeout: float = 30) -> None:
        """Wait until these events are applied (each is in the event store, written in the same
        transaction as its projection), then work off every queued refresh. Unlike a count of
        processed events, another event processed meanwhile (one of the service's own, a late one of
        an earlier test) cannot stand in for one of these."""
        ids = {event.id for event in events}
        t = orm.event_store

        async def stored() -> bool:
            async with self.app.state.db.session() as session:
                found = await session.execute(select(func.count()).where(t.c.event_id.in_(ids)))
                return int(found.scalar_one()) == len(ids)

        await eventually(stored, timeout=timeout)
        await self._refresh_all()

    async def _refresh_all(self) -> None:
        refresher = self.app.state.reporting.refresher
        while True:
            result = await refresher.run_once()
            if not (result.cooperatives or result.kecamatan):
                return

    async def publish(self, data: ev.EventData, event_id: str | None = None) -> CloudEvent:
        event = await self.probe.publish(data, source="/test", event_id=event_id)
        self.published.append(event)
        return event


@dataclass
class Coop:
    """A cooperative of a fixture stream, and the contract events about it."""

    kecamatan_code: str
    name: str = "KKMP Uji"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    kelurahan_code: str = ""

    def __post_init__(self) -> None:
        self.kelurahan_code = self.kelurahan_code or f"{self.kecamatan_code}.1001"

    @property
    def ref(self) -> dict[str, str]:
        return {
            "cooperative_id": self.id,
            "kelurahan_code": self.kelurahan_code,
            "kecamatan_code": self.kecamatan_code,
        }

    def registered(self, at: datetime, status: str = "operating") -> ev.CooperativeRegistered:
        return ev.CooperativeRegistered(
            **self.ref,
            name=self.name,
            kelurahan_name=f"Kel. {self.name}",
            formation="new",
            status=status,
            registered_at=at,
        )

    def sale(
        self,
        commodity: str,
        quantity: str,
        value: int,
        at: datetime,
        on_hand_after: str = "50",
        unit: str = "kg",
    ) -> ev.StockMoved:
        return ev.StockMoved(
            **self.ref,
            movement_id=str(uuid.uuid4()),
            commodity=commodity,
            kind="sale",
            quantity=Decimal(quantity),
            unit=unit,
            unit_price=None,
            value=value,
            on_hand_after=Decimal(on_hand_after),
            occurred_at=at,
        )

    def receipt(self, commodity: str, quantity: str, at: datetime, on_hand_after: str) -> ev.StockMoved:
        return ev.StockMoved(
            **self.ref,
            movement_id=str(uuid.uuid4()),
            commodity=commodity,
            kind="receipt",
            quantity=Decimal(quantity),
            unit="kg",
            unit_price=10000,
            value=None,
            on_hand_after=Decimal(on_hand_after),
            occurred_at=at,
        )

    def stalled(
        self, commodity: str, value: int, at: datetime, days: int = 20, on_hand: str = "10"
    ) -> ev.StockStalled:
        return ev.StockStalled(
            **self.ref,
            commodity=commodity,
            on_hand=Decimal(on_hand),
            unit="kg",
            last_sale_at=None,
            days_since_sale=days,
            value=value,
            detected_at=at,
        )

    def recovered(self, commodity: str, condition: str, at: datetime) -> ev.StockRecovered:
        return ev.StockRecovered(
            **self.ref,
            commodity=commodity,
            condition=condition,
            on_hand=Decimal("0"),
            unit="kg",
            detected_at=at,  # type: ignore[arg-type]
        )

    def low(self, commodity: str, at: datetime) -> ev.StockLow:
        return ev.StockLow(
            **self.ref,
            commodity=commodity,
            on_hand=Decimal("2"),
            unit="kg",
            avg_daily_sales=Decimal("1"),
            days_of_cover=Decimal("2"),
            detected_at=at,
        )

    def stockout(self, commodity: str, at: datetime) -> ev.StockStockout:
        return ev.StockStockout(
            **self.ref, commodity=commodity, unit="tabung", last_sale_at=at, detected_at=at
        )

    def need(self, need_id: str, at: datetime, kind: str = "supply") -> ev.NeedSubmitted:
        return ev.NeedSubmitted(
            **self.ref,
            need_id=need_id,
            kind=kind,
            commodity="gula" if kind == "supply" else None,  # type: ignore[arg-type]
            description="Butuh pasokan",
            submitted_at=at,
        )

    def need_status(
        self, need_id: str, old: str, new: str, submitted: datetime, at: datetime
    ) -> ev.NeedStatusChanged:
        return ev.NeedStatusChanged(
            **self.ref,
            need_id=need_id,
            kind="supply",
            old_status=old,
            new_status=new,  # type: ignore[arg-type]
            submitted_at=submitted,
            changed_at=at,
        )

    def member(self, count: int, at: datetime) -> ev.MemberJoined:
        return ev.MemberJoined(
            **self.ref, member_id=str(uuid.uuid4()), kind="resident", member_count=count, joined_at=at
        )

    def training(self, at: datetime) -> ev.TrainingCompleted:
        return ev.TrainingCompleted(
            **self.ref,
            training_id=str(uuid.uuid4()),
            title="Pembukuan koperasi",
            topic="akuntansi",
            participants=3,
            completed_at=at,
        )

    def price_violation(self, at: datetime) -> ev.PriceCeilingExceeded:
        return ev.PriceCeilingExceeded(
            **self.ref,
            movement_id=str(uuid.uuid4()),
            commodity="beras_medium",
            unit="kg",
            quantity=Decimal("5"),
            unit_price=14500,
            price_ceiling=13500,
            excess=1000,
            occurred_at=at,
        )


def utcnow() -> datetime:
    return clock.now()


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)
