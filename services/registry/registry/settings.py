"""Registry settings (environment)."""

from __future__ import annotations

from pathlib import Path

from kkmp_shared.settings import ServiceSettings
from pydantic import AliasChoices, Field

DEMO_ADMIN_PASSWORD = "kkmp-demo-admin"


class RegistrySettings(ServiceSettings):
    service_name: str = "registry"
    port: int = 8001
    admin_password: str | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        validation_alias=AliasChoices("KKMP_ADMIN_PASSWORD", "admin_password"),
    )
    token_ttl_s: int = 3600
    # The token signing key (see `registry.adapters.keys`): a PEM RSA private key, or the path of one
    # (a mounted secret). Outside demo mode one of them is required.
    signing_key: str | None = Field(default=None, validation_alias=AliasChoices("SIGNING_KEY", "signing_key"))
    signing_key_path: Path | None = Field(
        default=None, validation_alias=AliasChoices("SIGNING_KEY_FILE", "signing_key_path")
    )
    # argon2id: RFC 9106's second recommended profile by default (3 passes over 64 MiB, 4 lanes); OWASP's
    # minimum (2 passes, 19 MiB, 1 lane) is about five times cheaper, for a registry creating users in bulk.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8192)
    password_hash_parallelism: int = Field(default=4, ge=1)
    regions_csv: Path | None = None
    coords_csv: Path | None = None
    # Login throttling: this many failures per username, or per client address, within the window.
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 20
    login_window_s: int = 300
    # Service accounts: "client_id:secret,client_id:secret" (demo defaults when KKMP_DEMO=1).
    service_clients: str | None = None

    def effective_admin_password(self) -> str:
        if self.admin_password:
            return self.admin_password
        if self.demo:
            return DEMO_ADMIN_PASSWORD
        raise ValueError("KKMP_ADMIN_PASSWORD must be set outside demo mode")

    def secrets(self) -> dict[str, str | None]:
        clients = {
            f"SERVICE_CLIENTS ({item.split(':', 1)[0].strip()})": item.split(":", 1)[1].strip()
            for item in (self.service_clients or "").split(",")
            if ":" in item
        }
        return {
            **super().secrets(),
            **clients,
            "KKMP_ADMIN_PASSWORD": self.admin_password or DEMO_ADMIN_PASSWORD,
        }

    @property
    def key_path(self) -> Path:
        return self.signing_key_path or (self.data_dir / "registry-signing-key.pem")
