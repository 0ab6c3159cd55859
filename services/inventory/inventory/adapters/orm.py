"""The inventory's tables (SQLAlchemy Core on its own MetaData).

Quantities are stored as whole thousandths of the commodity's unit (`*_milli`, BIGINT): exact on SQLite
and PostgreSQL alike, and integer arithmetic in the set-based detection SQL. Money is whole rupiah.
The ledger (`movements`) is append-only; `stock_items`, `stock_lots` and `daily_sales` are projections
of it, kept in the same transaction as each movement so they never disagree with the ledger.
"""

from __future__ import annotations

from kkmp_shared.db import new_metadata
from kkmp_shared.directory import add_directory_table
from kkmp_shared.messaging.tables import SeqType, add_messaging_tables
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
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

commodities = Table(
    "commodities",
    metadata,
    Column("code", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("unit", String(20), nullable=False),
    # Detection thresholds, overridable per commodity by an administrator.
    Column("stall_days", Integer, nullable=False),
    Column("low_cover_days", Integer, nullable=False),
    Column("typical_price", BigInteger),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The price ceiling (HET or HAP) of a commodity over time: a change is a new row from its effective
# date, never an edit, so a sale is always judged against the ceiling in force when it happened.
commodity_ceilings = Table(
    "commodity_ceilings",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("commodity", String(40), ForeignKey("commodities.code"), nullable=False),
    Column("price_ceiling", BigInteger),  # null: no ceiling from this date on
    Column("ceiling_kind", String(10)),
    Column("legal_basis", String(300)),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(100)),
    Index("ix_commodity_ceilings_commodity_from", "commodity", "effective_from"),
)

# One row per cooperative and commodity: the current state derived from the ledger, plus the episode
# (stalled / low / stockout) last announced for it, so each episode is announced exactly once.
stock_items = Table(
    "stock_items",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("commodity", String(40), ForeignKey("commodities.code"), primary_key=True),
    Column("on_hand_milli", BigInteger, nullable=False, server_default=text("0")),
    # Value of what is on hand at average cost (whole rupiah); average unit cost = value / on hand.
    Column("stock_value", BigInteger, nullable=False, server_default=text("0")),
    Column("last_unit_cost", BigInteger),
    Column("last_sale_at", DateTime(timezone=True)),
    Column("last_transfer_out_at", DateTime(timezone=True)),
    # When the stock on hand last moved out or, if later, its oldest receipt still on hand: the stall rule
    # counts from here. Null when nothing is on hand.
    Column("stall_clock_at", DateTime(timezone=True)),
    # Quantity sold in the 28 days ending on `sold_window_day` (a cache of daily_sales): movements keep
    # it exact for today, the first scan of a day rolls the others forward, so a scan reads one row per
    # item instead of aggregating every day's sales of every item.
    Column("sold_window_milli", BigInteger),
    Column("sold_window_day", Date),
    Column("condition", String(10)),
    Column("condition_since", DateTime(timezone=True)),
    # Bumped by every movement: a detection scan only changes an item it saw in this version.
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_stock_items_commodity", "commodity"),
    # The scan's check that every item's window is already rolled to the day (`roll_sales_window`).
    Index("ix_stock_items_sold_window_day", "sold_window_day"),
    Index(
        "ix_stock_items_condition",
        "condition",
        postgresql_where=text("condition IS NOT NULL"),
        sqlite_where=text("condition IS NOT NULL"),
    ),
)

# Receipt lots still (partly) on hand, oldest first: "the oldest receipt still on hand" of the stall
# rule, consumed first-in first-out by sales, transfers out, spoilage and negative adjustments.
stock_lots = Table(
    "stock_lots",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("cooperative_id", String(36), nullable=False),
    Column("commodity", String(40), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("remaining_milli", BigInteger, nullable=False),
    Index("ix_stock_lots_item", "cooperative_id", "commodity", "received_at"),
)

# The stock ledger (buku stok): append-only.
movements = Table(
    "movements",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("cooperative_id", String(36), nullable=False),
    Column("commodity", String(40), ForeignKey("commodities.code"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("quantity_milli", BigInteger, nullable=False),
    Column("delta_milli", BigInteger, nullable=False),
    Column("unit_price", BigInteger),
    Column("unit_cost", BigInteger),
    Column("value", BigInteger),
    Column("on_hand_after_milli", BigInteger, nullable=False),
    Column("price_ceiling", BigInteger),
    Column("ceiling_excess", BigInteger),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("reference", String(100)),
    Column("reason", String(300)),
    Column("note", String(500)),
    Column("recorded_by", String(100)),
    Column("batch_id", String(36)),
    # A document (delivery, proposal, delivery note) is recorded once per cooperative and kind: an event
    # re-sent under a new id, or a shop's sync sent twice, cannot book the same goods again.
    UniqueConstraint("cooperative_id", "kind", "reference", name="uq_movements_reference"),
    Index("ix_movements_coop_occurred", "cooperative_id", "occurred_at"),
    Index("ix_movements_coop_commodity_occurred", "cooperative_id", "commodity", "occurred_at"),
)

# Quantity sold per cooperative, commodity and day (UTC): the 28-day average of the low/stockout rules
# reads at most 28 rows per item instead of every sale.
daily_sales = Table(
    "daily_sales",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("commodity", String(40), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("quantity_milli", BigInteger, nullable=False),
    Column("value", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_daily_sales_day", "day"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(120), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)

detection_runs = Table(
    "detection_runs",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("trigger", String(20), nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("scope", JSON, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("requested_by", String(100)),
    Column("note", Text),
)

__all__ = [
    "commodities",
    "commodity_ceilings",
    "daily_sales",
    "detection_runs",
    "idempotency_keys",
    "known_cooperatives",
    "messaging",
    "metadata",
    "movements",
    "stock_items",
    "stock_lots",
]
