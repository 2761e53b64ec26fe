"""A check for `schemathesis run` in test_openapi.py, loaded through SCHEMATHESIS_HOOKS.

positive_data_acceptance wants every schema-valid request accepted, but some refusals depend on
state no static schema can hold: the duration limits of the settings, the accounts of the
organization, the cursors the API issued, the clock. schemathesis.toml lets a positive case be
answered 422; this check narrows that to exactly those refusals, so a schema that allows what
the API's own request validation refuses (error `invalid`, or a 400) still fails the run.
"""

from __future__ import annotations

from typing import Any

import schemathesis

STATEFUL_REFUSALS = {
    "invalid_cursor",  # opaque: only the API's own cursors are accepted
    "invalid_duration",  # between the settings' minimum and the policy's maximum
    "invalid_setting",  # min_duration against the stored max_duration
    "start_in_past",
    "start_too_late",
    "unknown_account",  # the organization's accounts, OUs and permission sets
    "unknown_ou",
    "unknown_permission_set",
    "unknown_principal",
    "no_approver",  # the stored policies
    "ticket_required",
    "comment_required",  # the comment_required setting
}


# Canonical usernames (API.md "Identity"): NFKC form, no control or format characters, no
# whitespace at either end. JSON Schema's patterns cannot state NFKC, so these refusals of a
# schema-valid name are expected too (elevate/identity.py says them, and only them, this way).
USERNAME_REFUSAL = "a username must "


@schemathesis.check
def refused_only_for_state(ctx: Any, response: Any, case: Any) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if response.status_code == 400:
        raise AssertionError("a schema-valid body was refused as malformed (400)")
    if response.status_code == 422:
        body = response.json()
        if USERNAME_REFUSAL in body.get("detail", ""):
            return
        if body.get("error") not in STATEFUL_REFUSALS:
            raise AssertionError(f"the schema allows what the API refuses: {response.text}")
