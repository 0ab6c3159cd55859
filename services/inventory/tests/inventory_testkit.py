"""Helpers of the inventory's integration tests: driving the running service and reading its events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from inventory.adapters import repository
from inventory.settings import InventorySettings
from kkmp_shared import clock
from kkmp_shared.directory import KnownCooperative
from kkmp_shared.events.contracts import CooperativeRegistered
from kkmp_shared.events.envelope import CloudEvent
from kkmp_testkit.harness import EventProbe
from kkmp_testkit.tokens import TokenFactory
from kkmp_testkit.wait import eventually

KECAMATAN = ("35.78.01", "35.78.02", "35.78.03")


def inventory_settings(amqp_url: str, data_dir: Path, **overrides: Any) -> InventorySettings:
    """The settings the tests run the inventory app with (demo mode, short retry and relay delays, no
    detection loop), ``overrides`` on top."""
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "demo": True,
        "data_dir": data_dir,
        "detection_interval_s": 0,
        "retry_delays_ms": [200, 500],
        "relay_poll_interval_s": 0.1,
        "log_json": False,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return InventorySettings(**values)


def known_cooperative(
    cooperative_id: str = "c1", kecamatan_code: str = KECAMATAN[0], name: str = "KKMP"
) -> KnownCooperative:
    """A directory row, for the tests of pure parts that take one."""
    return KnownCooperative(
        id=cooperative_id,
        name=name,
        kelurahan_code=f"{kecamatan_code}.1001",
        kecamatan_code=kecamatan_code,
        kelurahan_name=None,
        lat=None,
        lon=None,
        status="operating",
        business_units=[],
        member_count=0,
    )


@dataclass
class Inventory:
    """The running service and the means to drive it."""

    app: FastAPI
    client: httpx.AsyncClient
    probe: EventProbe
    tokens: TokenFactory
    amqp_url: str
    backend: str
    _kelurahan: Iterator[int] = field(default_factory=lambda: iter(range(1001, 9999)))

    def headers(self, role: str = "admin", **claims: Any) -> dict[str, str]:
        return self.tokens.headers(role, **claims)

    def manager(self, cooperative_id: str) -> dict[str, str]:
        return self.headers("coop_manager", cooperative_id=cooperative_id)

    async def register(self, kecamatan_code: str = KECAMATAN[0]) -> str:
        """A new cooperative, announced as the registry would; returns once inventory knows it."""
        cooperative_id = str(uuid.uuid4())
        await self.probe.publish(
            CooperativeRegistered(
                cooperative_id=cooperative_id,
                kelurahan_code=f"{kecamatan_code}.{next(self._kelurahan)}",
                kecamatan_code=kecamatan_code,
                name=f"KKMP {cooperative_id[:8]}",
                formation="new",
                status="operating",
                business_units=["sembako"],
                registered_at=clock.now(),
            ),
            source="/registry",
        )

        async def known() -> bool:
            async with self.app.state.db.session() as session:
                return await repository.directory.get(session, cooperative_id) is not None

        await eventually(known, timeout=15, message=f"cooperative {cooperative_id} in the directory")
        return cooperative_id

    async def move(self, cooperative_id: str, expect: int | None = 201, **movement: Any) -> httpx.Response:
        body = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in movement.items()}
        response = await self.client.post(
            f"/cooperatives/{cooperative_id}/movements", json=body, headers=self.headers()
        )
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    async def batch(self, cooperative_id: str, movements: list[dict[str, Any]], expect: int = 201) -> Any:
        body = [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in m.items()} for m in movements
        ]
        response = await self.client.post(
            f"/cooperatives/{cooperative_id}/movements/batch",
            json={"movements": body},
            headers=self.headers(),
        )
        assert response.status_code == expect, response.text
        return response.json()

    async def stock(self, cooperative_id: str) -> dict[str, dict[str, Any]]:
        response = await self.client.get(f"/cooperatives/{cooperative_id}/stock", headers=self.headers())
        assert response.status_code == 200, response.text
        return {line["commodity"]: line for line in response.json()}

    async def detect(self, **body: Any) -> dict[str, Any]:
        payload = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in body.items()}
        response = await self.client.post("/detections/run", json=payload, headers=self.headers("officer"))
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def events(self, event_type: str, cooperative_id: str) -> list[CloudEvent]:
        return [e for e in self.probe.of_type(event_type) if e.data.get("cooperative_id") == cooperative_id]

    async def settle(self) -> None:
        """Wait until everything committed so far has been published (and so reached the probe)."""
        relay = self.app.state.relay
        await eventually(lambda: _backlog_zero(relay), timeout=15, message="outbox drained")


async def _backlog_zero(relay: Any) -> bool:
    return await relay.backlog() == 0
