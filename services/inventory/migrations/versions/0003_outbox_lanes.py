"""outbox lanes: bulk streams are published after the other events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 13:05:00.000000
"""

from collections.abc import Sequence

from kkmp_shared.messaging.tables import add_outbox_lanes, drop_outbox_lanes


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_lanes()


def downgrade() -> None:
    drop_outbox_lanes()
