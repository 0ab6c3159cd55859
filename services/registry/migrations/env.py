"""Alembic environment of the registry: the shared runner over this service's metadata."""

from kkmp_shared.db import run_alembic_env
from registry.adapters.orm import metadata

run_alembic_env(metadata)
