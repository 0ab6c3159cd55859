"""Shared helpers of the registry's tests: the running registry as tests see it, and its settings.

(A module of its own, not conftest.py, so test modules can import it by a name no other suite uses.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from kkmp_shared import refdata
from kkmp_testkit.harness import EventProbe
from kkmp_testkit.tokens import TokenFactory
from registry.domain.rules import load_regions
from registry.settings import RegistrySettings

DATA = refdata.directory()
ADMIN_PASSWORD = "admin-pass-for-tests"
SERVICE_CLIENT = ("kkmp-test", "service-secret-for-tests")
# Kecamatan whose cooperatives only the tests that name them create (they count what is there).
RESERVED_KECAMATAN = frozenset(
    {"35.78.03", "35.78.05", "35.78.06", "35.78.07", "35.78.08", "35.78.09", "35.78.10", "35.78.11",
     "35.78.20", "35.78.21"}
)  # fmt: skip
KECAMATAN, KELURAHAN = load_regions(DATA / "surabaya_kelurahan.csv", DATA / "surabaya_coords.csv")


class RegistryTestSettings(RegistrySettings):
    """The registry's settings with the database given directly instead of through the environment."""

    test_database_url: str = ""

    def resolve_database_url(self, given: str | None) -> str:
        return given or self.test_database_url


@dataclass
class Registry:
    """A running registry and what tests need around it."""

    app: FastAPI
    client: httpx.AsyncClient
    probe: EventProbe
    tokens: TokenFactory
    amqp_url: str
    database: str
    data_dir: Path
    free_kelurahan: list[str] = field(default_factory=list)
    extra_clients: list[httpx.AsyncClient] = field(default_factory=list)

    def headers(self, role: str, **claims: Any) -> dict[str, str]:
        """A bearer token minted by the test's own key (accepted through `create_app(key_source=)`)."""
        return self.tokens.headers(role, **claims)

    @property
    def admin(self) -> dict[str, str]:
        return self.headers("admin", sub=str(uuid.uuid4()), username="test-admin")

    def manager(self, cooperative_id: str) -> dict[str, str]:
        return self.headers("coop_manager", cooperative_id=cooperative_id)

    def officer(self, *kecamatan_codes: str) -> dict[str, str]:
        return self.headers("officer", kecamatan_codes=list(kecamatan_codes))

    def take_kelurahan(self, kecamatan_code: str | None = None) -> str:
        """A kelurahan no other test of this app has used (so a registration cannot collide).

        Tests that count what is in a kecamatan name it (and it is in RESERVED_KECAMATAN); the others
        get a kelurahan elsewhere, so they never disturb those counts."""
        for code in self.free_kelurahan:
            kecamatan = code.rsplit(".", 1)[0]
            wanted = kecamatan == kecamatan_code if kecamatan_code else kecamatan not in RESERVED_KECAMATAN
            if wanted:
                self.free_kelurahan.remove(code)
                return code
        raise AssertionError(f"no free kelurahan left in {kecamatan_code or 'the city'}")

    async def create_cooperative(self, kecamatan_code: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {
            "name": f"KKMP {uuid.uuid4().hex[:6]}",
            "kelurahan_code": self.take_kelurahan(kecamatan_code),
            "formation": "new",
            **fields,
        }
        response = await self.client.post("/cooperatives", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def login(
        self, username: str, password: str, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        return await (client or self.client).post(
            "/auth/token", data={"grant_type": "password", "username": username, "password": password}
        )

    async def bearer(self, username: str, password: str) -> dict[str, str]:
        response = await self.login(username, password)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def client_from(self, ip: str) -> httpx.AsyncClient:
        """A client whose requests come from another address (the login throttle counts per address)."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30)
        self.extra_clients.append(client)
        return client
