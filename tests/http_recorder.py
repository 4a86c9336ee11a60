"""A local HTTP server for backend tests: records what it receives, answers as scripted.

Usage::

    with HTTPRecorder() as server:
        server.reply(429, headers={"Retry-After": "3"})   # the next request gets this
        server.reply(200)
        ... POST to server.url ...
        server.requests[0].json()

Unscripted requests get ``200 {"success": true}``. ``reply(hang=True)`` never
answers (until the server closes), to test client timeouts. Bodies sent with
``Content-Encoding: gzip`` are decompressed into `RecordedRequest.body`.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"success": true}'
    hang: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    raw: bytes  # as received on the wire
    body: bytes  # decompressed
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


class HTTPRecorder:
    """A threaded HTTP server on 127.0.0.1 (a free port) that records requests."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.arrived = threading.Condition(self._lock)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                recorder._handle(self)

            do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and hung up is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def reply(
        self,
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b'{"success": true}',
        hang: bool = False,
    ) -> None:
        """Script the answer to the next unanswered request (queued in order)."""
        with self._lock:
            self._replies.append(Reply(status, dict(headers or {}), body, hang))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        with self._lock:
            self.requests.append(
                RecordedRequest(handler.command, handler.path, headers, raw, body, time.monotonic())
            )
            reply = self._replies.popleft() if self._replies else Reply()
            self.arrived.notify_all()
        if reply.hang:
            self._closing.wait(30.0)
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Wait until `count` requests have arrived; AssertionError after `timeout`."""
        with self._lock:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            return list(self.requests)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> HTTPRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
