"""Events as rows of the PostgreSQL store, and rows back as events.

A row is ``(id, name, ts, data, context, extra)``: text, text, an aware
datetime (or its ISO text in UTC), and JSON text for the three jsonb columns (``extra`` holds any
top-level keys besides the envelope's, or None). Rows go to COPY through
psycopg's ``write_row``, which escapes them in C.

What PostgreSQL cannot hold is repaired, counted and kept, never a failed
batch: a NUL character (in text, or ``\\u0000`` in JSON) becomes U+FFFD
(``postgres.nul_replaced``); a timestamp that cannot be read is stored as the
arrival time with the original kept in ``extra`` (``store.bad_timestamp``);
a value JSON cannot encode goes through the one encoder's repair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from .. import diagnostics
from ..serialization import OPTIONS, _default, loads, skip_unencodable
from ..serialization import dumps as dumps_repaired
from .rows import content_id, from_micros, to_micros

Row = tuple[str, str, datetime | str, str | None, str | None, str | None]
COLUMNS: Final = "(id, name, ts, data, context, extra)"
_ENVELOPE: Final = frozenset({"id", "name", "timestamp", "data", "context"})
# jsonb rejects the escape \u0000; only an escape preceded by an even number of
# backslashes is one (``\\u0000`` is a backslash followed by the text u0000).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _no_nul(text: str) -> str:
    diagnostics.increment("postgres.nul_replaced")
    return text.replace("\x00", "\ufffd")


def _json(value: Any) -> str:
    raw = orjson.dumps(value, default=_default, option=OPTIONS)
    if b"\\u0000" in raw:
        diagnostics.increment("postgres.nul_replaced")
        return _NUL_ESCAPE.sub(r"\1\\ufffd", raw.decode())
    return raw.decode()


def _timestamp(value: Any, name: str) -> datetime | None:
    """The aware datetime for a timestamp (naive = UTC); None when it cannot be read."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value
    try:
        return from_micros(to_micros(value))
    except (ValueError, TypeError, OverflowError):
        diagnostics.increment("store.bad_timestamp")
        diagnostics.warn_once(
            ("store.bad_timestamp", name),
            "event %r has an unreadable timestamp; indexed under its arrival time",
            name,
        )
        return None


def _row(event: Mapping[str, Any]) -> Row:
    event_id = event.get("id")
    if type(event_id) is not str or not event_id:
        event_id = content_id(dumps_repaired(dict(event)))
    elif "\x00" in event_id:
        event_id = _no_nul(event_id)
    name = event.get("name")
    if type(name) is not str:
        name = str(name)
    if "\x00" in name:
        name = _no_nul(name)
    stamp = _timestamp(event.get("timestamp"), name)
    extra = None
    if stamp is None or not event.keys() <= _ENVELOPE:
        others = {key: value for key, value in event.items() if key not in _ENVELOPE}
        if stamp is None:  # keep the original; index under the arrival time
            others["timestamp"] = event.get("timestamp")
            stamp = datetime.now(UTC)
        extra = _json(others)
    return (
        event_id,
        name,
        stamp,
        _json(event["data"]) if "data" in event else None,
        _json(event["context"]) if "context" in event else None,
        extra,
    )


def copy_rows(events: Iterable[Mapping[str, Any]], careful: bool = False) -> Iterator[Row]:
    """The rows that store `events`, made one at a time (so COPY can stream them).

    The fast path leaves a ``\\u0000`` escape in data or context unchecked:
    searching every event for one costs more than the rest of the row, and
    PostgreSQL rejects the batch (SQLSTATE class 22) if there is one. The
    store then writes it again with ``careful=True``, which repairs it.
    """
    dumps = orjson.dumps
    for event in events:
        if not careful:  # the envelope as Tracker makes it, nothing to repair
            try:
                event_id, name, stamp = event["id"], event["name"], event["timestamp"]
                data = dumps(event["data"], default=_default, option=OPTIONS)
                context = dumps(event["context"], default=_default, option=OPTIONS)
            except (KeyError, orjson.JSONEncodeError, TypeError):
                pass
            else:
                if (
                    len(event) == 5
                    and type(event_id) is str
                    and type(name) is str
                    and (
                        (type(stamp) is datetime and stamp.tzinfo is UTC)
                        # What the encoder made of one (an event read back from a
                        # stream); PostgreSQL parses this form exactly as Python does.
                        or (type(stamp) is str and stamp.endswith("+00:00") and stamp[:4].isdigit())
                    )
                    and event_id
                    and "\x00" not in event_id
                    and "\x00" not in name
                ):
                    yield event_id, name, stamp, data.decode(), context.decode(), None
                    continue
        try:
            yield _row(event)
            continue
        except (orjson.JSONEncodeError, TypeError):
            pass
        try:  # the one encoder repairs the bad values, logs and counts them
            repaired = loads(dumps_repaired(event))
        except (orjson.JSONEncodeError, TypeError) as exc:
            skip_unencodable("postgres", event, exc)
            continue
        yield _row(repaired)


def event_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """The event a stored row holds: ``{id, name, timestamp (ISO, UTC), data, context, ...}``."""
    event_id, name, ts, data, context, extra = row[:6]
    event = {
        "id": event_id,
        "name": name,
        "timestamp": ts.astimezone(UTC).isoformat(),
        "data": data,
        "context": context,
    }
    if extra:
        event.update(extra)
    return event
