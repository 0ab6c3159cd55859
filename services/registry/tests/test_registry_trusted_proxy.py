"""The login throttle behind a proxy, over real HTTP: the registry runs as `kkmp run` and the image start
it (uvicorn, FORWARDED_ALLOW_IPS from the environment) and is reached from two loopback addresses, one
named as its trusted proxy (the portal in compose) and one not.

Behind the trusted proxy failed logins count per forwarded person, so one person's wrong passwords do
not lock the others out; from any other peer X-Forwarded-For is ignored, so a client cannot escape the
throttle by inventing addresses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kkmp_shared.memory import allocator_env
from kkmp_testkit.ports import free_port
from kkmp_testkit.processes import ServiceProcess

pytestmark = pytest.mark.e2e

PROXY, STRANGER = "127.0.0.2", "127.0.0.3"  # Linux answers the whole 127/8 on loopback
PER_ADDRESS = 3
ADMIN_PASSWORD = "proxy-test-admin-password"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work: Path = tmp_path_factory.mktemp("registry-proxy")
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(
        {
            "KKMP_DEMO": "1",
            "KKMP_DATA_DIR": str(work),
            "KKMP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BROKER_ENABLED": "false",  # the throttle is HTTP and database only
            "FORWARDED_ALLOW_IPS": PROXY,
            "LOGIN_MAX_FAILURES_PER_IP": str(PER_ADDRESS),
            "LOG_LEVEL": "WARNING",
        }
    )
    service = ServiceProcess("registry", free_port(), allocator_env(env), work / "registry.log")
    service.start()
    try:
        service.wait_ready(timeout=60)
        yield service
    finally:
        service.stop()


def login(registry: ServiceProcess, source: str, username: str, password: str, forwarded: str | None) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=registry.url, transport=transport, timeout=10) as client:
        response = client.post(
            "/auth/token",
            data={"username": username, "password": password},
            headers={"X-Forwarded-For": forwarded} if forwarded else None,
        )
    if response.status_code == 429:
        assert response.json()["error"]["code"] == "rate_limited"
    return response.status_code


def test_behind_the_trusted_proxy_failures_count_per_forwarded_person(registry: ServiceProcess) -> None:
    person, neighbour = "203.0.113.7", "203.0.113.8"
    for i in range(PER_ADDRESS):
        assert login(registry, PROXY, f"tebak-{i}", "salah-sekali", person) == 401
    # The person who kept guessing is throttled, whatever the username...
    assert login(registry, PROXY, "admin", ADMIN_PASSWORD, person) == 429
    # ...while others behind the same proxy still log in and are counted apart.
    assert login(registry, PROXY, "admin", ADMIN_PASSWORD, neighbour) == 200
    assert login(registry, PROXY, "tebak-lain", "salah-sekali", neighbour) == 401
    # The proxy's own address collected none of it.
    assert login(registry, PROXY, "admin", ADMIN_PASSWORD, None) == 200


def test_from_an_untrusted_peer_the_forwarded_header_is_ignored(registry: ServiceProcess) -> None:
    for i in range(PER_ADDRESS):
        assert login(registry, STRANGER, f"semprot-{i}", "salah-sekali", f"198.51.100.{i + 1}") == 401
    # Every failure was counted against the peer itself: a fresh invented address does not help.
    assert login(registry, STRANGER, "admin", ADMIN_PASSWORD, "198.51.100.99") == 429
    assert login(registry, STRANGER, "admin", ADMIN_PASSWORD, None) == 429
    # Nor did the invented addresses get throttled in the people's place: one of them, forwarded by the
    # trusted proxy, is not locked out.
    assert login(registry, PROXY, "admin", ADMIN_PASSWORD, "198.51.100.1") == 200
