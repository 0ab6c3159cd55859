"""Service settings read from the environment (pydantic-settings).

Every service subclasses `ServiceSettings` and sets `service_name`. Every value is resolved once, when
the settings are made. The database URL follows the contract: `<SERVICE>_DATABASE_URL`, then
`DATABASE_URL`, then a SQLite file in the data directory; one given to the constructor wins.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kkmp_shared.timeutil import zone

DEFAULT_SERVICE_SECRET = "kkmp-demo-service-secret"
# RabbitMQ's built-in account is guest/guest; a deployment gives the services a user of its own.
DEFAULT_BROKER_PASSWORD = "guest"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    service_name: str = "kkmp"
    demo: bool = Field(default=False, validation_alias=AliasChoices("KKMP_DEMO", "demo"))
    data_dir: Path = Field(default=Path("var"), validation_alias=AliasChoices("KKMP_DATA_DIR", "data_dir"))
    host: str = "127.0.0.1"
    port: int = 8000
    # Resolved once at construction (see `__init__`); the environment is not read again afterwards.
    database_url: str = ""
    # The business calendar's zone (days, weeks, due dates): Surabaya's. `TIMEZONE` is the older name.
    timezone: str = Field(
        default="Asia/Jakarta", validation_alias=AliasChoices("KKMP_TIMEZONE", "TIMEZONE", "timezone")
    )

    # One broker, or several (the nodes of a cluster) separated by commas; `AMQP_URLS` wins if set.
    # The service connects to the first that answers and fails over to the others.
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    amqp_urls: str | None = None
    events_exchange: str = "kkmp.events"
    # The broker is optional only for tests of the HTTP surface; a deployed service always has one.
    broker_enabled: bool = True
    # Unacked messages per queue. One transaction applies at most half of them, so that while a batch
    # is applied the next one is already here (with batch = prefetch, the next batch could only start
    # arriving once the last was acked, and a burst was applied in ever smaller batches).
    prefetch: int = 64
    # When a message arrives with fewer than a full batch waiting, how long the consumer waits for more
    # before applying what it has (0: not at all). A transaction, an inbox claim and an ack cost about as
    # much for one message as for ten; the wait adds at most this much to a lone event's latency.
    consumer_linger_ms: float = Field(default=10, ge=0, le=1000)
    # While a burst is still arriving (each linger step brought more), the consumer lingers on, step by
    # step, until the batch is full, a step brings nothing, or this long after the first message: a
    # burst published over a few hundred ms is then applied in one transaction rather than several.
    consumer_linger_max_ms: float = Field(default=100, ge=0, le=5000)
    # Delays of the retry queues, one per attempt after the first; then the dead-letter queue.
    retry_delays_ms: list[int] = [1000, 5000, 30000]
    # Deliveries of one message without an ack (its consumer died on it, or lost its connection with
    # it in flight) before the broker moves it to the dead-letter queue. A broker failover returns
    # every unacked message once, so this must stay well above the failovers a message may live through.
    delivery_limit: int = Field(default=10, ge=1)
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 0.5

    # Connections of this process to its database: `database_pool_size` kept open, up to
    # `database_max_overflow` more under load (default: as many again). The budget across replicas is
    # in the README (Configuration).
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int | None = Field(default=None, ge=0)
    # `pgbouncer` when the URL points at PgBouncer in transaction pooling: asyncpg then prepares no
    # named statement that could outlive a transaction (see `kkmp_shared.db.make_engine`).
    database_pooler: str = Field(default="none", pattern="^(none|pgbouncer)$")
    # Off when replicas start while a one-off job (`kkmp migrate`) migrates: the service then refuses
    # to start unless the schema is already at the code's head.
    migrate_on_start: bool = True

    registry_url: str = "http://127.0.0.1:8001"
    jwks_url: str | None = None
    jwks_file: Path | None = None
    jwt_issuer: str = "kkmp-registry"
    jwt_audience: str = "kkmp"
    # Credentials this service uses to get a `service` token from the registry.
    service_client_id: str | None = None
    service_client_secret: str = DEFAULT_SERVICE_SECRET

    otel_exporter: str = Field(default="off", pattern="^(off|console|otlp)$")
    otel_endpoint: str | None = None
    # Share of traces recorded when an exporter is on (by trace id, so every service keeps the same ones).
    otel_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    log_level: str = "INFO"
    log_json: bool = True
    max_body_bytes: int = 2 * 1024 * 1024
    max_page_size: int = 500

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        # After the fields: the variable's name depends on `service_name`, and a URL given here (not
        # one pydantic-settings read from `DATABASE_URL`) wins over `<SERVICE>_DATABASE_URL`.
        self.database_url = self.resolve_database_url(values.get("database_url"))

    def resolve_database_url(self, given: str | None) -> str:
        url = (
            given
            or os.environ.get(f"{self.service_name.upper()}_DATABASE_URL")
            or os.environ.get("DATABASE_URL")
        )
        if url:
            return normalise_database_url(url)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service_name}.db').resolve()}"

    @property
    def broker_urls(self) -> list[str]:
        return split_urls(self.amqp_urls or self.amqp_url)

    @property
    def resolved_jwks_url(self) -> str:
        return self.jwks_url or f"{self.registry_url.rstrip('/')}/.well-known/jwks.json"

    @model_validator(mode="after")
    def _known_timezone(self) -> ServiceSettings:
        try:  # an unknown zone name fails at start, not at the first local date
            zone(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"KKMP_TIMEZONE={self.timezone!r} is not a time zone (Asia/Jakarta)") from exc
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> ServiceSettings:
        if not self.demo:
            for name, value in self.secrets().items():
                if value in DEMO_SECRETS:
                    raise ValueError(
                        f"{name} still has its demo default; set it in the environment "
                        "(or run with KKMP_DEMO=1 for a demo)"
                    )
            if self.broker_enabled and uses_default_broker_password(self.amqp_urls or self.amqp_url):
                raise ValueError(
                    "AMQP_URL still has RabbitMQ's default password (guest); give the services a broker user "
                    "of their own with its own password (or run with KKMP_DEMO=1 for a demo)"
                )
        return self

    def secrets(self) -> dict[str, str | None]:
        """Secrets that must not keep their demo defaults outside demo mode; subclasses extend."""
        return {"SERVICE_CLIENT_SECRET": self.service_client_secret} if self.service_client_id else {}


DEMO_SECRETS = {DEFAULT_SERVICE_SECRET, "admin", "kkmp-demo-admin", "kkmp-demo-session-secret"}


def uses_default_broker_password(amqp_url: str) -> bool:
    """Whether any of the broker addresses (a comma-separated list is accepted) logs in with RabbitMQ's
    default password: written out, or left out (the AMQP client then sends guest/guest)."""
    for url in filter(None, (part.strip() for part in amqp_url.split(","))):
        password = urlparse(url).password
        if unquote(password or DEFAULT_BROKER_PASSWORD) == DEFAULT_BROKER_PASSWORD:
            return True
    return False


def normalise_database_url(url: str) -> str:
    """Accept the plain URLs operators write and pick the async driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """Broker addresses from a comma-separated string (as `AMQP_URL`/`AMQP_URLS` give them) or a list."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    found = [item.strip() for item in items if item.strip()]
    if not found:
        raise ValueError("no broker URL given")
    return found
