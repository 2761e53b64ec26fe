"""/v1/slack/interactions: Slack's interactivity request URL (API.md "Slack approvals")."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request, Response

from api.deps import SettingsDep
from api.errors import responses
from api.services import slack as service

router = APIRouter(prefix="/v1/slack", tags=["slack"])
_FORM = {
    "type": "object",
    "required": ["payload"],
    "properties": {"payload": {"type": "string", "description": "the interaction, as JSON"}},
}


@router.post(
    "/interactions",
    status_code=200,
    summary="A button press or modal submission from Slack, signed with the signing secret",
    # 400: no Slack payload in the body; 401: the signature is missing, wrong or stale;
    # 404: Slack approvals are not configured.
    responses=responses(400, 401, 404),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _FORM}},
        }
    },
)
async def interactions(
    request: Request, background: BackgroundTasks, settings: SettingsDep
) -> Response:
    # Slack wants an answer within 3 s: the decision runs after it, in a worker thread.
    click = service.parse(settings, request.headers, await request.body())
    if click is not None:
        background.add_task(service.handle, service.slack_app(request.app.state), click)
    return Response(status_code=200)
