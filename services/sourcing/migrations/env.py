"""Alembic environment of sourcing: the shared runner over this service's metadata."""

from kkmp_shared.db import run_alembic_env
from sourcing.adapters.orm import metadata

run_alembic_env(metadata)
