"""Reporting's tables (SQLAlchemy Core on its own MetaData): the **event store** (every event
consumed, from which the read model can be rebuilt), the **read model** projected from it plus the
figures derived from it (`cooperative_health`, `kecamatan_figures`, kept current through
`refresh_queue`), and reporting's **own records** (`monthly_reports`, `report_overdue`).

Quantities are integers in thousandths of a unit; money is whole rupiah.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = new_metadata()
messaging = add_messaging_tables(metadata)
known_cooperatives = add_directory_table(metadata)

ALL = "*"  # the key of a city-wide (all kecamatan / all commodities) aggregate row


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware.

    SQLite keeps no offset: an aware value would be written with its local wall-clock time and read
    back naive. Converting to UTC on the way in and tagging UTC on the way out makes both databases
    behave the same, and keeps SQLite's text timestamps comparable as strings.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # asyncpg already answers in UTC: the common case
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- the event store ----------------------------------------------------------------------------

event_store = Table(
    "event_store",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(100), nullable=False, index=True),
    Column("source", String(200), nullable=False),
    Column("subject", String(64)),
    Column("time", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Column("traceparent", String(100)),
    Column("received_at", UtcDateTime, nullable=False),
)

# --- read model: cooperatives --------------------------------------------------------------------

cooperative_facts = Table(
    "cooperative_facts",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("kecamatan_code", String(20), nullable=False, index=True),
    # When reporting expects monthly reports from: the registration time.
    Column("registered_at", UtcDateTime),
    Column("formation", String(20)),
)

# Daily counts per cooperative, one table per writer: sales come from the stock queue and member
# joins from the directory queue, and two queues upserting one row in different orders would deadlock.
coop_sales_daily = Table(
    "coop_sales_daily",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),  # local (WIB) calendar day
    Column("kecamatan_code", String(20), nullable=False),
    Column("sale_count", Integer, nullable=False),
    Column("sale_value", BigInteger, nullable=False),
)
Index("ix_coop_sales_daily_day", coop_sales_daily.c.day)

coop_members_daily = Table(
    "coop_members_daily",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),  # local (WIB) calendar day
    Column("kecamatan_code", String(20), nullable=False),
    Column("members_joined", Integer, nullable=False),
)

coop_trainings = Table(
    "coop_trainings",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("training_id", String(36), primary_key=True),
    Column("kecamatan_code", String(20), nullable=False),
    Column("title", String(200), nullable=False),
    Column("topic", String(100), nullable=False),
    Column("participants", Integer, nullable=False),
    Column("completed_at", UtcDateTime, nullable=False),
)

# --- read model: stock --------------------------------------------------------------------------

stock_items = Table(
    "stock_items",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("commodity", String(50), primary_key=True),
    Column("kecamatan_code", String(20), nullable=False, index=True),
    Column("unit", String(20)),
    Column("on_hand_milli", BigInteger, nullable=False, server_default=text("0")),
    Column("on_hand_at", UtcDateTime),
    Column("last_sale_at", UtcDateTime),
    Column("stalled", Boolean, nullable=False, server_default=false()),
    Column("stalled_since", UtcDateTime),
    Column("stalled_changed_at", UtcDateTime),
    Column("stalled_on_hand_milli", BigInteger),
    Column("stalled_value", BigInteger, nullable=False, server_default=text("0")),
    Column("stalled_days_since_sale", Integer),
    Column("stalled_last_sale_at", UtcDateTime),
    Column("stalled_unit_cost", BigInteger),
    Column("low", Boolean, nullable=False, server_default=false()),
    Column("low_since", UtcDateTime),
    Column("low_changed_at", UtcDateTime),
    Column("stockout", Boolean, nullable=False, server_default=false()),
    Column("stockout_since", UtcDateTime),
    Column("stockout_changed_at", UtcDateTime),
)
# The stalled list reads only the stalled rows.
Index(
    "ix_stock_items_stalled",
    stock_items.c.kecamatan_code,
    postgresql_where=stock_items.c.stalled,
    sqlite_where=stock_items.c.stalled,
)

stalled_episodes = Table(
    "stalled_episodes",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("commodity", String(50), primary_key=True),
    Column("started_at", UtcDateTime, primary_key=True),
    Column("kecamatan_code", String(20), nullable=False, index=True),
    Column("value", BigInteger, nullable=False),
    Column("ended_at", UtcDateTime),
)

coop_sales_weekly = Table(
    "coop_sales_weekly",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("commodity", String(50), primary_key=True),
    Column("week_start", Date, primary_key=True),
    Column("quantity_milli", BigInteger, nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("transactions", Integer, nullable=False),
)

# Weekly sales rolled up per (kecamatan | ALL) × (commodity | ALL), so a chart is a handful of rows
# whatever the number of cooperatives.
sales_weekly = Table(
    "sales_weekly",
    metadata,
    Column("scope", String(20), primary_key=True),
    Column("commodity", String(50), primary_key=True),
    Column("week_start", Date, primary_key=True),
    Column("quantity_milli", BigInteger, nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("transactions", Integer, nullable=False),
)

price_violations = Table(
    "price_violations",
    metadata,
    Column("movement_id", String(64), primary_key=True),
    Column("cooperative_id", String(36), nullable=False, index=True),
    Column("kecamatan_code", String(20), nullable=False, index=True),
    Column("commodity", String(50), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("quantity_milli", BigInteger, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    Column("price_ceiling", BigInteger, nullable=False),
    Column("excess", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False, index=True),
)

# --- read model: needs --------------------------------------------------------------------------

needs = Table(
    "needs",
    metadata,
    Column("need_id", String(36), primary_key=True),
    Column("cooperative_id", String(36), nullable=False, index=True),
    Column("kecamatan_code", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("commodity", String(50)),
    Column("description", Text),
    Column("status", String(20), nullable=False, index=True),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("status_changed_at", UtcDateTime),
    Column("first_response_at", UtcDateTime),
    Column("response_seconds", BigInteger),
    Column("closed_at", UtcDateTime),
)
Index("ix_needs_kecamatan_response", needs.c.kecamatan_code, needs.c.response_seconds)

# --- derived figures ----------------------------------------------------------------------------

cooperative_health = Table(
    "cooperative_health",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("kecamatan_code", String(20), nullable=False, index=True),
    Column("score", Float, nullable=False),
    Column("level", String(20), nullable=False),
    Column("factors", JSON, nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
    Column("level_since", UtcDateTime, nullable=False),
)

kecamatan_figures = Table(
    "kecamatan_figures",
    metadata,
    Column("kecamatan_code", String(20), primary_key=True),  # ALL = the whole city
    Column("cooperatives", Integer, nullable=False),
    Column("aktif", Integer, nullable=False),
    Column("kurang_aktif", Integer, nullable=False),
    Column("tidak_aktif", Integer, nullable=False),
    Column("needs_open", Integer, nullable=False),
    Column("needs_unanswered", Integer, nullable=False),
    Column("needs_responded", Integer, nullable=False),
    Column("median_response_seconds", Float),
    Column("stalled_items", Integer, nullable=False),
    Column("stalled_value", BigInteger, nullable=False),
    Column("low_items", Integer, nullable=False),
    Column("stockout_items", Integer, nullable=False),
    Column("reports_period", String(7)),
    Column("reports_expected", Integer, nullable=False),
    Column("reports_submitted", Integer, nullable=False),
    Column("reports_on_time", Integer, nullable=False),
    Column("refreshed_at", UtcDateTime, nullable=False),
)

# Marks of what the refresher must recompute: kind "cooperative" (its health) or "kecamatan" (its row).
# Append-only on purpose: several consumer queues mark the same keys concurrently, and plain inserts
# never wait on each other where upserts of one key would (and could deadlock). The refresher takes
# a key with all its marks up to a snapshot `seq`, and recomputes each key once however often marked.
refresh_queue = Table(
    "refresh_queue",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("key", String(64), nullable=False),
)
Index("ix_refresh_queue_kind_key", refresh_queue.c.kind, refresh_queue.c.key)

# The refresher's lease, one row (written by the migration) shared by every replica. Each refresher
# transaction locks the row first (FOR UPDATE), so the derived figures are written by one transaction
# at a time across replicas; the holder and expiry say which replica runs the scheduled work (the
# refresh loop, the health recompute, the overdue scan) until it stops renewing, then another takes
# over. `expires_at` is wall-clock seconds since the epoch of the holder's machine.
refresh_lease = Table(
    "refresh_lease",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# --- reporting's own records --------------------------------------------------------------------

monthly_reports = Table(
    "monthly_reports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cooperative_id", String(36), nullable=False),
    Column("kecamatan_code", String(20), nullable=False),
    Column("period", String(7), nullable=False),
    Column("omzet", BigInteger, nullable=False),
    Column("transactions", Integer, nullable=False),
    Column("members", Integer, nullable=False),
    Column("simpanan", BigInteger),
    Column("notes", Text),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("submitted_by", String(64)),
    Column("due_date", Date, nullable=False),
    Column("on_time", Boolean, nullable=False),
    # One report per cooperative and period: the database refuses a second even under a race.
    UniqueConstraint("cooperative_id", "period", name="uq_monthly_reports_cooperative_period"),
)
Index("ix_monthly_reports_period_kecamatan", monthly_reports.c.period, monthly_reports.c.kecamatan_code)

report_overdue = Table(
    "report_overdue",
    metadata,
    Column("cooperative_id", String(36), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("kecamatan_code", String(20), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("detected_at", UtcDateTime, nullable=False),
)

# Rebuilt from the event store: everything projected from events and everything derived from that.
PROJECTION_TABLES: tuple[Table, ...] = (
    known_cooperatives,
    cooperative_facts,
    coop_sales_daily,
    coop_members_daily,
    coop_trainings,
    stock_items,
    stalled_episodes,
    coop_sales_weekly,
    sales_weekly,
    price_violations,
    needs,
    kecamatan_figures,
    refresh_queue,
)
