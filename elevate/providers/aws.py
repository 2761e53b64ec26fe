"""boto3 clients (one per process) and the single place where AWS error codes are classified."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

# botocore's own retry (standard mode: exponential backoff with jitter) absorbs short bursts of
# throttling; what outlasts it is retried by Temporal with its own, longer backoff.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=5,
    read_timeout=20,
)


# Called with (service, operation, error code) for every failed AWS call, retried ones included;
# the worker points it at a Prometheus counter.
ErrorSink = Callable[[str, str, str], None]
_error_sinks: list[ErrorSink] = []


def on_error(sink: ErrorSink) -> None:
    _error_sinks.append(sink)


@cache
def client(service: str, region: str) -> Any:
    """A boto3 client; building one is expensive, so each process keeps one per service."""
    made = boto3.session.Session().client(service, region_name=region, config=CLIENT_CONFIG)  # type: ignore[call-overload]
    watch_errors(made, service)
    return made


def watch_errors(made: Any, service: str) -> None:
    """Report every failed attempt of a client's calls to the error sinks, botocore's own
    retries included (`response-received` fires once per HTTP attempt)."""

    def received(
        parsed_response: dict[str, Any] | None,
        exception: Exception | None,
        context: dict[str, Any],
        event_name: str,
        **_: Any,
    ) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if exception is not None:
            _report(service, operation, type(exception).__name__)
        elif parsed_response and (code := parsed_response.get("Error", {}).get("Code")):
            _report(service, operation, str(code))

    made.meta.events.register("response-received", received)


def _report(service: str, operation: str, code: str) -> None:
    for sink in _error_sinks:
        sink(service, operation, code)


class ErrorKind(Enum):
    RETRY = "retry"
    CONFLICT = "conflict"
    PERMANENT = "permanent"


_RETRY_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerException",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_CONFLICT_CODES = frozenset({"ConflictException"})
NETWORK_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def classify(err: ClientError) -> ErrorKind:
    """Throttling, 5xx and timeouts retry; conflicts are idempotent; the rest is permanent."""
    code = err.response.get("Error", {}).get("Code", "")
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _CONFLICT_CODES:
        return ErrorKind.CONFLICT
    if code in _RETRY_CODES or status >= 500:
        return ErrorKind.RETRY
    return ErrorKind.PERMANENT


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", "Unknown"))


def error_message(err: ClientError) -> str:
    info = err.response.get("Error", {})
    return f"{info.get('Code', 'Unknown')}: {info.get('Message', str(err))}"
