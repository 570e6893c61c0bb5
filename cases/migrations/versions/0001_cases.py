"""cases and their audit trail

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("reference", sa.String(12), nullable=False),
        sa.Column("tenant", sa.String(40), nullable=False),
        sa.Column("sector", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.Column("first_response_due", Time, nullable=False),
        sa.Column("resolution_due", Time, nullable=False),
        sa.Column("first_response_at", Time),
        sa.Column("resolved_at", Time),
        sa.Column("closed_at", Time),
        sa.Column("assignee", sa.String(64)),
        sa.Column("program", sa.String(40)),
        sa.Column("governorate", sa.String(40)),
        sa.Column("call_id", sa.String(64)),
        sa.Column("national_id_hash", sa.String(64)),
        sa.Column("number_hash", sa.String(64)),
        sa.Column("number_encrypted", sa.Text),
        sa.Column("reopened_count", sa.Integer, nullable=False),
        sa.Column("escalated", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("reference", name="uq_cases_reference"),
    )
    op.create_index("ix_cases_tenant_national_id_hash", "cases", ["tenant", "national_id_hash"])
    op.create_index("ix_cases_tenant_number_hash", "cases", ["tenant", "number_hash"])
    op.create_index("ix_cases_tenant_sector_status", "cases", ["tenant", "sector", "status"])
    op.create_index("ix_cases_tenant_created_at", "cases", ["tenant", "created_at"])
    op.create_index("ix_cases_status_resolution_due", "cases", ["status", "resolution_due"])
    op.create_table(
        "case_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(24)),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_events"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_events_case_id_cases", ondelete="CASCADE"),
    )
    op.create_index("ix_case_events_case_id_id", "case_events", ["case_id", "id"])


def downgrade() -> None:
    op.drop_table("case_events")
    op.drop_table("cases")
