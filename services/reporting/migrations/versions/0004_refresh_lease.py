"""refresh lease shared by the replicas

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    lease = op.create_table(
        'refresh_lease',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_refresh_lease')),
    )
    # The one row every refresher transaction locks first: it must exist before any replica starts.
    op.bulk_insert(lease, [{'name': 'refresher', 'holder': '', 'expires_at': 0.0}])


def downgrade() -> None:
    op.drop_table('refresh_lease')
