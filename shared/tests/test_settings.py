"""Settings refuse demo secrets outside demo mode, the broker's default password among them."""

from __future__ import annotations

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
