"""The deployment files, checked for real: the compose file against the Compose specification's JSON
schema (tests/schemas), each service's settings built from its compose environment (the registry's
signing key read through the secret compose mounts), the proxies and published ports, pinned images
(deploy/postgres-init.sql runs for real in test_deploy_postgres.py).

The compose files are interpolated here as `docker compose` does (`${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `$$`), from a test environment of strong secrets.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from inventory.settings import InventorySettings
from kkmp_shared.settings import ServiceSettings
from notifications.settings import NotificationsSettings
from portal.settings import PortalSettings
from pydantic import ValidationError
from registry.adapters.keys import SigningKey, starting_key
from registry.settings import RegistrySettings
from reporting.settings import ReportingSettings
from sourcing.settings import SourcingSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DEBUG_OVERRIDE = ROOT / "deploy" / "compose.debug.yml"
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())

SERVICES: dict[str, tuple[int, type[ServiceSettings]]] = {
    "registry": (8001, RegistrySettings),
    "inventory": (8002, InventorySettings),
    "sourcing": (8003, SourcingSettings),
    "reporting": (8004, ReportingSettings),
    "notifications": (8005, NotificationsSettings),
    "portal": (8000, PortalSettings),
}
WITH_DATABASE = ("registry", "inventory", "sourcing", "reporting", "notifications")

# What an operator puts in .env: a distinct strong secret per variable, so a value found in a service's
# environment tells whose it is.
SECRETS = {
    "RABBITMQ_PASSWORD": "broker-Xq7v2LmP9sT4wZ8k",
    "POSTGRES_PASSWORD": "superuser-R3nB8yKc1VfQ6dHj",
    "REGISTRY_DB_PASSWORD": "registry-db-M2pW9xLq4ZtC7vNe",
    "INVENTORY_DB_PASSWORD": "inventory-db-H8kD3sRf6YbJ1mQu",
    "SOURCING_DB_PASSWORD": "sourcing-db-T5nG2wVc9LxP4hKa",
    "REPORTING_DB_PASSWORD": "reporting-db-B7qZ1mFt8RsW3jYe",
    "NOTIFICATIONS_DB_PASSWORD": "notifications-db-C4vL9pXk2NdH6gTb",
    "KKMP_ADMIN_PASSWORD": "admin-Jw6tQ3zR8mKc1LpV",
    "SERVICE_CLIENT_SECRET": "service-client-F9hS2dNx7WqB4vTz",
    "PORTAL_SESSION_SECRET": "portal-session-secret-K1mZ8rY3qW6tP9vC2xL5",
}
# The same environment with the demo defaults in place of the secrets.
DEMO_SECRETS = {
    **SECRETS,
    "RABBITMQ_PASSWORD": "guest",
    "KKMP_ADMIN_PASSWORD": "kkmp-demo-admin",
    "SERVICE_CLIENT_SECRET": "kkmp-demo-service-secret",
    "PORTAL_SESSION_SECRET": "kkmp-demo-session-secret",
}


class MissingVariable(Exception):
    pass


_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?", re.S)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in a loaded compose file (values, not keys)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        assert braced, f"not a compose variable: {match[0]}"
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        given = env.get(name)
        if op == ":-":
            return given if given else arg
        if op == "-":
            return given if given is not None else arg
        if op in (":?", "?") and (given is None or (op == ":?" and not given)):
            raise MissingVariable(f"{name}: {arg}")
        if op == ":+":
            return arg if given else ""
        if op == "+":
            return arg if given is not None else ""
        return given or ""

    return _VARIABLE.sub(replace, value)


def load(path: Path = COMPOSE, env: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(path.read_text())
    return raw if env is None else interpolate(raw, env)


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """An empty process environment: settings see only what a test sets (as in the container)."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    yield monkeypatch


def settings_from(monkeypatch: pytest.MonkeyPatch, name: str, environment: dict[str, Any]) -> ServiceSettings:
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    return SERVICES[name][1]()


def mounted_file(compose: dict[str, Any], name: str, container_path: Path) -> Path:
    """The file on the host that compose puts at `container_path` in service `name`'s container: one of
    its secrets (mounted at /run/secrets/<secret>, or the long syntax's `target`)."""
    for entry in compose["services"][name].get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        if Path("/run/secrets") / target == container_path:
            return (ROOT / compose["secrets"][source]["file"]).resolve()
    raise AssertionError(f"nothing is mounted at {container_path} in the {name} container")


@pytest.fixture
def signing_key(tmp_path: Path) -> tuple[SigningKey, dict[str, str]]:
    """A key made as the README says (openssl), and the compose environment that names its file."""
    path = tmp_path / "registry-signing-key.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)],
        check=True,
        capture_output=True,
    )
    return SigningKey.from_pem(path.read_bytes()), {**SECRETS, "REGISTRY_SIGNING_KEY": str(path)}


def registry_start_key(compose: dict[str, Any], settings: RegistrySettings, data_dir: Path) -> SigningKey:
    """The key the registry would start with (`registry.bootstrap`), its file read where compose mounts it."""
    path = settings.signing_key_path
    return starting_key(
        pem=settings.signing_key,
        path=None if path is None else mounted_file(compose, "registry", path),
        demo=settings.demo,
        data_dir=data_dir,
    )


# --- the Compose specification ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE, DEBUG_OVERRIDE], ids=["docker-compose.yml", "compose.debug.yml"])
def test_compose_files_validate_against_the_compose_specification(path: Path) -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    for document in (load(path), load(path, SECRETS)):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, errors


def test_the_schema_refuses_what_compose_would_refuse() -> None:
    """The validator is not vacuous: the mistakes a hand-edited compose file makes are caught."""
    validator = jsonschema.Draft7Validator(SCHEMA)
    good = load(COMPOSE, SECRETS)
    assert validator.is_valid(good)
    for mistake in (
        lambda d: d["services"]["registry"]["healthcheck"].update(tset=["CMD", "true"]),  # misspelt key
        lambda d: d["services"]["caddy"].update(ports="443:443"),  # ports is a list
        lambda d: d["services"]["registry"]["depends_on"]["postgres"].update(condition="healthy"),
        lambda d: d.update(servcies={}),  # unknown top-level key
    ):
        broken = copy.deepcopy(good)
        mistake(broken)
        assert not validator.is_valid(broken)


def test_every_required_secret_stops_the_start_when_unset() -> None:
    """`${VAR:?}`: compose refuses to start without each secret (no weak default is filled in)."""
    for name in SECRETS:
        env = {key: value for key, value in SECRETS.items() if key != name}
        with pytest.raises(MissingVariable, match=name):
            load(COMPOSE, env)
        with pytest.raises(MissingVariable, match=name):
            load(COMPOSE, {**env, name: ""})


# --- settings from the compose environment ------------------------------------------------------------


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_loads_its_settings_from_its_compose_environment(
    name: str, clean_environ: pytest.MonkeyPatch
) -> None:
    environment = load(COMPOSE, SECRETS)["services"][name]["environment"]
    settings = settings_from(clean_environ, name, environment)
    port, _ = SERVICES[name]
    assert settings.service_name == name and settings.port == port
    assert settings.demo is False
    assert settings.registry_url == "http://registry:8001"
    if name == "portal":
        assert isinstance(settings, PortalSettings)
        assert settings.broker_enabled is False
        assert settings.session_secret == SECRETS["PORTAL_SESSION_SECRET"]
        assert settings.cookie_secure is True  # served over HTTPS by Caddy
        assert (settings.inventory_url, settings.sourcing_url) == (
            "http://inventory:8002",
            "http://sourcing:8003",
        )
        assert (settings.reporting_url, settings.notifications_url) == (
            "http://reporting:8004",
            "http://notifications:8005",
        )
    else:
        assert settings.amqp_url == f"amqp://kkmp:{SECRETS['RABBITMQ_PASSWORD']}@rabbitmq:5672/"
        password = SECRETS[f"{name.upper()}_DB_PASSWORD"]
        assert settings.database_url == f"postgresql+asyncpg://{name}:{password}@postgres:5432/{name}"
        # One replica each: every service migrates its database at start (under the advisory lock).
        assert settings.migrate_on_start is True
        assert (settings.database_pooler, settings.database_pool_size) == ("none", 10)
    if name == "registry":
        assert isinstance(settings, RegistrySettings)
        assert settings.effective_admin_password() == SECRETS["KKMP_ADMIN_PASSWORD"]
        assert settings.service_clients == f"kkmp-service:{SECRETS['SERVICE_CLIENT_SECRET']}"
    if name == "notifications":
        assert isinstance(settings, NotificationsSettings)
        assert settings.portal_url == "https://localhost"


def test_the_registry_starts_with_the_signing_key_compose_mounts(
    signing_key: tuple[SigningKey, dict[str, str]], clean_environ: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Outside demo mode the registry refuses to start without a key: compose names the file it mounts
    from the operator's key, and the registry starts with exactly that key."""
    key, env = signing_key
    compose = load(COMPOSE, env)
    settings = settings_from(clean_environ, "registry", compose["services"]["registry"]["environment"])
    assert isinstance(settings, RegistrySettings) and settings.demo is False
    assert mounted_file(compose, "registry", settings.key_path) == Path(env["REGISTRY_SIGNING_KEY"])
    assert registry_start_key(compose, settings, tmp_path / "data").kid == key.kid
    # Nothing was generated in the data directory: the key is the operator's.
    assert not (tmp_path / "data").exists()


def test_without_the_signing_key_in_its_environment_the_registry_would_refuse_to_start(
    signing_key: tuple[SigningKey, dict[str, str]], clean_environ: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The check above can fail: the same compose environment without SIGNING_KEY_FILE is refused."""
    _, env = signing_key
    compose = load(COMPOSE, env)
    environment = dict(compose["services"]["registry"]["environment"])
    del environment["SIGNING_KEY_FILE"]
    settings = settings_from(clean_environ, "registry", environment)
    assert isinstance(settings, RegistrySettings)
    with pytest.raises(ValueError, match="signing key must be given outside demo mode"):
        registry_start_key(compose, settings, tmp_path / "data")


def test_the_signing_key_is_a_secret_of_the_registry_alone_kept_out_of_git_and_the_image() -> None:
    compose = load(COMPOSE, SECRETS)
    mounted = {
        name: svc.get("secrets", []) for name, svc in compose["services"].items() if svc.get("secrets")
    }
    assert mounted == {"registry": ["registry_signing_key"]}
    # By default the operator's key is secrets/registry-signing-key.pem, which git and docker build ignore.
    assert mounted_file(compose, "registry", Path("/run/secrets/registry_signing_key")) == (
        ROOT / "secrets" / "registry-signing-key.pem"
    )
    assert "secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "secrets" in (ROOT / ".dockerignore").read_text().splitlines()


@pytest.mark.parametrize("name", list(SERVICES))
def test_no_service_holds_another_services_credentials(name: str) -> None:
    environment = load(COMPOSE, SECRETS)["services"][name]["environment"]
    own = {
        "registry": {
            "RABBITMQ_PASSWORD",
            "REGISTRY_DB_PASSWORD",
            "KKMP_ADMIN_PASSWORD",
            "SERVICE_CLIENT_SECRET",
        },
        "portal": {"PORTAL_SESSION_SECRET"},
    }.get(name, {"RABBITMQ_PASSWORD", f"{name.upper()}_DB_PASSWORD"})
    text = " ".join(str(value) for value in environment.values())
    held = {secret for secret, value in SECRETS.items() if value in text}
    assert held == own


@pytest.mark.parametrize("name", list(SERVICES))
def test_the_compose_environment_with_demo_secrets_is_refused_outside_demo_mode(
    name: str, clean_environ: pytest.MonkeyPatch
) -> None:
    environment = load(COMPOSE, DEMO_SECRETS)["services"][name]["environment"]
    with pytest.raises(ValidationError, match=r"demo default|default password|PORTAL_SESSION_SECRET"):
        settings_from(clean_environ, name, environment)
    # The same environment in demo mode starts: it was the demo secrets that were refused.
    assert settings_from(clean_environ, name, {**environment, "KKMP_DEMO": "1"}).demo is True


def test_the_default_broker_password_alone_is_refused(clean_environ: pytest.MonkeyPatch) -> None:
    environment = load(COMPOSE, {**SECRETS, "RABBITMQ_PASSWORD": "guest"})["services"]["inventory"]
    with pytest.raises(ValidationError, match="AMQP_URL still has RabbitMQ's default password"):
        settings_from(clean_environ, "inventory", environment["environment"])


# --- topology: proxies, published ports, images -------------------------------------------------------


def test_every_service_runs_from_the_one_image_with_readiness_and_healthy_dependencies() -> None:
    services = load(COMPOSE, SECRETS)["services"]
    assert set(services) == {*SERVICES, "rabbitmq", "postgres", "caddy"}
    for name, (port, _) in SERVICES.items():
        svc = services[name]
        assert svc["build"] == "." and svc["image"] == "kkmp/platform:0.1.0", name
        assert svc["environment"]["SERVICE"] == name
        assert svc["environment"]["PORT"] == str(port)
        assert "/health/ready" in " ".join(svc["healthcheck"]["test"])
        conditions = {dep: spec["condition"] for dep, spec in svc["depends_on"].items()}
        assert conditions and set(conditions.values()) == {"service_healthy"}, (name, conditions)
    for name in ("inventory", "sourcing", "reporting", "notifications"):
        assert set(services[name]["depends_on"]) == {"rabbitmq", "postgres", "registry"}
    assert set(services["caddy"]["depends_on"]) == {"portal"}


def test_only_caddy_publishes_ports_and_the_debug_override_publishes_on_loopback_only() -> None:
    services = load(COMPOSE, SECRETS)["services"]
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert published == {"caddy": ["80:80", "443:443", "443:443/udp"]}
    debug = load(DEBUG_OVERRIDE)["services"]
    assert debug["rabbitmq"]["ports"] == ["127.0.0.1:15672:15672"]
    for name, (port, _) in SERVICES.items():
        assert debug[name]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert all(p.startswith("127.0.0.1:") for svc in debug.values() for p in svc["ports"])


def test_caddy_terminates_tls_in_front_of_the_portal() -> None:
    caddy = load(COMPOSE, SECRETS)["services"]["caddy"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert caddy["environment"] == {"KKMP_DOMAIN": "localhost", "KKMP_TLS": "internal"}
    domain = load(COMPOSE, {**SECRETS, "KKMP_DOMAIN": "kkmp.example.go.id", "KKMP_TLS": "ops@example.go.id"})
    assert domain["services"]["caddy"]["environment"]["KKMP_DOMAIN"] == "kkmp.example.go.id"
    assert domain["services"]["notifications"]["environment"]["PORTAL_URL"] == "https://kkmp.example.go.id"
    directives = [
        line.strip()
        for line in (ROOT / "deploy" / "Caddyfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert directives == [
        "{$KKMP_DOMAIN:localhost} {",
        "tls {$KKMP_TLS:internal}",
        "encode zstd gzip",
        # The portal's Prometheus metrics are not served to the outside.
        "@metrics path /metrics /metrics/*",
        "respond @metrics 404",
        "reverse_proxy portal:8000",
        "}",
    ]


def test_each_service_trusts_forwarded_addresses_from_its_own_proxy_only() -> None:
    compose = load(COMPOSE, SECRETS)
    services = compose["services"]
    ipam = compose["networks"]["default"]["ipam"]["config"][0]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    caddy = ipaddress.ip_address(services["caddy"]["networks"]["default"]["ipv4_address"])
    portal = ipaddress.ip_address(services["portal"]["networks"]["default"]["ipv4_address"])
    # Fixed addresses in the subnet, outside the range docker hands out to the other containers.
    for address in (caddy, portal):
        assert address in subnet and address not in dynamic
    trusted = {name: services[name]["environment"]["FORWARDED_ALLOW_IPS"] for name in SERVICES}
    assert trusted == {
        "portal": str(caddy),
        "registry": str(portal),
        **{name: "127.0.0.1" for name in ("inventory", "sourcing", "reporting", "notifications")},
    }


def test_every_image_is_pinned_by_exact_version() -> None:
    images = {name: svc["image"] for name, svc in load(COMPOSE, SECRETS)["services"].items()}
    exact = re.compile(r"(?P<repo>[a-z0-9./-]+):(?P<major>\d+)\.\d+(\.\d+)?(-[a-z0-9.]+)?")
    versions = {}
    for name, image in images.items():
        match = exact.fullmatch(image)
        assert match, f"{name}: {image} is not pinned by an exact version"
        versions[match["repo"]] = int(match["major"])
    # Deployed: supported releases (the tests run Debian's RabbitMQ 3.10 and PostgreSQL 15; README).
    assert versions["rabbitmq"] == 4 and "management" in images["rabbitmq"]
    assert versions["postgres"] in (16, 17)
    assert versions["caddy"] == 2


def test_dockerfile_runs_the_chosen_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "${SERVICE}.bootstrap:create_app --factory" in dockerfile
    for name in SERVICES:
        assert (ROOT / "services" / name / name / "bootstrap.py").exists(), name


def test_the_runtime_image_installs_no_test_kit_and_no_dev_tools() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN uv sync --frozen --no-dev && rm -rf testkit" in dockerfile
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    runtime = {line.split("==")[0].strip() for line in exported.splitlines() if line and line[0].isalnum()}
    runtime |= {
        line.removeprefix("-e ./").split("/")[-1] for line in exported.splitlines() if line.startswith("-e ")
    }
    assert {"registry", "fastapi", "aio-pika"} <= runtime, sorted(runtime)
    assert not {"testkit", "kkmp-testkit", "pytest", "testcontainers", "schemathesis"} & runtime
