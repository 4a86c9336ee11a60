"""Send events to Segment's batch HTTP API ourselves, with the Open edX field mapping.

Each event becomes a Segment ``track`` call; a batch of them is one POST of
``{"batch": [{"type": "track", ...}, ...], "sentAt": ...}`` to the batch
endpoint, authenticated with the source's write key as the basic-auth user.
The HTTP transport (gzip, status handling, `RetryableError` /
`TerminalError`) is `eventtracking.backends.http.HTTPTransport`, shared with
`HTTPBackend`; retries belong to the delivery worker.

Field mapping (from the event to the Segment message):

=====================  ==========================================
``context.user_id``    ``userId`` (as a string); required
``name``               ``event``
``data``               ``properties`` (``properties="event"``: the whole
                       event, as the Open edX backend sent it)
``timestamp``          ``timestamp`` (ISO 8601)
``id``                 ``messageId`` (Segment de-duplicates on it)
``context.ip``         ``context.ip``
``context.agent``      ``context.userAgent``
``context.path``       ``context.page.path``
``context.referer``    ``context.page.referrer``
``context.page``       ``context.page.url``; without it, ``https://`` +
                       ``context.host`` + ``context.path`` when both exist
``context.client_id``  ``context["Google Analytics"].clientId``
=====================  ==========================================

Events without ``context.user_id`` are skipped (Segment needs a user):
counted under ``segment.skipped_no_user_id`` and warned about once. A message
over Segment's 32 KB limit is skipped and counted under
``segment.oversize_dropped``, with a warning once per event name. Events
without an ``id`` (``envelope="openedx"``) get a ``messageId`` derived from
their content, so a retried batch keeps its ids.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

from .. import diagnostics
from .._version import __version__
from ..serialization import dumps
from .http import HTTPTransport, chunks

__all__ = ["DEFAULT_ENDPOINT", "SegmentHTTPBackend"]

DEFAULT_ENDPOINT: Final = "https://api.segment.io/v1/batch"
MAX_MESSAGE_BYTES: Final = 32 * 1024  # Segment's documented per-message limit
MAX_BATCH_BYTES: Final = 500 * 1024  # Segment's documented per-request limit
WRITE_KEY_ENV: Final = "SEGMENT_WRITE_KEY"
_LIBRARY: Final = {"name": "eventtracking", "version": __version__}
_MESSAGE_ID_NAMESPACE: Final = uuid.UUID("5d2f9a55-8f0e-4c3b-9d57-3c1d2a9e7b10")
Properties = Literal["data", "event"]


class SegmentHTTPBackend:
    """Send events as Segment ``track`` calls through the batch HTTP API (module docs).

    `write_key` is the Segment source's write key; None reads it from the
    ``SEGMENT_WRITE_KEY`` environment variable (so an Open edX configuration
    without options keeps working). `endpoint` is the batch URL (for the EU
    region, ``https://events.eu1.segmentapis.com/v1/batch``). `batch_size`
    caps the messages per request; requests also stay under Segment's 500 KB.

    Failures raise `RetryableError` / `TerminalError` as `HTTPBackend` does;
    built from configuration it runs behind the delivery worker (buffered,
    with a journal), which retries. Thread-safe; `close()` is idempotent,
    sending afterwards raises RuntimeError.
    """

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "buffered"}
    # Only reads events (each message is a new dict): it may get shared contexts.
    leaves_events_unchanged: ClassVar[bool] = True

    def __init__(
        self,
        write_key: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = 10.0,
        gzip: bool = True,
        batch_size: int = 100,
        properties: Properties = "data",
    ) -> None:
        key = write_key if write_key is not None else os.environ.get(WRITE_KEY_ENV)
        if not isinstance(key, str) or not key:
            raise ValueError(
                "SegmentHTTPBackend needs write_key (the write key of your Segment source) "
                f"or the {WRITE_KEY_ENV} environment variable"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if properties not in ("data", "event"):
            raise ValueError(f"properties must be 'data' or 'event', not {properties!r}")
        self.batch_size = batch_size
        self.properties: Properties = properties
        self.transport = HTTPTransport(endpoint, auth=(key, ""), timeout=timeout, gzip=gzip)

    @property
    def destination(self) -> str:
        """The endpoint and a digest of the write key: names the default journal."""
        return self.transport.destination

    def send(self, event: dict[str, Any]) -> None:
        """Send one event (a batch of one); skipped when it has no ``context.user_id``."""
        self.send_batch([event])

    def send_batch(self, events: Sequence[dict[str, Any]]) -> None:
        """Send the events that have a user as one batch request (split beyond the limits)."""
        if self.transport.closed:
            raise RuntimeError(f"SegmentHTTPBackend({self.transport.where!r}) is closed")
        encoded: list[bytes] = []
        for event in events:
            message = self.message(event)
            if message is None:
                continue
            data = dumps(message)
            if len(data) > MAX_MESSAGE_BYTES:
                self._oversize(event, len(data))
                continue
            encoded.append(data)
        overhead = len(b'{"batch":[],"sentAt":""}') + 32  # 32 covers the sentAt timestamp
        for run in chunks(encoded, self.batch_size, MAX_BATCH_BYTES, overhead):
            sent_at = dumps({"sentAt": datetime.now(UTC)})[1:]  # b'"sentAt":"..."}'
            self.transport.post(b'{"batch":[' + b",".join(run) + b"]," + sent_at)

    def message(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        """The Segment ``track`` message for `event`, or None when it has no user id."""
        context = event.get("context")
        if not isinstance(context, Mapping):
            context = {}
        user_id = context.get("user_id")
        if user_id is None or user_id == "":
            diagnostics.increment("segment.skipped_no_user_id")
            diagnostics.warn_once(
                ("segment.no_user_id",),
                "SegmentHTTPBackend skips events without context.user_id (Segment needs a user); "
                "counted under segment.skipped_no_user_id",
            )
            return None
        message: dict[str, Any] = {
            "type": "track",
            "userId": str(user_id),
            "event": event.get("name"),
            "properties": event.get("data", {}) if self.properties == "data" else event,
            "context": _segment_context(context),
            "messageId": str(event.get("id") or _content_id(event)),
        }
        timestamp = event.get("timestamp")
        if timestamp is not None:
            message["timestamp"] = timestamp
        return message

    def _oversize(self, event: Mapping[str, Any], size: int) -> None:
        name = str(event.get("name"))
        diagnostics.increment("segment.oversize_dropped")
        diagnostics.warn_once(
            ("segment.oversize", name),
            "event %r is %d bytes as a Segment message, over Segment's limit of %d: not sent",
            name,
            size,
            MAX_MESSAGE_BYTES,
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing is ever held back; True."""
        return True

    def close(self) -> None:
        """Close the connections; idempotent."""
        self.transport.close()


def _segment_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Segment's ``context`` object from an Open edX event context."""
    result: dict[str, Any] = {"library": _LIBRARY}
    if context.get("ip"):
        result["ip"] = context["ip"]
    if context.get("agent"):
        result["userAgent"] = context["agent"]
    path, referer, url = context.get("path"), context.get("referer"), context.get("page")
    if path and not url and context.get("host"):
        # The Open edX rule: rebuild the page URL from host and path (scheme assumed).
        url = f"https://{context['host']}{path if str(path).startswith('/') else '/' + str(path)}"
    page = {
        key: value for key, value in (("path", path), ("referrer", referer), ("url", url)) if value
    }
    if page:
        result["page"] = page
    if context.get("client_id"):
        result["Google Analytics"] = {"clientId": context["client_id"]}
    return result


def _content_id(event: Mapping[str, Any]) -> uuid.UUID:
    """A message id that stays the same when the same event is sent again."""
    return uuid.uuid5(_MESSAGE_ID_NAMESPACE, dumps(event).decode("utf-8"))
