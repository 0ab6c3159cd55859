"""Alembic environment of the inventory: the shared runner over this service's metadata."""

from inventory.adapters.orm import metadata
from kkmp_shared.db import run_alembic_env

run_alembic_env(metadata)
