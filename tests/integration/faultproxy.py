"""A small HTTP proxy in front of moto that answers some sso-admin calls with AWS errors."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

_HOP = {"host", "content-length", "transfer-encoding", "connection"}


class FaultProxy:
    """Forwards to `upstream`; of the sso-admin calls, `throttle` answer ThrottlingException
    and `fail` a 500, chosen by a seeded random so a run is repeatable."""

    def __init__(self, upstream: str, throttle: float, fail: float, seed: int = 7) -> None:
        self.upstream, self.throttle, self.fail = upstream, throttle, fail
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fault(self, target: str) -> tuple[int, str] | None:
        if not target.startswith("SWBExternalService."):
            return None  # only IAM Identity Center's sso-admin calls are disturbed
        with self._lock:
            roll = self._random.random()
        if roll < self.throttle:
            return 400, "ThrottlingException"
        if roll < self.throttle + self.fail:
            return 500, "InternalServerException"
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                fault = proxy._fault(self.headers.get("x-amz-target", ""))
                if fault:
                    status, code = fault
                    proxy.injected[code] += 1
                    payload = json.dumps(
                        {"__type": code, "message": "injected by the test proxy"}
                    ).encode()
                    self._reply(
                        status,
                        {"content-type": "application/x-amz-json-1.1", "x-amzn-errortype": code},
                        payload,
                    )
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                resp = httpx.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
                self._reply(
                    resp.status_code,
                    {k: v for k, v in resp.headers.items() if k.lower() not in _HOP},
                    resp.content,
                )

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        return Handler
