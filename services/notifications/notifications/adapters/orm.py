"""The notification service's tables (SQLAlchemy Core on its own MetaData).

Scopes, mutes and subscription filters are link tables rather than JSON lists so that "who is in
scope of kecamatan X and has not muted type T" is one indexed SQL query at any scale.
"""

from __future__ import annotations

from kkmp_shared.db import new_metadata
from kkmp_shared.directory import add_directory_table
from kkmp_shared.messaging.tables import SeqType, add_messaging_tables
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = new_metadata()
messaging = add_messaging_tables(metadata)
known_cooperatives = add_directory_table(metadata)

# --- recipients (learned from user.created.v1, or from a user's own token when that event was missed)

recipients = Table(
    "recipients",
    metadata,
    Column("user_id", String(100), primary_key=True),
    Column("username", String(100)),
    Column("full_name", String(200)),
    Column("email", String(254)),
    Column("role", String(20), nullable=False),
    Column("cooperative_id", String(64)),
    Column("supplier_id", String(64)),
    # An officer with no kecamatan codes covers the whole city.
    Column("whole_city", Boolean, nullable=False, server_default=text("false")),
    Column("supervisor", Boolean, nullable=False, server_default=text("false")),
    Column("learned_from", String(10), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_recipients_role_cooperative", "role", "cooperative_id"),
    Index("ix_recipients_role_supplier", "role", "supplier_id"),
)

recipient_scopes = Table(
    "recipient_scopes",
    metadata,
    Column("user_id", String(100), ForeignKey("recipients.user_id", ondelete="CASCADE"), primary_key=True),
    Column("kecamatan_code", String(20), primary_key=True),
    Index("ix_recipient_scopes_kecamatan", "kecamatan_code"),
)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", String(100), primary_key=True),
    Column("digest", String(10), nullable=False, server_default=text("'off'")),
    Column("email_enabled", Boolean, nullable=False, server_default=text("true")),
    Column("digest_since", DateTime(timezone=True)),
    Column("last_digest_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

muted_types = Table(
    "muted_types",
    metadata,
    Column("user_id", String(100), primary_key=True),
    Column("event_type", String(100), primary_key=True),
)

# --- routing table (data the admin extends) -------------------------------------------------------

routing_rules = Table(
    "routing_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_type", String(100), nullable=False, index=True),
    Column("audience", String(40), nullable=False),
    # '' = the audience's default field; kept non-null so the unique constraint sees duplicates.
    Column("match_field", String(100), nullable=False, server_default=text("''")),
    Column("conditions", JSON, nullable=False),
    # Canonical JSON of `conditions`, part of the rule's identity.
    Column("conditions_key", String(500), nullable=False, server_default=text("''")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("builtin", Boolean, nullable=False, server_default=text("false")),
    Column("created_by", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "event_type", "audience", "match_field", "conditions_key", name="uq_routing_rules_identity"
    ),
)

# --- in-app inbox -----------------------------------------------------------------------------------

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(100), nullable=False),
    # The source event (or a made-up id for escalations, digests, announcements).
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("link", String(500)),
    Column("cooperative_id", String(64)),
    Column("commodity", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True)),
    # One notification per recipient per event, whatever the redeliveries or overlapping rules.
    UniqueConstraint("user_id", "event_id", name="uq_notifications_user_event"),
    Index("ix_notifications_user_created", "user_id", "created_at"),
    Index(
        "ix_notifications_unread",
        "user_id",
        postgresql_where=text("read_at IS NULL"),
        sqlite_where=text("read_at IS NULL"),
    ),
)

# Notifications held back for officers who chose a daily digest instead of one message per event.
digest_items = Table(
    "digest_items",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(100), nullable=False, index=True),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("link", String(500)),
    Column("cooperative_id", String(64)),
    Column("commodity", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "event_id", name="uq_digest_items_user_event"),
)

# The repeat window: when each condition (type, cooperative, commodity) was last announced.
alert_windows = Table(
    "alert_windows",
    metadata,
    Column("condition_key", String(300), primary_key=True),
    Column("event_type", String(100), nullable=False),
    Column("cooperative_id", String(64)),
    Column("last_event_id", String(64), nullable=False),
    Column("last_notified_at", DateTime(timezone=True), nullable=False),
    Column("suppressed", Integer, nullable=False, server_default=text("0")),
    Column("last_suppressed_at", DateTime(timezone=True)),
)

# --- subscriptions (webhook, email) -------------------------------------------------------------------

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("channel", String(10), nullable=False),
    Column("target", String(2000), nullable=False),
    # HMAC key of a webhook; shown once at creation.
    Column("secret", String(100)),
    Column("description", String(300)),
    Column("owner_id", String(100), nullable=False, index=True),
    Column("owner_role", String(20), nullable=False),
    Column("whole_city", Boolean, nullable=False, server_default=text("true")),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

subscription_types = Table(
    "subscription_types",
    metadata,
    Column(
        "subscription_id", String(36), ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("event_type", String(100), primary_key=True),
    Index("ix_subscription_types_event_type", "event_type"),
)

subscription_scopes = Table(
    "subscription_scopes",
    metadata,
    Column(
        "subscription_id", String(36), ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("kecamatan_code", String(20), primary_key=True),
)

# --- deliveries on push channels (an outbox the delivery workers drain) ------------------------------

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("channel", String(10), nullable=False),
    Column("target", String(2000), nullable=False),
    # Who it is for: "user:<id>" or "subscription:<id>" (also what makes a delivery unique per event).
    Column("recipient", String(150), nullable=False),
    Column("user_id", String(100)),
    Column("subscription_id", String(36), index=True),
    Column("notification_id", String(36)),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("cooperative_id", String(64)),
    Column("subject", String(300)),
    Column("payload", Text, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_status_code", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    UniqueConstraint("event_id", "channel", "recipient", name="uq_deliveries_event_channel_recipient"),
    Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    Index("ix_deliveries_created", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column(
        "delivery_id", String(36), ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("number", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
)

# --- needs awaiting acknowledgement (for escalation) ----------------------------------------------------

need_watch = Table(
    "need_watch",
    metadata,
    Column("need_id", String(64), primary_key=True),
    Column("cooperative_id", String(64)),
    Column("kelurahan_code", String(20)),
    Column("kecamatan_code", String(20)),
    Column("kind", String(20)),
    Column("commodity", String(100)),
    Column("description", Text),
    Column("submitted_at", DateTime(timezone=True)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("escalated_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(
        "ix_need_watch_waiting",
        "submitted_at",
        postgresql_where=text("acknowledged_at IS NULL AND escalated_at IS NULL"),
        sqlite_where=text("acknowledged_at IS NULL AND escalated_at IS NULL"),
    ),
)
