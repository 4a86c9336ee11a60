"""Turning events into store rows and back: ids, times and filter values.

Shared by every store, so that all of them index an event the same way.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import diagnostics
from ..registry.model import TypeVersion
from ..serialization import dumps

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: Any) -> int:
    """Microseconds since the epoch for a datetime or ISO-8601 string (naive = UTC)."""
    if type(value) is datetime and value.tzinfo is UTC:  # what Tracker makes: the fast path
        return (value - _EPOCH) // _MICROSECOND
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta: timedelta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return time.time_ns() // 1000


def from_micros(micros: int) -> datetime:
    """The UTC datetime for microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def type_row(version: TypeVersion) -> tuple[str, str, str, str | None, bytes]:
    """The et_types row that stores one documentation version."""
    registered = version.registered_at.isoformat() if version.registered_at else None
    return version.id, version.kind, version.name, registered, dumps(version.to_dict())


def content_id(body: bytes) -> str:
    """The id of an event that has none: derived from its JSON, so a re-delivered copy matches."""
    return "h-" + hashlib.blake2b(body, digest_size=16).hexdigest()


def event_time(event: dict[str, Any]) -> int:
    """The microseconds `event` is indexed under (its arrival, if its timestamp is unreadable)."""
    try:
        return to_micros(event.get("timestamp"))
    except (ValueError, TypeError, OverflowError):
        # Stored under the time it arrived; the body keeps the original value.
        name = event.get("name")
        diagnostics.increment("store.bad_timestamp")
        diagnostics.warn_once(
            ("store.bad_timestamp", str(name)),
            "event %r has an unreadable timestamp; indexed under its arrival time",
            name,
        )
        return time.time_ns() // 1000


def own_id(event: dict[str, Any]) -> str | None:
    """The event's own id: a non-empty string, else None."""
    event_id = event.get("id")
    return event_id if isinstance(event_id, str) and event_id else None


def row_for(event: dict[str, Any]) -> tuple[str, str, int, bytes]:
    """The (id, name, ts, body) row that stores `event`.

    Events without ids (the Open edX envelope) get `content_id` of their JSON.
    """
    body = dumps(event)
    name = event.get("name")
    return (
        own_id(event) or content_id(body),
        name if isinstance(name, str) else str(name),
        event_time(event),
        body,
    )


_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")


def _typed(value: Any) -> Any:
    """The number a filter string spells, so ``user_id=7`` matches the integer 7."""
    if isinstance(value, str):
        if _INT.fullmatch(value):
            return int(value)
        if _FLOAT.fullmatch(value):
            return float(value)
    return value
