"""Cross-service fixtures: the platform as real processes (every service started with uvicorn on
PostgreSQL and one vhost of the real broker), shared by the end-to-end and security tests of a session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from kkmp_testkit.harness import EventProbe
from kkmp_testkit.processes import Platform, started_platform

SERVICES = ("registry", "reporting", "inventory", "sourcing", "notifications", "portal")
PASSWORD = "e2e-password-123"


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with started_platform(SERVICES, tmp_path_factory.mktemp("platform"), prefix="e2e") as plat:
        yield plat


@pytest.fixture
async def probe(platform: Platform) -> AsyncIterator[EventProbe]:
    async with EventProbe(platform.amqp_url) as p:
        yield p


@pytest.fixture(scope="session")
def admin_headers(platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.admin_token()}"}


class World:
    """Creates cooperatives and users through the registry, as an operator would."""

    def __init__(self, platform: Platform, admin: dict[str, str]) -> None:
        self.platform = platform
        self.admin = admin
        self.used: set[str] = set()

    def kelurahan(self, kecamatan_code: str, count: int) -> list[dict[str, str]]:
        rows = httpx.get(
            f"{self.platform.url('registry')}/regions/kelurahan", params={"kecamatan_code": kecamatan_code}
        ).json()
        free = [r for r in rows if r["code"] not in self.used][:count]
        assert len(free) == count, f"not enough free kelurahan in {kecamatan_code}"
        self.used.update(r["code"] for r in free)
        return free

    def cooperative(self, kelurahan: dict[str, str]) -> dict[str, str]:
        response = httpx.post(
            f"{self.platform.url('registry')}/cooperatives",
            headers=self.admin,
            timeout=30,
            json={
                "name": f"KKMP {kelurahan['name']}",
                "kelurahan_code": kelurahan["code"],
                "formation": "new",
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    def user(self, role: str, **fields: object) -> dict[str, str]:
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        response = httpx.post(
            f"{self.platform.url('registry')}/users",
            headers=self.admin,
            timeout=30,
            json={"username": username, "password": PASSWORD, "role": role, **fields},
        )
        assert response.status_code == 201, response.text
        token = self.platform.token(username, PASSWORD)
        return {
            "id": response.json()["id"],
            "username": username,
            "token": token,
            "Authorization": f"Bearer {token}",
        }

    @staticmethod
    def auth(user: dict[str, str]) -> dict[str, str]:
        return {"Authorization": user["Authorization"]}


@pytest.fixture(scope="session")
def world(platform: Platform, admin_headers: dict[str, str]) -> World:
    return World(platform, admin_headers)
