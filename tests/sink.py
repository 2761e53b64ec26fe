"""A local webhook (or Slack) receiver: records what it is sent, answers with a chosen status."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    url: str
    status: int = 204
    received: list[Delivery] = field(default_factory=list)

    def events(self) -> list[str]:
        return [d.json["event"] for d in self.received]

    def texts(self) -> list[str]:
        """What a Slack receiver shows in its notifications."""
        return [d.json["text"] for d in self.received]


@contextmanager
def webhook_sink(status: int = 204) -> Iterator[Sink]:
    sink = Sink(url="", status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            sink.received.append(Delivery(dict(self.headers.items()), body))
            self.send_response(sink.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # keep pytest output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    # A short poll keeps shutdown() quick (the default, 0.5 s, is paid by every test).
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
