"""canonical usernames in stored rows (requesters, deciders, approvals, policy user principals)

Rows written before usernames were canonical may hold `Carol@Example.com` beside
`carol@example.com`; folded here so every comparison in SQL is exact. Approvals and idempotency
keys that fold to a duplicate keep their oldest row. Audit events are left as written: the hash
chain covers them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from elevate.identity import fold

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_requests = sa.table(
    "access_requests",
    sa.column("id", sa.String),
    sa.column("requester", sa.String),
    sa.column("decided_by", sa.String),
    sa.column("revoked_by", sa.String),
    sa.column("approvers", sa.JSON),
)
_approvals = sa.table("approvals", sa.column("id", sa.Integer), sa.column("approver", sa.String))
_approvals_rid = sa.table(
    "approvals",
    sa.column("id", sa.Integer),
    sa.column("request_id", sa.String),
    sa.column("approver", sa.String),
)
_keys = sa.table("idempotency_keys", sa.column("username", sa.String), sa.column("key", sa.String))
_policies = sa.table(
    "policies",
    sa.column("kind", sa.String),
    sa.column("name", sa.String),
    sa.column("body", sa.JSON),
)


def _fold_principals(principals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**p, "name": fold(p["name"])} if p.get("type") == "user" else p for p in principals]


def _maybe(name: str | None) -> str | None:
    return fold(name) if name is not None else None


def _requests_rows(conn: sa.Connection) -> None:
    for r in conn.execute(sa.select(_requests)).mappings().all():
        new = {
            "requester": fold(r["requester"]),
            "decided_by": _maybe(r["decided_by"]),
            "revoked_by": _maybe(r["revoked_by"]),
            "approvers": _fold_principals(r["approvers"] or []),
        }
        if any(new[k] != r[k] for k in new):
            conn.execute(sa.update(_requests).where(_requests.c.id == r["id"]).values(**new))


def _approval_rows(conn: sa.Connection) -> None:
    # Duplicates go first, so no rename meets the (request_id, approver) unique constraint.
    keep: dict[tuple[str, str], dict[str, Any]] = {}
    stmt = sa.select(_approvals_rid).order_by(_approvals_rid.c.id)
    for r in conn.execute(stmt).mappings().all():
        key = (r["request_id"], fold(r["approver"]))
        if key in keep:  # a second spelling of a counted approver: never a second person
            conn.execute(sa.delete(_approvals).where(_approvals.c.id == r["id"]))
        else:
            keep[key] = dict(r)
    for (_, folded), r in keep.items():
        if folded != r["approver"]:
            stmt = sa.update(_approvals).where(_approvals.c.id == r["id"]).values(approver=folded)
            conn.execute(stmt)


def _key_rows(conn: sa.Connection) -> None:
    rows = conn.execute(sa.select(_keys)).mappings().all()
    keep: dict[tuple[str, str], dict[str, Any]] = {}
    # A row already canonical wins over the spellings that fold to it.
    for r in sorted(rows, key=lambda r: fold(r["username"]) != r["username"]):
        key = (fold(r["username"]), r["key"])
        match = (_keys.c.username == r["username"]) & (_keys.c.key == r["key"])
        if key in keep:
            conn.execute(sa.delete(_keys).where(match))
        else:
            keep[key] = dict(r)
    for (folded, k), r in keep.items():
        if folded != r["username"]:
            match = (_keys.c.username == r["username"]) & (_keys.c.key == k)
            conn.execute(sa.update(_keys).where(match).values(username=folded))


def _policy_rows(conn: sa.Connection) -> None:
    for r in conn.execute(sa.select(_policies)).mappings().all():
        body = dict(r["body"])
        field = "principals" if r["kind"] == "eligibility" else "approvers"
        body[field] = _fold_principals(body.get(field, []))
        if body != r["body"]:
            match = (_policies.c.kind == r["kind"]) & (_policies.c.name == r["name"])
            conn.execute(sa.update(_policies).where(match).values(body=body))


def upgrade() -> None:
    conn = op.get_bind()
    _requests_rows(conn)
    _approval_rows(conn)
    _key_rows(conn)
    _policy_rows(conn)


def downgrade() -> None:
    """Nothing to undo: folded names are still valid names."""
