"""the service check: did the citizen get the service?

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch: SQLite cannot add a column with a server default to a table in
    # place on every version; Alembic copies the table there, and simply
    # alters it on PostgreSQL. Existing cases start with no check (0, NULL).
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("check_attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("check_due_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("check_result", sa.String(12)))
    # CaseStore.service_checks_due: the resolved cases whose check has not
    # ended, oldest resolution first.
    op.create_index("ix_cases_status_check_result_resolved_at", "cases", ["status", "check_result", "resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_cases_status_check_result_resolved_at", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("check_result")
        batch.drop_column("check_due_at")
        batch.drop_column("check_attempts")
