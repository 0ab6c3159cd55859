"""The outbox and inbox tables: added to each service's own MetaData, and created by each service's
first Alembic migration."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL wants a bigint for a long-lived log.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table


def add_messaging_tables(metadata: MetaData) -> MessagingTables:
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", SeqType, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("subject", String(64)),
        Column("body", Text, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        # `EventData.bulk`: published after the other pending events (the relay reads this index).
        Column("bulk", Boolean, nullable=False, server_default=false()),
    )
    Index(
        "ix_outbox_pending_lanes",
        outbox.c.bulk,
        outbox.c.seq,
        postgresql_where=outbox.c.published_at.is_(None),
        sqlite_where=outbox.c.published_at.is_(None),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return MessagingTables(outbox=outbox, inbox=inbox)


# --- Alembic ---------------------------------------------------------------------------------------
# What every service's migrations ran to create and change the two tables, as Alembic's autogenerate
# wrote it. Frozen: a database already past a revision never runs it again, so a change to the tables
# is a new function here and a new revision in each service, never an edit of these.


def create_messaging_tables() -> None:
    """Inside a migration's `upgrade()`: the inbox, the outbox and its index of unpublished rows."""
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )


def drop_messaging_tables() -> None:
    """Inside a migration's `downgrade()`: the reverse of `create_messaging_tables`."""
    import sqlalchemy as sa
    from alembic import op

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
    op.drop_table("outbox")
    op.drop_table("inbox")


def add_outbox_lanes() -> None:
    """Inside a migration's `upgrade()`: the outbox's `bulk` column, and its index of unpublished rows
    ordered by lane (other events first) and then by `seq`."""
    import sqlalchemy as sa
    from alembic import op

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bulk", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.drop_index(
            "ix_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
        batch_op.create_index(
            "ix_outbox_pending_lanes",
            ["bulk", "seq"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )


def drop_outbox_lanes() -> None:
    """Inside a migration's `downgrade()`: the reverse of `add_outbox_lanes`."""
    import sqlalchemy as sa
    from alembic import op

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending_lanes",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
        batch_op.create_index(
            "ix_outbox_pending",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
        batch_op.drop_column("bulk")
