"""Several broker addresses: how settings read them and in which order the broker tries them."""

from __future__ import annotations

import pytest
from kkmp_shared.messaging.broker import Broker
from kkmp_shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


def test_amqp_url_takes_a_comma_separated_list_and_amqp_urls_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@node-a:5672/kkmp, amqp://u:p@node-b:5672/kkmp,")
    assert ServiceSettings(demo=True).broker_urls == [
        "amqp://u:p@node-a:5672/kkmp",
        "amqp://u:p@node-b:5672/kkmp",
    ]
    monkeypatch.setenv("AMQP_URLS", "amqp://u:p@c1/,amqp://u:p@c2/,amqp://u:p@c3/")
    assert ServiceSettings(demo=True).broker_urls == ["amqp://u:p@c1/", "amqp://u:p@c2/", "amqp://u:p@c3/"]
    monkeypatch.setenv("DELIVERY_LIMIT", "4")
    assert ServiceSettings(demo=True).delivery_limit == 4


def test_the_broker_starts_with_the_first_address_and_each_gets_a_heartbeat() -> None:
    broker = Broker("amqp://a:5672/,amqp://b:5673/?heartbeat=3", name="t")
    assert broker.url == "amqp://a:5672/?heartbeat=10"
    assert broker.urls[1] == "amqp://b:5673/?heartbeat=3"
    with pytest.raises(ValueError):
        Broker(" , ", name="t")
