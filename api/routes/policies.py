"""/v1/policies/{eligibility,approval}: admins write, auditors read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from api.deps import Admin, AdminOrAuditor, CatalogDep, SessionDep
from api.pagination import Cursor, Limit
from api.services import policies as service
from elevate.policy_schema import ApprovalBody, EligibilityBody, PolicyName

router = APIRouter(prefix="/v1/policies", tags=["policies"])
Kind = Literal["eligibility", "approval"]


@router.get("/{kind}")
def list_policies(
    kind: Kind, _: AdminOrAuditor, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    return service.list_policies(session, kind, limit, cursor)


@router.get("/{kind}/{name}")
def get_policy(kind: Kind, name: str, _: AdminOrAuditor, session: SessionDep) -> Any:
    return service.get_policy(session, kind, name)


@router.put("/eligibility/{name}")
def put_eligibility(
    name: PolicyName,
    body: EligibilityBody,
    user: Admin,
    session: SessionDep,
    catalog: CatalogDep,
    response: Response,
) -> Any:
    stored, created = service.put_policy(session, user, "eligibility", name, body, catalog)
    response.status_code = 201 if created else 200
    return stored


@router.put("/approval/{name}")
def put_approval(
    name: PolicyName,
    body: ApprovalBody,
    user: Admin,
    session: SessionDep,
    catalog: CatalogDep,
    response: Response,
) -> Any:
    stored, created = service.put_policy(session, user, "approval", name, body, catalog)
    response.status_code = 201 if created else 200
    return stored


@router.delete("/{kind}/{name}", status_code=204)
def delete_policy(
    kind: Kind,
    name: str,
    user: Admin,
    session: SessionDep,
    allow_bootstrap: Annotated[
        bool, Query(description="may delete the last policy of its kind (bootstrap returns)")
    ] = False,
) -> Response:
    service.delete_policy(session, user, kind, name, allow_bootstrap)
    return Response(status_code=204)
