"""The case tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

The migrations in ``migrations/versions`` create exactly these tables;
``tests/component/test_case_store.py`` checks that the migrated database and
this metadata agree (Alembic's autogenerate comparison finds no difference).

Times are stored in UTC: ``timestamp with time zone`` on PostgreSQL, and on
SQLite (which has no time type) naive UTC, made aware again when read.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        TypeDecorator)

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# SQLite only makes "INTEGER PRIMARY KEY" an auto-incremented row id.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; a naive datetime is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: case times must carry a time zone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


cases = Table(
    "cases", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reference", String(12), nullable=False, unique=True),
    Column("tenant", String(40), nullable=False),
    Column("sector", String(40), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("status", String(24), nullable=False),
    Column("subject", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("first_response_due", UtcDateTime, nullable=False),
    Column("resolution_due", UtcDateTime, nullable=False),
    Column("first_response_at", UtcDateTime),
    Column("resolved_at", UtcDateTime),
    Column("closed_at", UtcDateTime),
    Column("assignee", String(64)),
    Column("program", String(40)),
    Column("governorate", String(40)),
    Column("call_id", String(64)),
    Column("national_id_hash", String(64)),
    Column("number_hash", String(64)),
    Column("number_encrypted", Text),
    Column("reopened_count", Integer, nullable=False, default=0),
    # Deadlines found passed, comma-separated: first_response, resolution.
    Column("escalated", String(40), nullable=False, default=""),
    Column("version", Integer, nullable=False, default=1),
    # The service check of the latest resolution (cases.model): calls made,
    # the next one due, how it ended.
    Column("check_attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("check_due_at", UtcDateTime),
    Column("check_result", String(12)),
    Index(None, "tenant", "national_id_hash"),
    Index(None, "tenant", "number_hash"),
    Index(None, "tenant", "sector", "status"),
    Index(None, "tenant", "created_at"),
    Index(None, "status", "resolution_due"),
    Index(None, "tenant", "sector", "resolution_due"),
    Index(None, "status", "check_result", "resolved_at"),
)

case_events = Table(
    "case_events", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(24), nullable=False),
    Column("from_status", String(24)),
    Column("to_status", String(24), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("details", Text, nullable=False, default=""),
    Index(None, "case_id", "id"),
)
