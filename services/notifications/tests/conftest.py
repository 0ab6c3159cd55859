"""Fixtures of the notifications tests: the real broker, PostgreSQL and SQLite, a real SMTP server
(aiosmtpd) and a real local HTTP receiver for webhooks.

One running service per module and database (starting one costs a few seconds on 2 cores), in a
vhost of its own; tests share it and keep apart by using fresh ids for their cooperatives and users.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from kkmp_testkit.harness import EventProbe, running_app, wait_ready
from kkmp_testkit.ports import free_port
from kkmp_testkit.postgres import acreate_database, adrop_database, ensure_postgres
from kkmp_testkit.rabbit import ensure_broker, temporary_vhost
from kkmp_testkit.tokens import TokenFactory
from notifications.bootstrap import create_app

# pytest runs with --import-mode=importlib (no test directory on sys.path): make the testkit importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from notifications_testkit import Env, Mailbox, Receiver, SmtpServer, settings_for

# --- SMTP ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(port, mailbox)
    finally:
        controller.stop()


# --- HTTP receiver ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


# --- broker and databases ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker_url() -> str:
    return ensure_broker()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('notifications') / 'notifications.db'}"
        return
    ensure_postgres()
    url = await acreate_database("kkmp_notifications")
    yield url
    await adrop_database(url)


# --- the running service ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def env(
    broker_url: str,
    database_url: str,
    smtp: SmtpServer,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Env]:
    factory = TokenFactory()
    with temporary_vhost(broker_url, prefix="notifications") as amqp_url:
        # The database URL is read when the app is built; the variable is not needed afterwards.
        os.environ["NOTIFICATIONS_DATABASE_URL"] = database_url
        try:
            app = create_app(
                settings_for(amqp_url, smtp.port, tmp_path_factory.mktemp("var")),
                key_source=lambda _s: factory.key_source(),
            )
        finally:
            os.environ.pop("NOTIFICATIONS_DATABASE_URL", None)
        async with running_app(app) as client, EventProbe(amqp_url) as probe:
            await wait_ready(client, timeout=30)
            yield Env(app, client, probe, factory, smtp, receiver, amqp_url)
