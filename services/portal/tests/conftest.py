"""Fixtures for the portal's tests: the fake services and the portal, each served by uvicorn in a thread
on a free port, and a headless Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# pytest runs with --import-mode=importlib (no test directory on sys.path): make the fake importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from portal_fake_upstream import World, build_fake
from portal_testkit import ThreadedServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class PortalUnderTest:
    url: str
    world: World
    upstream_url: str


@pytest.fixture(scope="session")
def world() -> World:
    return World()


@pytest.fixture(scope="session")
def portal(world: World) -> Iterator[PortalUnderTest]:
    from portal.bootstrap import create_app
    from portal.settings import PortalSettings

    with ThreadedServer(build_fake(world), free_port()) as upstream:
        settings = PortalSettings(
            demo=True,
            cookie_secure=False,
            session_secret="test-session-secret-of-enough-length",
            registry_url=f"{upstream.url}/registry",
            inventory_url=f"{upstream.url}/inventory",
            sourcing_url=f"{upstream.url}/sourcing",
            reporting_url=f"{upstream.url}/reporting",
            notifications_url=f"{upstream.url}/notifications",
            upstream_timeout_s=5,
            log_json=True,
        )
        with ThreadedServer(create_app(settings), free_port()) as server:
            yield PortalUnderTest(server.url, world, upstream.url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an event loop running in this thread while it is open,
    # which would break every asyncio test that runs after it in the same session.
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
