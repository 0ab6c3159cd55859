"""index of each stock item's sales window day: a scan checks that every window is rolled already

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:55:00.000000
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('stock_items', schema=None) as batch_op:
        batch_op.create_index('ix_stock_items_sold_window_day', ['sold_window_day'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stock_items', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_items_sold_window_day')
