"""Ending live sessions (Identity Center): when access ends, a deny on the user's older tokens
goes into the permission set's inline policy, is provisioned, and leaves after the keep time
with the policy exactly as it was found."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from activities.sessions import SessionActivities
from elevate.contracts import session_guard_workflow_id
from elevate.providers.session_policy import SID_PREFIX
from tests.workflows.conftest import TASK_QUEUE, new_request, provider_for
from tests.workflows.test_lifecycle import actions, assigned, row
from tests.workflows.test_overlaps import approved, until

THEIRS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NoBucketDeletes",
                "Effect": "Deny",
                "Action": "s3:DeleteBucket",
                "Resource": "*",
            }
        ],
    },
    indent=4,
)


def inline(sso, org, pset: str) -> str:
    got = sso.get_inline_policy_for_permission_set(
        InstanceArn=org.instance_arn, PermissionSetArn=org.permission_sets[pset]
    )
    return got.get("InlinePolicy") or ""


class Recording:
    """moto's sso-admin, noting each provisioning (moto records no target account for it)."""

    def __init__(self, sso) -> None:
        self._sso, self.provisioned = sso, []

    def provision_permission_set(self, **kw):
        self.provisioned.append((kw["PermissionSetArn"], kw["TargetId"]))
        return self._sso.provision_permission_set(**kw)

    def __getattr__(self, name):
        return getattr(self._sso, name)


async def test_ended_access_ends_sessions_then_the_policy_is_as_it_was(
    env, engine, org, sso, worker_for
):
    pset, user = "AdministratorAccess", "erin@example.com"
    arn = org.permission_sets[pset]
    sso.put_inline_policy_to_permission_set(
        InstanceArn=org.instance_arn, PermissionSetArn=arn, InlinePolicy=THEIRS
    )
    recording = Recording(sso)
    sessions = SessionActivities(
        provider_for(recording), env.client, TASK_QUEUE, keep=timedelta(hours=1), poll_interval=0.01
    )
    inp = new_request(
        engine, org, duration=timedelta(hours=2), account="prod", permission_set=pset, username=user
    )
    async with worker_for(sessions=sessions):
        assert await (await approved(env, inp)).result() == "ended"
        guard = env.client.get_workflow_handle(session_guard_workflow_id(arn))
        for _ in range(300):
            if SID_PREFIX in inline(sso, org, pset) and "sessions_ended" in actions(
                engine, inp.request_id
            ):
                break
            await asyncio.sleep(0.02)
        policy = json.loads(inline(sso, org, pset))
        theirs = [s for s in policy["Statement"] if not s["Sid"].startswith(SID_PREFIX)]
        ours = [s for s in policy["Statement"] if s["Sid"].startswith(SID_PREFIX)]
        assert theirs == json.loads(THEIRS)["Statement"]  # what elevate did not write is intact
        assert len(ours) == 1
        deny = ours[0]
        assert (deny["Effect"], deny["Action"], deny["Resource"]) == ("Deny", "*", "*")
        assert deny["Condition"]["StringLike"] == {"aws:userid": f"*:{user}"}
        assert deny["Condition"]["StringEquals"] == {"aws:PrincipalAccount": org.accounts["prod"]}
        before = datetime.fromisoformat(deny["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
        assert abs(before - row(engine, inp.request_id).revoked_at) < timedelta(seconds=5)
        assert recording.provisioned == [(arn, org.accounts["prod"])]
        assert "sessions_ended" in actions(engine, inp.request_id)

        clock = new_request(engine, org, account="sandbox", approval_timeout=timedelta(minutes=61))
        waiting = await env.client.start_workflow(
            "AccessRequestWorkflow",
            clock,
            id=f"access-request-{clock.request_id}",
            task_queue=TASK_QUEUE,
        )
        assert await waiting.result() == "expired"  # the hour the deny is kept has passed
        await asyncio.wait_for(guard.result(), 30)
        assert inline(sso, org, pset) == THEIRS  # byte for byte
        assert recording.provisioned[-1] == (arn, org.accounts["prod"])  # provisioned again

        again = new_request(
            engine,
            org,
            duration=timedelta(hours=1),
            account="prod",
            permission_set=pset,
            username=user,
        )
        handle = await approved(env, again)  # the same user later: a grant works as before
        await until(engine, again.request_id, "active")
        assert assigned(sso, again)
        assert await handle.result() == "ended"
        # That end wrote a deny of its own: let its hour pass too, so no writer outlives us.
        clock = new_request(engine, org, account="sandbox", approval_timeout=timedelta(minutes=61))
        waiting = await env.client.start_workflow(
            "AccessRequestWorkflow",
            clock,
            id=f"access-request-{clock.request_id}",
            task_queue=TASK_QUEUE,
        )
        assert await waiting.result() == "expired"
        await asyncio.wait_for(guard.result(), 30)
        assert inline(sso, org, pset) == THEIRS
    sso.delete_inline_policy_from_permission_set(InstanceArn=org.instance_arn, PermissionSetArn=arn)
