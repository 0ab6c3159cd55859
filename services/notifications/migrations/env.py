"""Alembic environment of the notifications service: the shared runner over this service's metadata."""

from kkmp_shared.db import run_alembic_env
from notifications.adapters.orm import metadata

run_alembic_env(metadata)
