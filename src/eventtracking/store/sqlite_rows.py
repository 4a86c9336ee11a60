"""Compact SQLite rows (schema version 3): what the columns hold is not stored twice.

A row is (key, name, ts, form, body). `name` and `ts` (integer microseconds,
UTC) are columns for the index; `key` is the event id in 16 bytes (see
`key_for`). `body` is the event's JSON without the members the columns
already hold, as `form` says:

- ``NAME``: ``"name"`` is a string, stored in the name column only;
- ``TIME``: ``"timestamp"`` is a UTC datetime at or after 1970, whose
  encoding the ts column gives back exactly;
- ``ID``: ``"id"`` is a canonical UUID string, the 16 bytes of the key.

A member is left out only when it is where the tracker puts it (the first
members, in the order id, name, timestamp) and the rest of the encoding is
untouched, so reading gives the event back member for member (`EVENT_SQL`
rebuilds its JSON in SQLite). Anything else keeps the whole encoding (form 0),
as rows written by `row_for` do.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from ..serialization import dumps
from .rows import row_for, to_micros

NAME: Final = 1
TIME: Final = 2
ID: Final = 4

CompactRow = tuple[bytes, str, int, int, bytes]

# The event's JSON, rebuilt from a compact row: the left-out members first, in
# the tracker's order, then the body after its opening brace.
_UUID_TEXT: Final = (
    "substr(lower(hex(key)), 1, 8) || '-' || substr(lower(hex(key)), 9, 4) || '-' || "
    "substr(lower(hex(key)), 13, 4) || '-' || substr(lower(hex(key)), 17, 4) || '-' || "
    "substr(lower(hex(key)), 21)"
)
_ISO_TEXT: Final = (
    "strftime('%Y-%m-%dT%H:%M:%S', ts / 1000000, 'unixepoch') || "
    "CASE WHEN ts % 1000000 THEN printf('.%06d', ts % 1000000) ELSE '' END || '+00:00'"
)
_HEAD: Final = (
    f"(CASE WHEN form & {ID} THEN '\"id\":\"' || {_UUID_TEXT} || '\",' ELSE '' END || "
    f"CASE WHEN form & {NAME} THEN '\"name\":' || json_quote(name) || ',' ELSE '' END || "
    f"CASE WHEN form & {TIME} THEN '\"timestamp\":\"' || {_ISO_TEXT} || '\",' ELSE '' END)"
)
# The event id as versions 1 and 2 stored it (a virtual column: computed when read).
ID_SQL: Final = (
    f"CASE WHEN form & {ID} THEN {_UUID_TEXT} "
    "WHEN json_type(body, '$.id') = 'text' AND json_extract(body, '$.id') <> '' "
    "THEN json_extract(body, '$.id') ELSE 'h-' || lower(hex(key)) END"
)
EVENT_SQL: Final = (
    "CASE WHEN form = 0 THEN body ELSE '{' || " + _HEAD + " || CAST(substr(body, 2) AS TEXT) END"
)

_NAMES: dict[str, bytes] = {}  # name -> b'"name":"...",' (bounded: cleared when large)
_NAMES_MAX: Final = 4096


def key_for(event_id: str) -> bytes:
    """The 16-byte key of an event id: a UUID's bytes, a content id's digest
    (``h-`` + 32 hex digits, as `row_for` makes), else a BLAKE2b digest of the id."""
    if len(event_id) == 36 and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-":
        try:
            return bytes.fromhex(event_id.replace("-", ""))
        except ValueError:
            pass
    elif len(event_id) == 34 and event_id.startswith("h-"):
        try:
            return bytes.fromhex(event_id[2:])
        except ValueError:
            pass
    return hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def from_legacy(row: tuple[str, str, int, bytes]) -> CompactRow:
    """A compact row (form 0: the whole encoding kept) from a `row_for` row."""
    event_id, name, ts, body = row
    return key_for(event_id), name, ts, 0, body


def compact_row(event: dict[str, Any]) -> CompactRow:
    """The compact row that stores `event` (see module docs)."""
    body = dumps(event)  # shared with sibling sinks within a fan-out
    event_id = event.get("id")
    name = event.get("name")
    stamp = event.get("timestamp")
    if type(name) is not str or not (type(stamp) is datetime and stamp.tzinfo is UTC):
        return from_legacy(row_for(event))  # unusual events: the general path
    ts = to_micros(stamp)
    head = _NAMES.get(name)
    if head is None:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        head = _NAMES[name] = b'"name":' + orjson.dumps(name) + b","
    form = NAME
    if ts >= 0:
        head += b'"timestamp":' + orjson.dumps(stamp) + b","
        form |= TIME
    if event_id is None:
        key = hashlib.blake2b(body, digest_size=16).digest()  # as `row_for` derives it
        prefix = b"{" + head
    elif type(event_id) is str:
        key = key_for(event_id)
        if len(event_id) != 36 or key.hex() != event_id.replace("-", ""):
            return key, name, ts, 0, body  # not a canonical UUID: the whole encoding
        prefix = b'{"id":"' + event_id.encode() + b'",' + head
        form |= ID
    else:
        return from_legacy(row_for(event))
    if not body.startswith(prefix):
        return key, name, ts, 0, body  # members in another order: the whole encoding
    # The prefix ends with a comma, so at least one member follows it.
    return key, name, ts, form, b"{" + body[len(prefix) :]
