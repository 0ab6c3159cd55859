"""Sourcing's test kit: a handle on the running service and helpers to give each test its own data.

Tests share one running service per database, so each works on its own data: fresh cooperatives and
fresh commodity codes (clones of the real catalogue rows, same unit and ceiling) from the helpers here.
"""

from __future__ import annotations

import csv
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from kkmp_shared import clock, refdata
from kkmp_shared.events.contracts import CooperativeRegistered, EventData
from kkmp_shared.events.envelope import CloudEvent
from kkmp_testkit.harness import EventProbe
from kkmp_testkit.tokens import TokenFactory
from kkmp_testkit.wait import eventually
from sourcing.adapters import orm
from sourcing.service_layer.common import WIB
from sqlalchemy import select

CLONES_PER_COMMODITY = 60
_clone_numbers: dict[str, itertools.count[int]] = {}


def kelurahan_rows() -> dict[str, dict[str, str]]:
    with refdata.path(refdata.COORDS).open(newline="") as f:
        return {r["code"]: r for r in csv.DictReader(f) if r["level"] == "kelurahan"}


KELURAHAN = kelurahan_rows()


def write_test_commodities(path: Path) -> Path:
    """The real catalogue plus numbered clones of each row (`beras_medium_t3`), so tests never share one."""
    with refdata.path(refdata.COMMODITIES).open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            for n in range(1, CLONES_PER_COMMODITY + 1):
                writer.writerow({**row, "code": f"{row['code']}_t{n}"})
    return path


@dataclass
class Service:
    """One running sourcing service and what a test needs to drive it."""

    app: FastAPI
    client: httpx.AsyncClient
    probe: EventProbe
    tokens: TokenFactory
    backend: str
    _coops: dict[str, CooperativeRegistered] = field(default_factory=dict)

    def headers(self, role: str, **claims: Any) -> dict[str, str]:
        return self.tokens.headers(role, **claims)

    @property
    def admin(self) -> dict[str, str]:
        return self.headers("admin", sub="admin-1", username="admin")

    @property
    def officer(self) -> dict[str, str]:
        return self.headers("officer", sub="officer-1", username="petugas")

    def manager(self, cooperative_id: str) -> dict[str, str]:
        return self.headers("coop_manager", cooperative_id=cooperative_id, sub=f"mgr-{cooperative_id[:8]}")

    def supplier(self, supplier_id: str) -> dict[str, str]:
        return self.headers("supplier", supplier_id=supplier_id, sub=f"sup-{supplier_id[:8]}")

    def commodity(self, template: str) -> str:
        """A commodity code no other test uses, behaving like `template` (unit, HET, stall days)."""
        number = next(_clone_numbers.setdefault(template, itertools.count(1)))
        assert number <= CLONES_PER_COMMODITY, f"raise CLONES_PER_COMMODITY: {template} used {number} times"
        return f"{template}_t{number}"

    async def publish(self, data: EventData, event_id: str | None = None) -> CloudEvent:
        return await self.probe.publish(data, source="/test", event_id=event_id)

    async def cooperative(self, kelurahan_code: str, status: str = "operating") -> CooperativeRegistered:
        """A cooperative announced as the registry would, once sourcing's directory knows it."""
        kel = KELURAHAN[kelurahan_code]
        event = CooperativeRegistered(
            cooperative_id=str(uuid.uuid4()),
            kelurahan_code=kelurahan_code,
            kecamatan_code=kel["parent_code"],
            name=f"KKMP {kel['name']}",
            kelurahan_name=kel["name"],
            formation="new",
            status=status,
            business_units=["sembako"],
            lat=float(kel["lat"]),
            lon=float(kel["lon"]),
            registered_at=clock.now(),
        )
        await self.publish(event)

        async def known() -> bool:
            async with self.app.state.db.session() as session:
                row = await session.execute(
                    select(orm.cooperatives.c.id).where(orm.cooperatives.c.id == event.cooperative_id)
                )
                return row.first() is not None

        await eventually(known, timeout=15)
        self._coops[event.cooperative_id] = event
        return event

    async def supplier_with(self, name: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": name or f"Pemasok {uuid.uuid4().hex[:8]}", **fields}
        response = await self.client.post("/suppliers", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()

    async def need(
        self, cooperative_id: str, headers: dict[str, str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"cooperative_id": cooperative_id, "kind": "supply", "description": "Stok habis", **fields}
        response = await self.client.post("/needs", json=body, headers=headers or self.admin)
        assert response.status_code == 201, response.text
        return response.json()

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.app.state.db.session() as session:
            return list((await session.execute(select(table).where(*where))).all())


def q(value: Any) -> Decimal:
    """A JSON quantity (number or string) as an exact decimal."""
    return Decimal(str(value))


def in_days(days: int) -> str:
    """A date `days` from today in Surabaya (WIB), as the API takes it."""
    return (clock.today(WIB) + timedelta(days=days)).isoformat()
