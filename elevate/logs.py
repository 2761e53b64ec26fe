"""Logging for the API and the worker: JSON lines for machines, plain text on a terminal.

Every record carries the request id and workflow id when known: from the running activity or
workflow, or from the HTTP request being served. Nothing here logs tokens or headers.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter
from temporalio import activity, workflow

from elevate.settings import Settings

# Set by the API for the request it serves (see api/main.py).
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

_WORKFLOW_PREFIX = "access-request-"
_PLAIN = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def request_id_of(workflow_id: str | None) -> str | None:
    if workflow_id and workflow_id.startswith(_WORKFLOW_PREFIX):
        return workflow_id.removeprefix(_WORKFLOW_PREFIX)
    return None


class ContextFilter(logging.Filter):
    """Adds `request_id` and `workflow_id` (or "-") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        workflow_id = _workflow_id()
        request_id = current_request_id.get() or request_id_of(workflow_id)
        record.request_id = getattr(record, "request_id", None) or request_id or "-"
        record.workflow_id = getattr(record, "workflow_id", None) or workflow_id or "-"
        return True


def _workflow_id() -> str | None:
    if activity.in_activity():
        return activity.info().workflow_id
    if workflow.in_workflow():
        return workflow.info().workflow_id
    return None


def configure(settings: Settings) -> None:
    """Replace the root handlers with one that writes to stderr in the configured format."""
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "plain" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s %(request_id)s %(workflow_id)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="at",  # ISO 8601 in UTC
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_PLAIN))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


_REQUEST_PATH = re.compile(r"^/v1/requests/([^/]+)")


def request_id_from_path(path: str) -> str | None:
    match = _REQUEST_PATH.match(path)
    return match.group(1) if match else None
