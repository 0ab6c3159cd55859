"""Sourcing's tables (SQLAlchemy Core on its own MetaData).

Quantities are NUMERIC (exact), money whole rupiah (BIGINT). Timestamps are timezone-aware UTC on both
databases: SQLite hands back naive values, which `UtcDateTime` marks as UTC again on the way out.
"""

from __future__ import annotations

from kkmp_shared.db import new_metadata
from kkmp_shared.directory import add_directory_table
from kkmp_shared.messaging.tables import add_messaging_tables
from kkmp_shared.timeutil import UtcDateTime
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

Quantity = Numeric(14, 3)
Money = BigInteger

metadata = new_metadata()
messaging = add_messaging_tables(metadata)
cooperatives = add_directory_table(metadata)

suppliers = Table(
    "suppliers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    # Lower-cased name: one supplier per name, whatever the capitalisation.
    Column("name_key", String(200), nullable=False, unique=True),
    Column("kind", String(30), nullable=False),
    Column("contact", String(300)),
    Column("phone", String(40)),
    Column("email", String(200)),
    Column("address", String(300)),
    Column("service_kecamatan_codes", JSON, nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_by", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

offers = Table(
    "supplier_offers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("supplier_id", String(36), ForeignKey("suppliers.id"), nullable=False),
    Column("commodity", String(50), nullable=False, index=True),
    Column("unit_price", Money, nullable=False),
    Column("min_order", Quantity, nullable=False),
    Column("capacity_per_week", Quantity, nullable=False),
    Column("lead_time_days", Integer, nullable=False),
    Column("price_tiers", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("supplier_id", "commodity", name="uq_supplier_offers_supplier_commodity"),
)

needs = Table(
    "needs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cooperative_id", String(36), nullable=False, index=True),
    Column("kelurahan_code", String(20), nullable=False),
    Column("kecamatan_code", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("commodity", String(50)),
    Column("quantity", Quantity),
    Column("unit", String(20)),
    Column("amount", Money),
    Column("needed_by", Date),
    Column("description", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("assigned_to", String(200)),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("submitted_by", String(64)),
    Column("submitted_by_role", String(20)),
    # The first answer to the need (response time ends), then acknowledgement and closing.
    Column("responded_at", UtcDateTime),
    Column("acknowledged_at", UtcDateTime),
    Column("resolved_at", UtcDateTime),
    Column("status_changed_at", UtcDateTime, nullable=False),
    Column("split", JSON),
    Column("matched_at", UtcDateTime),
    Index("ix_needs_kecamatan_status", "kecamatan_code", "status"),
    Index("ix_needs_commodity_status", "commodity", "status"),
    Index("ix_needs_status_submitted", "status", "submitted_at"),
    Index("ix_needs_submitted_at", "submitted_at"),
)

need_matches = Table(
    "need_matches",
    metadata,
    Column("need_id", String(36), ForeignKey("needs.id"), primary_key=True),
    Column("supplier_id", String(36), ForeignKey("suppliers.id"), primary_key=True, index=True),
    Column("rank", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("lead_time_days", Integer, nullable=False),
    Column("can_fill_quantity", Quantity, nullable=False),
    Column("distance_km", Float),
    Column("on_time", Boolean, nullable=False),
    Column("components", JSON, nullable=False),
    Column("reasons", JSON, nullable=False),
)

need_history = Table(
    "need_status_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("need_id", String(36), ForeignKey("needs.id"), nullable=False, index=True),
    Column("old_status", String(20)),
    Column("new_status", String(20), nullable=False),
    Column("note", Text),
    Column("assigned_to", String(200)),
    Column("changed_by", String(64)),
    Column("changed_by_role", String(20)),
    Column("changed_at", UtcDateTime, nullable=False),
)

need_comments = Table(
    "need_comments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("need_id", String(36), ForeignKey("needs.id"), nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("author", String(64)),
    Column("author_name", String(200)),
    Column("author_role", String(20), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Low stock and stockout episodes per cooperative and commodity, from inventory's events until recovered.
stock_conditions = Table(
    "stock_conditions",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("commodity", String(50), primary_key=True),
    Column("condition", String(20), primary_key=True),
    Column("kelurahan_code", String(20), nullable=False),
    Column("kecamatan_code", String(20), nullable=False),
    Column("on_hand", Quantity),
    Column("avg_daily_sales", Quantity),
    Column("days_of_cover", Quantity),
    Column("detected_at", UtcDateTime, nullable=False),
    Index("ix_stock_conditions_commodity", "commodity"),
)

stalled_items = Table(
    "stalled_items",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cooperative_id", String(36), nullable=False, index=True),
    Column("kelurahan_code", String(20), nullable=False),
    Column("kecamatan_code", String(20), nullable=False),
    Column("commodity", String(50), nullable=False),
    Column("unit", String(20)),
    Column("on_hand", Quantity, nullable=False),
    Column("unit_cost", Money),
    Column("value", Money),
    Column("last_sale_at", UtcDateTime),
    Column("days_since_sale", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("suggestions", JSON, nullable=False),
    Column("event_id", String(64)),
    # "<cooperative>:<commodity>" while the episode is active, NULL after: one active episode each.
    Column("active_key", String(100), unique=True),
    Column("detected_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("recovered_at", UtcDateTime),
    Index("ix_stalled_items_commodity_status", "commodity", "status"),
)

redistributions = Table(
    "redistributions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("stalled_item_id", String(36), ForeignKey("stalled_items.id"), nullable=False),
    Column("commodity", String(50), nullable=False),
    Column("unit", String(20)),
    Column("quantity", Quantity, nullable=False),
    Column("unit_cost", Money),
    Column("from_cooperative_id", String(36), nullable=False, index=True),
    Column("from_kelurahan_code", String(20), nullable=False),
    Column("from_kecamatan_code", String(20), nullable=False),
    Column("to_cooperative_id", String(36), nullable=False, index=True),
    Column("to_kelurahan_code", String(20), nullable=False),
    Column("to_kecamatan_code", String(20), nullable=False),
    Column("distance_km", Float),
    Column("reason", String(20), nullable=False),
    Column("need_id", String(36)),
    Column("status", String(20), nullable=False),
    Column("from_decision", String(20)),
    Column("from_decided_by", String(64)),
    Column("from_decided_at", UtcDateTime),
    Column("from_note", Text),
    Column("to_decision", String(20)),
    Column("to_decided_by", String(64)),
    Column("to_decided_at", UtcDateTime),
    Column("to_note", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    # The same stalled stock is never offered twice to the same cooperative.
    UniqueConstraint("stalled_item_id", "to_cooperative_id", name="uq_redistributions_item_taker"),
    Index("ix_redistributions_commodity_status", "commodity", "status"),
    Index("ix_redistributions_status_created", "status", "created_at"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("supplier_id", String(36), ForeignKey("suppliers.id"), nullable=False, index=True),
    Column("commodity", String(50), nullable=False),
    Column("unit", String(20)),
    Column("quantity", Quantity, nullable=False),
    Column("delivered_quantity", Quantity, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("pooled", Boolean, nullable=False),
    Column("status", String(30), nullable=False),
    Column("note", Text),
    Column("lead_time_days", Integer, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("placed_at", UtcDateTime, nullable=False),
    Column("placed_by", String(64)),
    Column("confirmed_at", UtcDateTime),
    Column("confirmed_by", String(64)),
    Column("delivered_at", UtcDateTime),
    # Set when the order is fully delivered: by its due date or not (the supplier's track record).
    Column("delivered_on_time", Boolean),
    Column("cancelled_at", UtcDateTime),
    Column("cancelled_by", String(64)),
    Column("cancelled_by_role", String(20)),
    Column("cancel_reason", Text),
    Index("ix_orders_supplier_commodity_status", "supplier_id", "commodity", "status"),
    Index("ix_orders_status_placed", "status", "placed_at"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("need_id", String(36), ForeignKey("needs.id"), index=True),
    Column("cooperative_id", String(36), nullable=False, index=True),
    Column("kelurahan_code", String(20), nullable=False),
    Column("kecamatan_code", String(20), nullable=False),
    Column("quantity", Quantity, nullable=False),
    Column("delivered_quantity", Quantity, nullable=False),
    UniqueConstraint("order_id", "cooperative_id", name="uq_order_lines_order_cooperative"),
)

deliveries = Table(
    "order_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("line_id", String(36), ForeignKey("order_lines.id"), nullable=False),
    Column("cooperative_id", String(36), nullable=False),
    Column("quantity", Quantity, nullable=False),
    Column("complete", Boolean, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=False),
    Column("recorded_by", String(64)),
)

# UMKM members per cooperative (from member.joined.v1): who could use stalled stock.
umkm_members = Table(
    "umkm_members",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("cooperative_id", String(36), nullable=False, index=True),
    Column("sector", String(100)),
    Column("products", JSON, nullable=False),
    Column("joined_at", UtcDateTime, nullable=False),
)
