"""The deployment files: compose topology with healthchecks, one image for every service."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    "registry": 8001,
    "inventory": 8002,
    "sourcing": 8003,
    "reporting": 8004,
    "notifications": 8005,
    "portal": 8000,
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_is_in_compose_with_healthcheck_and_healthy_dependencies() -> None:
    services = compose()["services"]
    assert {"rabbitmq", "postgres"} <= set(services)
    assert (
        services["rabbitmq"]["image"].startswith("rabbitmq:")
        and "management" in services["rabbitmq"]["image"]
    )
    for name, port in SERVICES.items():
        svc = services[name]
        assert svc["environment"]["SERVICE"] == name
        assert svc["environment"]["PORT"] == str(port)
        assert "/health/ready" in " ".join(svc["healthcheck"]["test"])
        conditions = {dep: spec["condition"] for dep, spec in svc["depends_on"].items()}
        assert conditions and set(conditions.values()) == {"service_healthy"}, (name, conditions)
        assert svc["build"] == ".", "one Dockerfile shared by the services"
    for name in ("inventory", "sourcing", "reporting", "notifications"):
        assert {"rabbitmq", "postgres", "registry"} <= set(services[name]["depends_on"])
        assert services[name]["environment"]["DATABASE_URL"].endswith(f"/{name}")


def test_dockerfile_runs_the_chosen_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "${SERVICE}.bootstrap:create_app --factory" in dockerfile
    assert "uv sync --all-packages --frozen --no-dev" in dockerfile
    for name in SERVICES:
        assert (ROOT / "services" / name / name / "bootstrap.py").exists(), name


def test_docker_compose_config_where_the_plugin_exists() -> None:
    """`docker compose config` validates the file where the compose plugin is installed; without the
    plugin, the structural checks above are the proof and this checks the plugin's absence is real."""
    docker = shutil.which("docker")
    has_plugin = (
        bool(docker) and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if not has_plugin:
        assert (
            docker is None
            or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0
        )
        return
    env = {
        **os.environ,
        "SERVICE_CLIENT_SECRET": "x" * 32,
        "KKMP_ADMIN_PASSWORD": "y" * 16,
        "PORTAL_SESSION_SECRET": "z" * 32,
    }
    result = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
