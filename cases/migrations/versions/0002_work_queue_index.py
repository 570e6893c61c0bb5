"""a sector's work queue, the most urgent first

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CaseStore.work_queue: one sector's open cases by resolution deadline; the
    # index gives them in order, so a page reads a page, not the sector.
    op.create_index("ix_cases_tenant_sector_resolution_due", "cases", ["tenant", "sector", "resolution_due"])


def downgrade() -> None:
    op.drop_index("ix_cases_tenant_sector_resolution_due", table_name="cases")
