"""reconcile runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

import elevate.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("started_at", elevate.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", elevate.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reconcile_runs_started_at", "reconcile_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_reconcile_runs_started_at", table_name="reconcile_runs")
    op.drop_table("reconcile_runs")
