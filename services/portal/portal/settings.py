"""Portal settings: where the services are, how the session cookie is signed and sent.

Read from the environment like every service (``kkmp_shared.settings.ServiceSettings``). The session
secret must be set outside demo mode (``PORTAL_SESSION_SECRET``); the cookie's Secure flag is on by
default (off by default in demo mode) and can be set either way with ``PORTAL_COOKIE_SECURE``.
"""

from __future__ import annotations

from pathlib import Path

from kkmp_shared import refdata
from kkmp_shared.settings import ServiceSettings
from pydantic import AliasChoices, Field, model_validator

DEFAULT_SESSION_SECRET = "kkmp-demo-session-secret"


class PortalSettings(ServiceSettings):
    service_name: str = "portal"
    port: int = 8000
    broker_enabled: bool = False  # the portal reads and writes only through the services' HTTP APIs

    inventory_url: str = "http://127.0.0.1:8002"
    sourcing_url: str = "http://127.0.0.1:8003"
    reporting_url: str = "http://127.0.0.1:8004"
    notifications_url: str = "http://127.0.0.1:8005"

    session_secret: str = Field(
        default=DEFAULT_SESSION_SECRET,
        validation_alias=AliasChoices("PORTAL_SESSION_SECRET", "session_secret"),
    )
    session_cookie: str = Field(
        default="kkmp_session", validation_alias=AliasChoices("PORTAL_SESSION_COOKIE", "session_cookie")
    )
    # Seconds a session lives without use; the registry's token usually expires sooner (expires_in).
    session_max_age_s: int = Field(
        default=8 * 3600, validation_alias=AliasChoices("PORTAL_SESSION_MAX_AGE_S", "session_max_age_s")
    )
    # Secure cookie: on unless set otherwise; demo mode (plain http on localhost) turns it off by default.
    cookie_secure: bool | None = Field(
        default=None, validation_alias=AliasChoices("PORTAL_COOKIE_SECURE", "cookie_secure")
    )
    upstream_timeout_s: float = Field(
        default=8.0, validation_alias=AliasChoices("PORTAL_UPSTREAM_TIMEOUT_S", "upstream_timeout_s")
    )
    # Reference data (GeoJSON, coordinates): kkmp_shared.refdata's unless another folder is named.
    reference_dir: Path = Field(
        default_factory=refdata.directory,
        validation_alias=AliasChoices("PORTAL_REFERENCE_DIR", "reference_dir"),
    )

    @model_validator(mode="after")
    def _cookie_secure_default(self) -> PortalSettings:
        if self.cookie_secure is None:
            self.cookie_secure = not self.demo
        if not self.demo and len(self.session_secret) < 32:
            raise ValueError(
                "PORTAL_SESSION_SECRET must be at least 32 characters (it signs the session cookie)"
            )
        return self

    def secrets(self) -> dict[str, str | None]:
        return {**super().secrets(), "PORTAL_SESSION_SECRET": self.session_secret}

    def resolve_database_url(self, given: str | None) -> str:
        # The portal owns no data. The common app factory still opens a database for its readiness
        # check, so it gets an in-memory SQLite that is never written to.
        return "sqlite+aiosqlite:///:memory:"
