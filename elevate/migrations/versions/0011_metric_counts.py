"""Pre-aggregated metrics: /metrics reads counters instead of aggregating every request

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from elevate import counters

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_counts",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "label"),
    )
    counters.rebuild(op.get_bind())  # what the rows already say


def downgrade() -> None:
    op.drop_table("metric_counts")
