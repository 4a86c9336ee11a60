"""Check what a browser sends before anything is emitted.

`parse_events(body, limits)` turns a request body into a list of
`BrowserEvent`, or raises `PayloadError` (an HTTP status, an error code and a
sentence saying what was wrong and where, e.g. ``events[2].name``). The whole
batch is checked first, so a bad event rejects the request and nothing of it
is stored.

Accepted shapes: one event ``{"name": ..., "data": {...}}``, a list of them,
or ``{"events": [...]}``. An event may carry ``context`` (the page's own
context, kept under ``context.client``: it can never override what the server
sets), ``page`` (its URL) and ``timestamp`` (the browser's clock). Any other
key is refused; the server context fields (``user_id``, ``ip``, ...) with a
message that says the server sets them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from .conf import BrowserConf
from .context import MAX_FIELD_LENGTH, SERVER_FIELDS

__all__ = [
    "EVENT_KEYS",
    "BrowserEvent",
    "PayloadError",
    "check_event",
    "load_json",
    "parse_events",
]

EVENT_KEYS: Final = ("name", "data", "context", "page", "timestamp")


class PayloadError(Exception):
    """Bad input: answered with `status` and ``{"error": code, "detail": detail}``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class BrowserEvent:
    """One checked event from the browser."""

    name: str
    data: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)
    page: str | None = None
    timestamp: str | int | float | None = None


def parse_events(body: bytes, limits: BrowserConf) -> list[BrowserEvent]:
    """The events of a JSON body, all checked; PayloadError for anything wrong."""
    if len(body) > limits.max_body_bytes:
        raise PayloadError(
            413, "too_large", f"the body has {len(body)} bytes; at most {limits.max_body_bytes}"
        )
    return events_of(load_json(body, "the body"), limits)


def load_json(body: bytes, what: str) -> Any:
    """`body` parsed as JSON; PayloadError (400) if it is not JSON or holds a huge integer.

    `what` names the body in messages (``the body``, ``event``).

    orjson turns an integer beyond 64 bits into a float, silently losing
    digits, and no sink could store it exactly: such a body is refused with a
    message that says to send the number as a string. Only bodies with a run
    of 19 or more digits are parsed a second time (by the standard library,
    which keeps integers exact) to find out.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not body.strip():  # e.g. a chunked body that the server did not pass on
            raise PayloadError(400, "bad_json", f"{what}: not valid JSON: empty") from None
        raise PayloadError(400, "bad_json", f"{what}: not valid JSON: {exc}") from None
    if _LONG_DIGITS.search(body) is not None:
        try:
            json.loads(body, parse_int=_checked_int)
        except _HugeInteger as exc:
            raise PayloadError(
                400,
                "integer_too_large",
                f"{what}: the integer {exc.args[0]} is beyond 64 bits, and no store keeps "
                "it exactly: send it as a string",
            ) from None
        except (ValueError, RecursionError):  # the standard library refuses what orjson took
            pass
    return document


_LONG_DIGITS: Final = re.compile(rb"[0-9]{19}")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson reads and writes exactly


class _HugeInteger(Exception):
    pass


def _checked_int(text: str) -> int:
    # More than 20 digits is out of range whatever they are (and int() refuses 4,300+).
    if len(text) > 21 or not _INT_MIN <= int(text) <= _INT_MAX:
        shown = text if len(text) <= 30 else f"{text[:27]}..."
        raise _HugeInteger(shown)
    return int(text)


def events_of(document: Any, limits: BrowserConf) -> list[BrowserEvent]:
    """Check a parsed document: one event, a list, or ``{"events": [...]}``."""
    if isinstance(document, dict) and "events" in document:
        extra = sorted(set(document) - {"events"})
        if extra:
            raise PayloadError(
                400, "bad_shape", f"a batch is {{'events': [...]}} only; remove {extra}"
            )
        document = document["events"]
        where = "events"
    elif isinstance(document, dict):
        return [check_event(document, limits, "event")]
    else:
        where = "events"
    if not isinstance(document, list):
        raise PayloadError(
            400,
            "bad_shape",
            f"send an event object, a list of events or {{'events': [...]}}, not {_kind(document)}",
        )
    if not document:
        raise PayloadError(400, "no_events", "the batch is empty; send at least one event")
    if len(document) > limits.max_events:
        raise PayloadError(
            413,
            "too_many_events",
            f"{len(document)} events in one request; at most {limits.max_events}",
        )
    return [check_event(item, limits, f"{where}[{i}]") for i, item in enumerate(document)]


def check_event(
    value: Any, limits: BrowserConf, where: str, labels: Mapping[str, str] | None = None
) -> BrowserEvent:
    """Check one event object; `where` (``events[3]``) prefixes every message.

    `labels` renames keys in messages (the legacy view says ``event_type``
    where an event has ``name``).
    """
    labels = labels or {}

    def at(key: str) -> str:
        return labels.get(key) or f"{where}.{key}"

    if not isinstance(value, dict):
        raise PayloadError(
            400, "bad_shape", f"{where}: an event must be an object, not {_kind(value)}"
        )
    for key in value:
        if key in EVENT_KEYS:
            continue
        if key in SERVER_FIELDS:
            raise PayloadError(
                400,
                "server_field",
                f"{where}.{key}: the server sets {key!r} from the request; "
                "the browser cannot send it",
            )
        raise PayloadError(
            400,
            "unknown_key",
            f"{where}.{key}: unknown key; an event has only {list(EVENT_KEYS)}",
        )
    name = _name(value.get("name"), limits, at("name"))
    data = value.get("data", {})
    if not isinstance(data, dict):
        raise PayloadError(
            400, "bad_data", f"{at('data')}: must be a JSON object, not {_kind(data)}"
        )
    context = value.get("context", {})
    if not isinstance(context, dict):
        raise PayloadError(
            400, "bad_context", f"{at('context')}: must be a JSON object, not {_kind(context)}"
        )
    for part, item in (("data", data), ("context", context)):
        if _too_deep(item, limits.max_depth):
            raise PayloadError(
                400,
                "too_deep",
                f"{at(part)}: nested deeper than {limits.max_depth} levels",
            )
    page = value.get("page")
    if page is not None and (not isinstance(page, str) or len(page) > MAX_FIELD_LENGTH):
        raise PayloadError(
            400,
            "bad_page",
            f"{at('page')}: must be a URL string of at most {MAX_FIELD_LENGTH} characters",
        )
    stamp = value.get("timestamp")
    if stamp is not None and (
        isinstance(stamp, bool)
        or not isinstance(stamp, str | int | float)
        or (isinstance(stamp, str) and len(stamp) > 64)
    ):
        raise PayloadError(
            400,
            "bad_timestamp",
            f"{at('timestamp')}: must be an ISO-8601 string or milliseconds since the epoch",
        )
    return BrowserEvent(name, data, context, page, stamp)


def _name(name: Any, limits: BrowserConf, label: str) -> str:
    if not isinstance(name, str) or not name:
        raise PayloadError(
            400, "bad_name", f"{label}: required, a non-empty string, not {_kind(name)}"
        )
    if len(name) > limits.max_name_length:
        raise PayloadError(
            400,
            "bad_name",
            f"{label}: {len(name)} characters; at most {limits.max_name_length}",
        )
    if not any(pattern.search(name) for pattern in limits.name_patterns):
        allowed = [p.pattern for p in limits.name_patterns]
        raise PayloadError(
            400,
            "bad_name",
            f"{label}: {name!r} is not allowed from browsers; names must match one of "
            f"{allowed} (setting EVENT_TRACKING_BROWSER['NAME_PATTERNS'])",
        )
    return name


def _too_deep(value: Any, limit: int) -> bool:
    """True if `value` nests containers more than `limit` levels (an object alone is 1)."""
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            if isinstance(item, Mapping):
                below.extend(v for v in item.values() if isinstance(v, dict | list))
            elif isinstance(item, list):
                below.extend(v for v in item if isinstance(v, dict | list))
        level = below
    return False


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")
