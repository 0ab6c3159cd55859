"""Token signing across registry replicas and a rotation, with real processes on one PostgreSQL database:
two registries started outside demo mode from one key file (the secret), and the inventory verifying
tokens against replica A's JWKS. A token of either replica verifies everywhere; `kkmp keys rotate`
makes both replicas sign with the new key at once; old tokens keep verifying until the old key
retires, then nowhere.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from kkmp_shared.memory import allocator_env
from kkmp_testkit.ports import free_port
from kkmp_testkit.postgres import create_database, drop_database, ensure_postgres
from kkmp_testkit.processes import ServiceProcess
from kkmp_testkit.rabbit import (
    create_vhost,
    create_vhost_user,
    delete_user,
    delete_vhost,
    ensure_broker,
    vhost_url,
    with_credentials,
)
from kkmp_testkit.wait import wait_until
from registry.adapters.keys import SigningKey

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KKMP = ROOT / ".venv" / "bin" / "kkmp"
ADMIN_PASSWORD = "replicas-admin-password"
RETIRE_AFTER_S = 15


@dataclass
class Replicas:
    a: ServiceProcess
    b: ServiceProcess
    inventory: ServiceProcess
    registry_database: str
    first_kid: str


def process(name: str, env: dict[str, str], work: Path, label: str) -> ServiceProcess:
    base = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    full = allocator_env({**base, "LOG_LEVEL": "INFO", "KKMP_DATA_DIR": str(work / label), **env})
    return ServiceProcess(name, free_port(), full, work / f"{label}.log")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    work = tmp_path_factory.mktemp("key-rotation")
    ensure_postgres()
    registry_db = create_database("replicas_registry")
    inventory_db = create_database("replicas_inventory")
    vhost = f"keys-{uuid.uuid4().hex[:8]}"
    create_vhost(vhost)
    amqp = vhost_url(ensure_broker(), vhost)
    # Outside demo mode a service refuses the broker's guest password: the registries get a user of their own.
    user, password = create_vhost_user(vhost)
    key = SigningKey.generate()
    key_file = work / "signing-key.pem"
    key_file.write_text(key.pem())
    key_file.chmod(0o600)
    registry_env = {
        "KKMP_DEMO": "0",
        "SIGNING_KEY_FILE": str(key_file),
        "KKMP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REGISTRY_DATABASE_URL": registry_db,
        "AMQP_URL": with_credentials(amqp, user, password),
    }
    a = process("registry", registry_env, work, "registry-a")
    b = process("registry", registry_env, work, "registry-b")
    inventory = process(
        "inventory",
        {
            "KKMP_DEMO": "1",
            "INVENTORY_DATABASE_URL": inventory_db,
            "AMQP_URL": amqp,
            "REGISTRY_URL": a.url,
            "DETECTION_INTERVAL_S": "0",
        },
        work,
        "inventory",
    )
    started = [a, b, inventory]
    try:
        for service in started:  # at once: two registries migrate and add the key together
            service.start()
        for service in started:
            service.wait_ready(90)
        yield Replicas(a, b, inventory, registry_db, key.kid)
    except Exception:
        for service in started:
            print(f"===== {service.log_path.name}\n{service.log_tail()}")
        raise
    finally:
        for service in started:
            service.stop()
        drop_database(registry_db)
        drop_database(inventory_db)
        delete_vhost(vhost)
        delete_user(user)


def login(service: ServiceProcess) -> str:
    response = httpx.post(
        f"{service.url}/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def status(service: ServiceProcess, token: str) -> int:
    # A route each service guards with a token: the registry's own account, the inventory's catalogue.
    path = "/users/me" if service.name == "registry" else "/commodities"
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{service.url}{path}", headers=headers, timeout=30).status_code


def kkmp_keys(*args: str, database: str) -> str:
    result = subprocess.run(
        [str(KKMP), "keys", *args],
        env={**os.environ, "REGISTRY_DATABASE_URL": database},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_tokens_verify_across_replicas_and_a_rotation_until_the_old_key_retires(replicas: Replicas) -> None:
    a, b, inventory = replicas.a, replicas.b, replicas.inventory
    old_a, old_b = login(a), login(b)
    assert kid_of(old_a) == kid_of(old_b) == replicas.first_kid  # the key of the secret, added once
    for service in (a, b, inventory):
        assert status(service, old_a) == 200 and status(service, old_b) == 200
    assert "signs" in kkmp_keys("list", database=replicas.registry_database)

    rotated = kkmp_keys(
        "rotate", "--retire-after", str(RETIRE_AFTER_S), "--leeway", "0", database=replicas.registry_database
    )
    rotated_at = time.monotonic()
    new_kid = rotated.split()[2]
    assert new_kid != replicas.first_kid and f"{replicas.first_kid} verifies" in rotated
    new_a, new_b = login(a), login(b)
    assert kid_of(new_a) == kid_of(new_b) == new_kid  # both replicas sign with the new key at once
    for service in (a, b):
        published = httpx.get(f"{service.url}/.well-known/jwks.json", timeout=10).json()["keys"]
        assert [k["kid"] for k in published] == [new_kid, replicas.first_kid]
        assert "exp" not in published[0] and published[1]["exp"] > time.time()
    for service in (a, b, inventory):
        # The inventory learns the new key when a token names it (a JWKS fetch, at most every 10 s).
        wait_until(
            lambda s=service: status(s, new_a) == 200, timeout=20, message=f"new token at {service.name}"
        )
        assert status(service, new_b) == 200
        assert status(service, old_a) == 200 and status(service, old_b) == 200
    assert time.monotonic() - rotated_at < RETIRE_AFTER_S, "the checks before retirement took too long"

    for service in (a, b, inventory):
        wait_until(
            lambda s=service: status(s, old_a) == 401,
            timeout=RETIRE_AFTER_S + 15,
            message=f"old token refused at {service.name}",
        )
    assert time.monotonic() - rotated_at >= RETIRE_AFTER_S - 1  # not before the retirement
    for service in (a, b, inventory):
        assert status(service, old_b) == 401 and status(service, new_a) == 200
    assert [k["kid"] for k in httpx.get(f"{a.url}/.well-known/jwks.json").json()["keys"]] == [new_kid]
    assert f"deleted {replicas.first_kid}" in kkmp_keys("prune", database=replicas.registry_database)
    assert replicas.first_kid not in kkmp_keys("list", database=replicas.registry_database)
