"""A local HTTP sink for the delivery benchmarks, run as its own process.

    python bench/http_sink.py PORT_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE once it listens),
HTTP/1.1 with keep-alive. ``POST /events`` takes a JSON array, gzip or
plain, answers 200 and counts the events in it; ``GET /count`` answers the
count so far; ``POST /reset`` sets it back to zero. Counting is by the
number of ``"name":`` keys at the top of each event, which every event of the
benchmarks' workload has exactly once (nothing in their data or context is
called ``name``), so the floor and ours pay the sink the same price.
"""

from __future__ import annotations

import sys
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Sink(BaseHTTPRequestHandler):
    """Count events, answer at once."""

    protocol_version = "HTTP/1.1"
    received = 0
    requests = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/reset":
            Sink.received = Sink.requests = 0
        else:
            if self.headers.get("Content-Encoding") == "gzip":
                body = zlib.decompress(body, 47)  # gzip or zlib header, detected
            Sink.received += body.count(b'"name":')
            Sink.requests += 1
        self._answer(b"")

    def do_GET(self) -> None:
        self._answer(f"{Sink.received} {Sink.requests}".encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    Path(sys.argv[1]).write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
