"""POST events as JSON batches to an HTTP endpoint (httpx, ``pip install 'event-tracking[http]'``).

`HTTPBackend` sends a JSON array of events, gzip-compressed by default, in
one POST per `send_batch` call (more than one only when the batch exceeds
`batch_size` or `max_batch_bytes`). It holds nothing back: it has no queue,
thread or retry loop of its own. It tells the caller what went wrong with
the exceptions the delivery worker understands:

* 2xx: delivered.
* 408, 429 and 5xx: `HTTPRetryableError` (a `RetryableError`), with
  `retry_after` in seconds taken from a ``Retry-After`` header (seconds or an
  HTTP date), else None.
* Any other status (4xx, an unfollowed 3xx): `HTTPTerminalError` (a
  `TerminalError`): retrying cannot help, so the delivery worker dead-letters
  the batch. The message gives the status, the reason phrase and what to
  check, never the payload.
* Connection errors and timeouts: `HTTPRetryableError` with status None.

`HTTPTransport` is the shared part (client, auth, gzip, status handling);
`SegmentHTTPBackend` reuses it. Plain ``http://`` URLs that no proxy setting
applies to are posted over one kept-alive ``http.client`` connection (see
`_http_direct`); https and proxied URLs go through httpx.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import math
import os
import threading
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from .._version import __version__
from ..exceptions import MissingExtraError, RetryableError, TerminalError
from ..serialization import dumps, dumps_array
from ._batches import chunks
from ._http_direct import DirectConnection, Reply, applies

try:
    import httpx
except ImportError as exc:
    raise MissingExtraError("httpx", "http") from exc

__all__ = [
    "HTTPBackend",
    "HTTPRetryableError",
    "HTTPTerminalError",
    "HTTPTransport",
    "chunks",
    "parse_retry_after",
]

USER_AGENT: Final = f"eventtracking/{__version__}"
RETRYABLE_STATUSES: Final = frozenset({408, 429})
# Level 1 of gzip: measured on the benchmark's batches, 2.2x faster than level 6
# for 12% more bytes; zlib lets other threads run while it compresses.
GZIP_LEVEL: Final = 1
_HINTS: Final = {
    401: "check the credentials (auth)",
    403: "check the credentials (auth) and their permissions",
    404: "check the URL",
    405: "check the URL: the endpoint does not accept POST",
    413: "the batch is too large: lower batch_size or max_batch_bytes",
    415: "the endpoint does not accept gzip JSON: try gzip=False",
}


class HTTPRetryableError(RetryableError):
    """A transient HTTP failure; `status_code` is None for connection errors and timeouts."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


class HTTPTerminalError(TerminalError):
    """The endpoint rejected the request with `status_code`; retrying will not help."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    Returns None when the header is missing or unreadable; a date in the past
    gives 0.0. `now` (aware) is for tests.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")


class HTTPTransport:
    """POST request bodies to one URL and turn the outcome into delivery exceptions.

    `auth` is a bearer token (str) or a ``(user, password)`` pair for basic
    auth. `timeout` is in seconds and bounds each phase of a request
    (connecting, sending, each read), httpx's semantics. Bodies are gzip
    compressed when `gzip` is true. Thread-safe; after `os.fork()` the child
    opens its own connections. `post` after `close` raises RuntimeError.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: str | Sequence[str] | None = None,
        timeout: float = 10.0,
        gzip: bool = True,
        content_type: str = "application/json",
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an absolute http:// or https:// URL, not {url!r}")
        _check_seconds("timeout", timeout)
        if not isinstance(gzip, bool):
            raise ValueError(f"gzip must be true or false, not {gzip!r}")
        merged: dict[str, str] = {"User-Agent": USER_AGENT, "Content-Type": content_type}
        for key, value in (headers or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"headers must map str to str; {key!r}: {value!r} is not")
            if key.lower() == "content-encoding":
                raise ValueError("headers must not set Content-Encoding; use gzip=True or False")
            merged[key] = value
        if auth is not None and any(k.lower() == "authorization" for k in merged):
            raise ValueError("give either auth or an Authorization header, not both")
        if gzip:
            merged["Content-Encoding"] = "gzip"
        self.url = url
        self.gzip = gzip
        self.timeout = float(timeout)
        self._headers = merged
        self._auth, bearer = _build_auth(auth)
        if bearer is not None:
            merged["Authorization"] = bearer
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            raise ValueError(f"url has an invalid port number: {url!r}") from None
        # Safe to log: no credentials, no query string.
        self.where = f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
        # Where and as whom (URL, credentials, headers given; not our version):
        # names the default journal, so only as a digest.
        given = sorted((headers or {}).items())
        secret = repr((url, auth, given)).encode("utf-8", "surrogatepass")
        self.destination = f"{self.where} {hashlib.sha256(secret).hexdigest()[:16]}"
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._pid = 0
        self._closed = False
        self._direct: DirectConnection | None = None
        if applies(parts):
            direct_headers = dict(merged)
            if self._auth is not None and auth is not None and not isinstance(auth, str):
                token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
                direct_headers["Authorization"] = f"Basic {token}"
            self._direct = DirectConnection(parts, direct_headers, self.timeout)

    def _get_client(self) -> httpx.Client:
        client, pid = self._client, os.getpid()
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the HTTP transport for {self.where} is closed")
            if self._client is None or self._pid != pid:
                # A forked child must not share its parent's sockets: leave the
                # inherited client alone and open a fresh one.
                self._client = httpx.Client(
                    headers=self._headers,
                    auth=self._auth,
                    timeout=self.timeout,
                    follow_redirects=False,
                )
                self._pid = pid
            return self._client

    def post(self, body: bytes) -> None:
        """POST `body` (uncompressed JSON bytes); return on 2xx, raise otherwise (module docs)."""
        if self._closed:
            raise RuntimeError(f"the HTTP transport for {self.where} is closed")
        content = zlib.compress(body, GZIP_LEVEL, 31) if self.gzip else body
        if self._direct is not None:
            self._post_direct(self._direct, content)
            return
        try:
            response = self._get_client().post(self.url, content=content)
        except httpx.TimeoutException as exc:
            raise HTTPRetryableError(
                f"POST {self.where}: timed out after {self.timeout:g}s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise HTTPRetryableError(
                f"POST {self.where}: {type(exc).__name__}: {str(exc) or 'connection failed'}"
            ) from exc
        _check_response(
            self.where,
            Reply(
                response.status_code,
                response.reason_phrase,
                response.headers.get("Retry-After"),
                response.headers.get("Location"),
            ),
        )

    def _post_direct(self, direct: DirectConnection, content: bytes) -> None:
        try:
            reply = direct.post(content)
        except TimeoutError as exc:
            raise HTTPRetryableError(
                f"POST {self.where}: timed out after {self.timeout:g}s ({type(exc).__name__})"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise HTTPRetryableError(
                f"POST {self.where}: {type(exc).__name__}: {str(exc) or 'connection failed'}"
            ) from exc
        _check_response(self.where, reply)

    def close(self) -> None:
        """Close the connections; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
        if self._direct is not None:
            self._direct.close()
        if client is not None and self._pid == os.getpid():
            client.close()

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._closed


def _build_auth(auth: str | Sequence[str] | None) -> tuple[httpx.BasicAuth | None, str | None]:
    """(basic auth, bearer header value) for an auth option."""
    if auth is None:
        return None, None
    if isinstance(auth, str):
        if not auth:
            raise ValueError("auth token must not be empty")
        return None, f"Bearer {auth}"
    if (
        isinstance(auth, Sequence)
        and len(auth) == 2
        and all(isinstance(part, str) for part in auth)
    ):
        return httpx.BasicAuth(auth[0], auth[1]), None
    raise ValueError("auth must be a bearer token (str) or a (user, password) pair of str")


def _check_response(where: str, reply: Reply) -> None:
    status = reply.status
    if 200 <= status < 300:
        return
    reason = reply.reason or "no reason given"
    if status in RETRYABLE_STATUSES or status >= 500:
        retry_after = parse_retry_after(reply.retry_after)
        later = "" if retry_after is None else f"; retry after {retry_after:g}s"
        raise HTTPRetryableError(
            f"POST {where}: HTTP {status} {reason}{later}",
            status_code=status,
            retry_after=retry_after,
        )
    if 300 <= status < 400:
        target = reply.location or "?"
        hint = f"the endpoint redirects to {target!r}: configure that URL instead"
    else:
        hint = _HINTS.get(status, "the endpoint rejected the batch; retrying will not help")
    raise HTTPTerminalError(f"POST {where}: HTTP {status} {reason}: {hint}", status_code=status)


class HTTPBackend:
    """POST events to `url` as a gzip-compressed JSON array, one request per batch.

    Body: ``[event, event, ...]``, each event encoded exactly as every other
    sink encodes it (`eventtracking.serialization`). `send(event)` is a batch
    of one. A batch larger than `batch_size` events or `max_batch_bytes`
    (uncompressed) is split into several requests, in order; if one fails,
    its exception is raised and the requests before it stay delivered, so a
    retry of the batch sends them again (receivers de-duplicate on the id).

    Failures raise `HTTPRetryableError` or `HTTPTerminalError` (module docs):
    the delivery worker retries, backs off and dead-letters (built from
    configuration the backend runs behind it, in buffered mode with a
    journal; in code, wrap it in `eventtracking.delivery.DeliveryBackend`).
    Thread-safe. `close()` is idempotent; sending afterwards raises
    RuntimeError. Nothing is buffered, so `flush()` returns True at once.
    """

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "buffered"}
    # Only encodes: siblings may share its encoding, durable mode sends the journal's bytes.
    leaves_events_unchanged: ClassVar[bool] = True

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        auth: str | Sequence[str] | None = None,
        timeout: float = 10.0,
        gzip: bool = True,
        batch_size: int = 500,
        max_batch_bytes: int | None = None,
    ) -> None:
        _check_count("batch_size", batch_size)
        if max_batch_bytes is not None:
            _check_count("max_batch_bytes", max_batch_bytes)
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.transport = HTTPTransport(url, headers=headers, auth=auth, timeout=timeout, gzip=gzip)

    @property
    def destination(self) -> str:
        """The endpoint and a digest of the credentials: names the default journal."""
        return self.transport.destination

    def send(self, event: dict[str, Any]) -> None:
        """POST one event (as a batch of one)."""
        self.send_batch([event])

    def send_batch(self, events: Sequence[dict[str, Any]]) -> None:
        """POST `events` as one JSON array (split only beyond the size limits)."""
        if self.transport.closed:
            raise RuntimeError(f"HTTPBackend({self.transport.where!r}) is closed")
        if self.max_batch_bytes is None and len(events) <= self.batch_size:
            self.transport.post(dumps_array(events))  # one request: the common case
            return
        encoded = [dumps(event) for event in events]
        for run in chunks(encoded, self.batch_size, self.max_batch_bytes):
            self.transport.post(b"[" + b",".join(run) + b"]")

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing is ever held back; True."""
        return True

    def close(self) -> None:
        """Close the connections; idempotent."""
        self.transport.close()
