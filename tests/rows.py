"""A request row written straight to the database, as the API would have written it."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from elevate.models import AccessRequest


def insert_request(engine: sa.Engine, **fields: Any) -> str:
    """Insert a pending request for ReadOnly on prod; `fields` override any column."""
    rid = str(fields.pop("id", uuid.uuid4()))
    row: dict[str, Any] = {
        "requester": "alice@example.com",
        "principal_id": "p-1",
        "account_id": "111122223333",
        "account_name": "prod",
        "permission_set": "ReadOnly",
        "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1/ps-1",
        "instance_arn": "arn:aws:sso:::instance/ssoins-1",
        "duration_seconds": 3600,
        "justification": "incident 42",
        "status": "pending_approval",
        "approvers": [{"type": "group", "name": "elevate-approvers"}],
        "workflow_id": f"access-request-{rid}",
    }
    with Session(engine) as session:
        session.add(AccessRequest(id=rid, **{**row, **fields}))
        session.commit()
    return rid
