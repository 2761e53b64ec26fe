"""The reconciler's sweep progress, kept with each run so the next one resumes from it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reconcile_runs") as batch:
        batch.add_column(sa.Column("sweep", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reconcile_runs") as batch:
        batch.drop_column("sweep")
