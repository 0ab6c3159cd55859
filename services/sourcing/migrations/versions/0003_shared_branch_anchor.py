"""shared branch anchor: from here on the messaging and directory tables change in kkmp_shared's branch

No schema change. The revisions of kkmp_shared/migrations/versions (branch `kkmp_shared`) start from
this revision, whose id is the same in every service, so one file there changes the outbox, inbox or
directory tables of every service (docs/decisions/0004-shared-migration-branch.md).

Revision ID: kkmp_shared_anchor
Revises: 0002
Create Date: 2026-12-07 22:45:00.000000
"""

from collections.abc import Sequence

revision: str = "kkmp_shared_anchor"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
