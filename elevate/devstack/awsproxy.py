"""HTTP proxies in front of moto that answer some AWS calls as AWS does when it is unwell.

`FaultProxy` (the fault tests): a seeded share of the sso-admin calls are throttled or fail.
`BudgetProxy` (the benchmarks): a token bucket throttles what is above a rate, and every call is
counted per second and per operation (X-Amz-Target, such as
`SWBExternalService.DeleteAccountAssignment`).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import httpx

_HOP = {"host", "content-length", "transfer-encoding", "connection"}
SSO_ADMIN = "SWBExternalService."  # the X-Amz-Target prefix of IAM Identity Center's calls
Answer = tuple[int, str, str]  # status, AWS error code, message


class AwsProxy:
    """Forwards every call to `upstream` unless `refuse` answers it with an AWS error.
    Serves from a thread of its own from construction; `close` (or the `with` block) stops it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._http = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def refuse(self, target: str) -> Answer | None:
        """The error to answer instead of forwarding, if any; `target` is X-Amz-Target."""
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                refusal = proxy.refuse(self.headers.get("x-amz-target", ""))
                if refusal is not None:
                    status, code, message = refusal
                    payload = json.dumps({"__type": code, "message": message}).encode()
                    head = {"content-type": "application/x-amz-json-1.1", "x-amzn-errortype": code}
                    self._reply(status, head, payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                resp = proxy._http.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
                head = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
                self._reply(resp.status_code, head, resp.content)

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        return Handler


class FaultProxy(AwsProxy):
    """Of the sso-admin calls, `throttle` answer ThrottlingException and `fail` a 500, chosen by
    a seeded random so a run is repeatable; `injected` counts them by code."""

    def __init__(self, upstream: str, throttle: float, fail: float, seed: int = 7) -> None:
        self.throttle, self.fail = throttle, fail
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        super().__init__(upstream)

    def refuse(self, target: str) -> Answer | None:
        if not target.startswith(SSO_ADMIN):
            return None  # only IAM Identity Center's sso-admin calls are disturbed
        with self._lock:
            roll = self._random.random()
            if roll < self.throttle:
                code, status = "ThrottlingException", 400
            elif roll < self.throttle + self.fail:
                code, status = "InternalServerException", 500
            else:
                return None
            self.injected[code] += 1
        return status, code, "injected by the test proxy"


class BudgetProxy(AwsProxy):
    """A token bucket at `rate` calls/s (one second of burst; `math.inf`: none) answers
    ThrottlingException to what is above it; counts what it let through and what it refused."""

    def __init__(self, upstream: str, rate: float) -> None:
        self.rate = rate
        self.accepted: Counter[int] = Counter()  # per second (epoch)
        self.operations: Counter[str] = Counter()  # accepted calls
        self.refused: Counter[str] = Counter()  # throttled calls
        self.throttled = 0
        self._tokens, self._at = rate, time.monotonic()
        self._lock = threading.Lock()
        super().__init__(upstream)

    def refuse(self, target: str) -> Answer | None:
        return None if self._admit(target) else (400, "ThrottlingException", "Rate exceeded")

    def _admit(self, operation: str = "") -> bool:
        with self._lock:
            if not math.isinf(self.rate):
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens < 1:
                    self.throttled += 1
                    self.refused[operation] += 1
                    return False
                self._tokens -= 1
            self.accepted[int(time.time())] += 1
            self.operations[operation] += 1
            return True

    def calls(self) -> tuple[Counter[str], Counter[str]]:
        """Copies of the accepted and the throttled calls per operation, to subtract earlier
        copies from."""
        with self._lock:
            return Counter(self.operations), Counter(self.refused)

    def max_window(
        self, seconds: int = 10, since: float | None = None, until: float | None = None
    ) -> float:
        """The most calls/s over any `seconds`-long window (within [since, until] if given)."""
        with self._lock:
            accepted = Counter(
                {
                    t: n
                    for t, n in self.accepted.items()
                    if (since is None or t >= int(since)) and (until is None or t <= until)
                }
            )
        if not accepted:
            return 0.0
        first, last = min(accepted), max(accepted)
        sums = (
            sum(accepted[t] for t in range(s, s + seconds))
            for s in range(first, max(first, last - seconds + 1) + 1)
        )
        return max(sums) / seconds
