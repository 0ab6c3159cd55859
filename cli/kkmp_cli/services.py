"""The platform's processes: which services exist, their ports, and how to start them."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int

    @property
    def app(self) -> str:
        return f"{self.name}.bootstrap:create_app"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exists(self) -> bool:
        """A service exists once its package has a composition root."""
        try:
            return importlib.util.find_spec(f"{self.name}.bootstrap") is not None
        except ModuleNotFoundError:
            return False


# Start order: the registry first (it signs tokens), reporting early (it binds every event type),
# the portal last (it only calls the others).
SERVICES = (
    ServiceSpec("registry", 8001),
    ServiceSpec("reporting", 8004),
    ServiceSpec("inventory", 8002),
    ServiceSpec("sourcing", 8003),
    ServiceSpec("notifications", 8005),
    ServiceSpec("portal", 8000),
)


def available() -> list[ServiceSpec]:
    return [s for s in SERVICES if s.exists()]


def by_name(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)
