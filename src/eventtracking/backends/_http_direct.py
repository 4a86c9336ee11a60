"""POST over one kept-alive ``http.client`` connection: the HTTP transport's fast path.

`HTTPTransport` uses it for plain ``http://`` URLs that no proxy setting
applies to (the case of a collector on the same host or network); https and
proxied URLs keep going through httpx, which brings TLS trust settings and
proxy support. Profiling the delivery worker showed httpx spending about
three times the CPU of ``http.client`` per request on the same body, all of
it holding the interpreter lock the emitting threads need.
"""

from __future__ import annotations

import http.client
import os
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult

# The peer closed a kept-alive connection between two requests: send once more
# on a new connection (the body may be posted twice; receivers de-duplicate on
# the event id, as for any retry).
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Reply:
    """What the transport needs of a response: status, reason and two headers."""

    status: int
    reason: str
    retry_after: str | None
    location: str | None


def applies(parts: SplitResult) -> bool:
    """True when `parts` (a split URL) can take the fast path: http and no proxy for it."""
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = urllib.request.getproxies_environment()
    if not proxies.get("http") and not proxies.get("all"):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname))  # honours no_proxy


class DirectConnection:
    """One connection to one host, used by one request at a time (it holds a lock).

    `timeout` bounds connecting and each read and write, as httpx's does.
    After `os.fork()` the child opens its own connection. Errors are
    ``OSError`` or ``http.client.HTTPException``; the caller translates them.
    """

    def __init__(self, parts: SplitResult, headers: Mapping[str, str], timeout: float) -> None:
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = parts.path or "/"
        if parts.query:
            self._target += "?" + parts.query
        self._headers = dict(headers)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._pid = 0

    def post(self, body: bytes) -> Reply:
        """POST `body` and read the whole reply (so the connection can be kept)."""
        with self._lock:
            conn, fresh = self._connection()
            try:
                return self._exchange(conn, body)
            except _STALE:
                self._drop()
                if fresh:
                    raise
            except BaseException:
                self._drop()
                raise
            conn, _ = self._connection()
            try:
                return self._exchange(conn, body)
            except BaseException:
                self._drop()
                raise

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        pid = os.getpid()
        if self._conn is not None and self._pid == pid:
            return self._conn, False
        # A forked child leaves its parent's socket alone and opens its own.
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        self._pid = pid
        return self._conn, True

    def _exchange(self, conn: http.client.HTTPConnection, body: bytes) -> Reply:
        conn.request("POST", self._target, body, self._headers)
        response = conn.getresponse()
        response.read()
        reply = Reply(
            response.status,
            response.reason,
            response.getheader("Retry-After"),
            response.getheader("Location"),
        )
        if response.will_close:
            self._drop()
        return reply

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()

    def close(self) -> None:
        """Close the connection (without waiting for a request in progress)."""
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()
