"""Settings refuse demo secrets outside demo mode (the broker's default password among them) and resolve
the database URL and the time zone once, when they are made."""

from __future__ import annotations

from pathlib import Path

import pytest
from kkmp_shared.settings import ServiceSettings, uses_default_broker_password
from pydantic import ValidationError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@localhost:5672/",
        "amqp://kkmp:guest@rabbitmq:5672/",
        "amqp://kkmp:%67uest@rabbitmq:5672/",  # percent-encoded, still guest
        "amqp://rabbitmq:5672/",  # no credentials: the client logs in as guest/guest
        "amqp://kkmp:s3cret-broker@rabbit-1:5672/,amqp://guest:guest@rabbit-2:5672/",  # one of several
    ],
)
def test_the_default_broker_password_is_refused_outside_demo_mode(url: str) -> None:
    assert uses_default_broker_password(url)
    with pytest.raises(ValidationError, match="AMQP_URL still has RabbitMQ's default password"):
        ServiceSettings(demo=False, amqp_url=url)
    assert ServiceSettings(demo=True, amqp_url=url).amqp_url == url


def test_the_default_broker_url_is_refused_outside_demo_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setenv("KKMP_DEMO", "0")
    with pytest.raises(ValidationError, match="AMQP_URL"):
        ServiceSettings()


def test_a_broker_user_of_its_own_is_accepted_and_a_service_without_broker_is_not_asked() -> None:
    url = "amqp://kkmp:s3cret-broker@rabbit-1:5672/,amqp://kkmp:s3cret-broker@rabbit-2:5672/"
    assert not uses_default_broker_password(url)
    assert ServiceSettings(demo=False, amqp_url=url).amqp_url == url
    # The portal talks HTTP only: its (unused) broker URL is not a secret it holds.
    assert not ServiceSettings(demo=False, broker_enabled=False).demo


def test_the_database_url_is_resolved_once_with_the_contracts_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOY_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    fallback = ServiceSettings(service_name="toy", demo=True, data_dir=tmp_path)
    assert fallback.database_url == f"sqlite+aiosqlite:///{(tmp_path / 'toy.db').resolve()}"

    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/all")
    assert ServiceSettings(service_name="toy", demo=True).database_url == "postgresql+asyncpg://u:p@db/all"
    monkeypatch.setenv("TOY_DATABASE_URL", "postgresql://u:p@db/toy")
    settings = ServiceSettings(service_name="toy", demo=True)
    assert settings.database_url == "postgresql+asyncpg://u:p@db/toy"
    # Given to the constructor, it wins; and what was resolved does not follow later changes.
    given = ServiceSettings(service_name="toy", demo=True, database_url="sqlite:///given.db")
    assert given.database_url == "sqlite+aiosqlite:///given.db"
    monkeypatch.setenv("TOY_DATABASE_URL", "postgresql://u:p@db/other")
    assert settings.database_url == "postgresql+asyncpg://u:p@db/toy"
    assert fallback.database_url.startswith("sqlite+aiosqlite:///")


def test_one_time_zone_setting_with_its_older_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings(demo=True).timezone == "Asia/Jakarta"
    monkeypatch.setenv("TIMEZONE", "Asia/Makassar")
    assert ServiceSettings(demo=True).timezone == "Asia/Makassar"
    monkeypatch.setenv("KKMP_TIMEZONE", "Asia/Jayapura")
    assert ServiceSettings(demo=True).timezone == "Asia/Jayapura"
    monkeypatch.setenv("KKMP_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError):
        ServiceSettings(demo=True)
