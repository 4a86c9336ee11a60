"""What the live view receives: events described for the page, as server-sent-event text.

Each event becomes an *item*: its name, time, id, pretty JSON and the
documentation version it refers to (``meta.type``; None for an event stored
without one, which the page shows as "undocumented"). Items after a feed
position are written as server-sent events, ``id:`` being the position, so
a browser that reconnects (``Last-Event-ID``) continues where it left off.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson

from .filters import Filter
from .live import LiveFeed

KEEPALIVE_SECONDS: Final = 15.0
_DOC_CACHE: Final = 10_000  # documentation versions remembered (a few per type)


class Describer:
    """Turns stored events into live-view items; `metadata` looks a version up by id."""

    def __init__(self, metadata: Callable[[str], dict[str, Any] | None]) -> None:
        self._metadata = metadata
        self._docs: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def item(self, event: dict[str, Any], position: int = 0) -> dict[str, Any]:
        """An event as the live view shows it: JSON text and its documentation."""
        return {
            "pos": position,
            "id": event.get("id"),
            "name": str(event.get("name")),
            "time": str(event.get("timestamp")),
            "json": json.dumps(event, indent=2, ensure_ascii=False, default=str),
            "doc": self._doc(event),
        }

    def _doc(self, event: dict[str, Any]) -> dict[str, Any] | None:
        meta = event.get("meta")
        type_id = meta.get("type") if isinstance(meta, dict) else None
        if not isinstance(type_id, str):
            return None
        with self._lock:
            known = type_id in self._docs
            version = self._docs.get(type_id)
        if not known:
            version = self._metadata(type_id)
            with self._lock:
                if len(self._docs) >= _DOC_CACHE:
                    self._docs.clear()
                self._docs[type_id] = version
        if version is None:
            return {"id": type_id, "description": "(version not found in the store)"}
        return {
            "id": type_id,
            "name": version.get("name"),
            "description": version.get("description", ""),
            "registered_at": version.get("registered_at"),
        }


def sse_chunk(
    feed: LiveFeed, describer: Describer, selected: Filter, position: int
) -> tuple[str, int]:
    """The server-sent-event text for what arrived after `position`, and the new position."""
    items, missed = feed.after(position)
    parts = []
    if missed:
        parts.append(f"event: missed\ndata: {missed}\n\n")
    for pos, event in items:
        if selected.matches(event):
            data = orjson.dumps(describer.item(event, pos), default=str).decode()
            parts.append(f"id: {pos}\ndata: {data}\n\n")
        position = pos
    if items and not parts:
        parts.append(f"id: {position}\n\n")  # moves the browser's Last-Event-ID on
    return "".join(parts), position


def sse_blocking(
    feed: LiveFeed, describer: Describer, selected: Filter, position: int, seconds: float
) -> Iterator[str]:
    """A blocking event stream for `seconds` (then the browser reconnects), for WSGI servers."""
    yield "retry: 500\n\n"
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        feed.wait(position, 0.5)
        text, position = sse_chunk(feed, describer, selected, position)
        if text:
            quiet_since = time.monotonic()
            yield text
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
