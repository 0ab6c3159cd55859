"""kkmp_shared branch start: the messaging (outbox, inbox) and directory tables' own history

No schema change: the tables were made by each service's own revisions up to `kkmp_shared_anchor`. A
change to them from now on is one revision here, on this branch (`alembic revision --head
kkmp_shared@head --version-path shared/kkmp_shared/migrations/versions ...`), which every service runs.

Revision ID: kkmp_shared_0001
Revises: kkmp_shared_anchor
Create Date: 2026-12-07 22:45:00.000000
"""

from collections.abc import Sequence

revision: str = "kkmp_shared_0001"
down_revision: str | None = "kkmp_shared_anchor"
branch_labels: str | Sequence[str] | None = ("kkmp_shared",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
