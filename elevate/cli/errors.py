"""What can go wrong around a command (credentials, endpoints, configuration, AWS refusing), as
one line a person can act on and the README's exit code, instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from elevate.providers.aws import NETWORK_ERRORS, ErrorKind, classify, error_message
from elevate.providers.iam_catalog import CatalogError
from elevate.settings import MissingMessageKey

REFUSED, USAGE, UNREACHABLE = 1, 2, 3  # the README's exit codes
DEV_ENV = "set -a; . .elevate/env; set +a"


@dataclass(frozen=True)
class Failure:
    code: int
    message: str
    hint: str

    def line(self) -> str:
        return f"elevate: {self.message}; hint: {self.hint}"


def explain(err: BaseException) -> Failure | None:
    """The failure behind `err` (or what caused it), or None when it is a bug to show in full."""
    for cause in _chain(err):
        for kind, make in _EXPLAINERS:
            if isinstance(cause, kind):
                failure = make(cause)
                if failure is not None:
                    return failure
    return None


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _no_credentials(_: BaseException) -> Failure:
    return Failure(
        USAGE,
        "no AWS credentials found",
        "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; "
        f"for the dev stack's emulated AWS run: {DEV_ENV}",
    )


def _aws_unreachable(err: BaseException) -> Failure:
    where = getattr(err, "kwargs", {}).get("endpoint_url", "its endpoint")
    return Failure(
        UNREACHABLE,
        f"cannot reach AWS at {where}",
        "check AWS_ENDPOINT_URL and the network; the dev stack must be running for its endpoint",
    )


def _aws_refused(err: BaseException) -> Failure:
    assert isinstance(err, ClientError)
    busy = classify(err) is ErrorKind.RETRY
    return Failure(
        UNREACHABLE if busy else REFUSED,
        f"AWS refused {err.operation_name}: {error_message(err)}",
        "retry shortly"
        if busy
        else "check that these credentials may call it (README: Running against real AWS)",
    )


def _bad_settings(err: BaseException) -> Failure | None:
    assert isinstance(err, ValidationError)
    if err.title != "Settings":
        return None
    wrong = "; ".join(
        f"ELEVATE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in err.errors()
    )
    return Failure(USAGE, f"bad configuration: {wrong}", "see the README's Configuration table")


def _bad_catalog(err: BaseException) -> Failure:
    if isinstance(err, MissingMessageKey):
        return Failure(USAGE, str(err), "set ELEVATE_MESSAGE_KEY (the same on the API and workers)")
    return Failure(USAGE, str(err), "fix the file ELEVATE_IAM_CATALOG names, or what AWS holds")


def _database_down(err: BaseException) -> Failure:
    assert isinstance(err, OperationalError)
    reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
    return Failure(
        UNREACHABLE,
        f"the database is not answering: {reason}",
        "check ELEVATE_DATABASE_URL and that the database server is running",
    )


def _api_unreachable(err: BaseException) -> Failure:
    assert isinstance(err, httpx.TransportError)
    try:
        where = str(err.request.url.copy_with(path="/", query=None))
    except RuntimeError:  # no request attached
        where = "the API"
    return Failure(UNREACHABLE, f"cannot reach {where}: {err}", "check --url or ELEVATE_URL")


def _temporal_unreachable(err: BaseException) -> Failure | None:
    if not str(err).startswith("Failed client connect"):
        return None
    return Failure(
        UNREACHABLE,
        "cannot reach Temporal: " + " ".join(str(err).split())[:300],
        "check ELEVATE_TEMPORAL_ADDRESS (and its TLS or API key) and that Temporal is running",
    )


def _refused_connection(err: BaseException) -> Failure:
    return Failure(UNREACHABLE, f"cannot connect: {err}", "is the server it needs running?")


_EXPLAINERS: list[
    tuple[type[BaseException] | tuple[type[BaseException], ...], Callable[..., Failure | None]]
] = [
    ((NoCredentialsError, PartialCredentialsError), _no_credentials),
    (NETWORK_ERRORS, _aws_unreachable),
    (ClientError, _aws_refused),
    (ValidationError, _bad_settings),
    (CatalogError, _bad_catalog),
    (MissingMessageKey, _bad_catalog),
    (OperationalError, _database_down),
    (httpx.TransportError, _api_unreachable),
    (RuntimeError, _temporal_unreachable),
    (ConnectionError, _refused_connection),
]
