"""audit events are append-only: PostgreSQL refuses UPDATE, DELETE and TRUNCATE

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

SQLite gets no guard: anyone who can write the database file can also drop a trigger, so one
would add nothing. There, as everywhere, `elevate.audit.verify` detects what was changed.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_FUNCTION = "elevate_audit_events_append_only"
_ROW_TRIGGER = "audit_events_no_update_delete"
_TRUNCATE_TRIGGER = "audit_events_no_truncate"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
                USING HINT = 'audit events are never changed or removed; append a new one';
        END;
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {_ROW_TRIGGER} BEFORE UPDATE OR DELETE ON audit_events "
        f"FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()"
    )
    op.execute(
        f"CREATE TRIGGER {_TRUNCATE_TRIGGER} BEFORE TRUNCATE ON audit_events "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {_TRUNCATE_TRIGGER} ON audit_events")
    op.execute(f"DROP TRIGGER IF EXISTS {_ROW_TRIGGER} ON audit_events")
    op.execute(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")
