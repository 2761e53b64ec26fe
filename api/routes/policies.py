"""/v1/policies/{eligibility,approval}: admins write, auditors read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import Admin, AdminOrAuditor, CatalogDep, SessionDep
from api.errors import responses
from api.pagination import Cursor, Limit
from api.services import policies as service
from elevate.policy_schema import ApprovalBody, EligibilityBody, PolicyName

router = APIRouter(prefix="/v1/policies", tags=["policies"])
_PUT: dict[int | str, dict[str, Any]] = {
    200: {"description": "replaced (or unchanged)"},
    201: {"description": "created"},
}


@router.put("/eligibility/{name}", responses=_PUT)
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


@router.put("/approval/{name}", responses=_PUT)
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


def _reads_and_delete(kind: str) -> None:
    """GET (list, one) and DELETE of a kind: one path per kind, so that the document lists every
    method a policy's URL answers (a shared /{kind}/{name} would hide the PUTs)."""

    def list_policies(
        _: AdminOrAuditor, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
    ) -> Any:
        return service.list_policies(session, kind, limit, cursor)

    def get_policy(name: str, _: AdminOrAuditor, session: SessionDep) -> Any:
        return service.get_policy(session, kind, name)

    def delete_policy(
        name: str,
        user: Admin,
        session: SessionDep,
        allow_bootstrap: Annotated[
            bool, Query(description="may delete the last policy of its kind (bootstrap returns)")
        ] = False,
    ) -> Response:
        service.delete_policy(session, user, kind, name, allow_bootstrap)
        return Response(status_code=204)

    one = f"/{kind}/{{name}}"
    router.add_api_route(f"/{kind}", list_policies, name=f"list_{kind}_policies")
    router.add_api_route(one, get_policy, name=f"get_{kind}_policy", responses=responses(404))
    router.add_api_route(
        one,
        delete_policy,
        methods=["DELETE"],
        status_code=204,
        name=f"delete_{kind}_policy",
        responses=responses(404, 409),
    )


for _kind in ("eligibility", "approval"):
    _reads_and_delete(_kind)
