"""Indexes for the request list's keyset pages: newest first overall, per requester, per status

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (created_at, id) is the page order; the requester and status prefixes serve the filtered
# lists (own requests, ?awaiting=me over pending_approval) without sorting the whole table.
INDEXES = {
    "ix_access_requests_page": ["created_at", "id"],
    "ix_access_requests_requester_page": ["requester", "created_at", "id"],
    "ix_access_requests_status_page": ["status", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "access_requests", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "access_requests")
