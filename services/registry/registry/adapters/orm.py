"""The registry's tables (SQLAlchemy Core on its own MetaData)."""

from __future__ import annotations

from kkmp_shared.db import new_metadata
from kkmp_shared.messaging.tables import add_messaging_tables
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = new_metadata()
messaging = add_messaging_tables(metadata)

kecamatan = Table(
    "kecamatan",
    metadata,
    Column("code", String(20), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("city_code", String(10), nullable=False),
    Column("lat", Float),
    Column("lon", Float),
)

kelurahan = Table(
    "kelurahan",
    metadata,
    Column("code", String(20), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("kecamatan_code", String(20), ForeignKey("kecamatan.code"), nullable=False, index=True),
    Column("lat", Float),
    Column("lon", Float),
)

cooperatives = Table(
    "cooperatives",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    # One KKMP per kelurahan: the database enforces it, so two racing registrations cannot both win.
    Column("kelurahan_code", String(20), ForeignKey("kelurahan.code"), nullable=False, unique=True),
    Column("kecamatan_code", String(20), nullable=False, index=True),
    Column("formation", String(20), nullable=False),
    Column("deed_number", String(100)),
    Column("deed_date", Date),
    Column("deed_notary", String(200)),
    Column("status", String(20), nullable=False, index=True),
    Column("business_units", JSON, nullable=False),
    Column("member_count", Integer, nullable=False, default=0),
    Column("address", String(300)),
    Column("phone", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

status_history = Table(
    "cooperative_status_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cooperative_id", String(36), ForeignKey("cooperatives.id"), nullable=False, index=True),
    Column("old_status", String(20)),
    Column("new_status", String(20), nullable=False),
    Column("reason", Text),
    Column("changed_by", String(36)),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

board_members = Table(
    "board_members",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cooperative_id", String(36), ForeignKey("cooperatives.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("position", String(40), nullable=False),
    Column("phone", String(40)),
    Column("since", Date),
)

members = Table(
    "members",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cooperative_id", String(36), ForeignKey("cooperatives.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("sector", String(100)),
    Column("products", JSON, nullable=False),
    Column("joined_at", DateTime(timezone=True), nullable=False),
)

potentials = Table(
    "potentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kelurahan_code", String(20), ForeignKey("kelurahan.code"), nullable=False, index=True),
    Column("sector", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("created_by", String(36)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

trainings = Table(
    "trainings",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("topic", String(100), nullable=False),
    Column("description", Text),
    Column("kecamatan_code", String(20)),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date),
    Column("location", String(200)),
    Column("status", String(20), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("created_by", String(36)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

training_participants = Table(
    "training_participants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("training_id", String(36), ForeignKey("trainings.id"), nullable=False, index=True),
    Column("cooperative_id", String(36), ForeignKey("cooperatives.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("role", String(40)),
    Column("attended", Boolean, nullable=False, default=False),
    UniqueConstraint("training_id", "cooperative_id", "name", name="uq_training_participant"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("cooperative_id", String(36), ForeignKey("cooperatives.id")),
    Column("supplier_id", String(36)),
    Column("kecamatan_codes", JSON, nullable=False),
    Column("full_name", String(200)),
    Column("email", String(200)),
    Column("supervisor", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),
)

# The token signing keys, shared by every replica (see `registry.adapters.keys.KeyStore`): the newest
# key with no `not_after` signs; every key verifies until its `not_after` (seconds since the epoch),
# which a rotation sets to the rotation time plus the longest token lifetime. The private keys are
# here: the registry's database and its backups are as secret as the key they were seeded from.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("not_after", Float),
)
