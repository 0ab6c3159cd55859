"""Alembic environment of reporting: the shared runner over this service's metadata."""

from kkmp_shared.db import run_alembic_env
from reporting.adapters.orm import metadata

run_alembic_env(metadata)
