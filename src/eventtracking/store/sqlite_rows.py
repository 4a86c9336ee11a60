"""Compact SQLite rows (schema version 3): what the columns hold is not stored twice.

A row is (key, name, ts, form, body). `name` and `ts` (integer microseconds,
UTC) are columns for the index; `key` is a 64-bit integer from the event id
(see `key_for`). `body` is the event's JSON without the members the columns
already hold, as `form` says:

- ``NAME``: ``"name"`` is a string, stored in the name column only;
- ``TIME``: ``"timestamp"`` is a UTC datetime at or after 1970, whose
  encoding the ts column gives back exactly;
- ``ID``: the body starts with the event's ``"id"``, a canonical UUID (its 44
  bytes come first, where the tracker puts them; the name and time follow).

Members are left out only when they sit where the tracker puts them (id,
name, timestamp first, in that order) and the rest of the encoding is kept
as it was, so `event_json` gives the event back byte for byte. Any other
event keeps its whole encoding (form 0), as rows written by `row_for` do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from ..serialization import dumps
from .rows import row_for

NAME: Final = 1
TIME: Final = 2
ID: Final = 4
_ID_END: Final = 45  # b'{"id":"' + 36 characters + b'",'

CompactRow = tuple[int, str, int, int, bytes]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAMES: dict[str, bytes] = {}  # name -> b'"name":"...",' (bounded: cleared when large)
_HOURS: dict[int, bytes] = {}  # hours since the epoch -> b"YYYY-MM-DDTHH:"
_MINUTES_SECONDS: Final = [b"%02d:%02d" % divmod(second, 60) for second in range(3600)]
_CACHE_MAX: Final = 4096


def _name_member(name: str) -> bytes:
    member = _NAMES.get(name)
    if member is None:
        if len(_NAMES) >= _CACHE_MAX:
            _NAMES.clear()
        member = _NAMES[name] = b'"name":' + orjson.dumps(name) + b","
    return member


def _hour(hour: int) -> bytes:
    head = _HOURS.get(hour)
    if head is None:
        if len(_HOURS) >= _CACHE_MAX:
            _HOURS.clear()
        head = _HOURS[hour] = (_EPOCH + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:").encode()
    return head


def event_json(form: int, name: str, ts: int, body: bytes) -> bytes:
    """The event's JSON from the columns of its row (the inverse of `compact_row`).

    On the read path of every query: one formatting step per row.
    """
    if form == _USUAL:  # the tracker's event: name and time left out
        start, cut = b"{", 1
    elif form == _USUAL | ID:  # the same with an id, which comes first
        start, cut = body[:_ID_END], _ID_END
    else:
        return _event_json(form, name, ts, body)
    seconds, fraction = divmod(ts, 1_000_000)
    hour, rest = divmod(seconds, 3600)
    head = _HOURS.get(hour) or _hour(hour)
    member = _NAMES.get(name) or _name_member(name)
    if fraction:
        return _FRACTION % (start, member, head, _MINUTES_SECONDS[rest], fraction, body[cut:])
    return _WHOLE % (start, member, head, _MINUTES_SECONDS[rest], body[cut:])


_USUAL: Final = NAME | TIME
_FRACTION: Final = b'%b%b"timestamp":"%b%b.%06d+00:00",%b'
_WHOLE: Final = b'%b%b"timestamp":"%b%b+00:00",%b'


def events_of(rows: Iterable[tuple[int, str, int, bytes]]) -> list[dict[str, Any]]:
    """The events of rows of (form, name, ts, body): `event_json` then one decode each,
    in one loop (the read path of every query)."""
    loads, names, hours, clock = orjson.loads, _NAMES, _HOURS, _MINUTES_SECONDS
    events: list[dict[str, Any]] = []
    append = events.append
    for form, name, ts, body in rows:
        if form == _USUAL:
            start, cut = b"{", 1
        elif form == _USUAL | ID:
            start, cut = body[:_ID_END], _ID_END
        else:
            append(loads(_event_json(form, name, ts, body)))
            continue
        seconds, fraction = divmod(ts, 1_000_000)
        hour, rest = divmod(seconds, 3600)
        head = hours.get(hour) or _hour(hour)
        member = names.get(name) or _name_member(name)
        if fraction:
            text = _FRACTION % (start, member, head, clock[rest], fraction, body[cut:])
        else:
            text = _WHOLE % (start, member, head, clock[rest], body[cut:])
        append(loads(text))
    return events


def _event_json(form: int, name: str, ts: int, body: bytes) -> bytes:
    if not form:
        return body
    head = _name_member(name) if form & NAME else b""
    if form & TIME:
        seconds, fraction = divmod(ts, 1_000_000)
        hour, rest = divmod(seconds, 3600)
        stamp = _hour(hour) + _MINUTES_SECONDS[rest]
        if fraction:
            stamp += b".%06d" % fraction
        head += b'"timestamp":"' + stamp + b'+00:00",'
    if form & ID:
        return body[:_ID_END] + head + body[_ID_END:]
    return b"{" + head + body[1:]


def _fold(key: bytes) -> int:
    # 16 bytes into a signed 64-bit integer: ids that differ anywhere still
    # differ (UUIDv7s of one millisecond differ in their first half only,
    # counter-based ones in their second half).
    return int.from_bytes(key[:8], signed=True) ^ int.from_bytes(key[8:], signed=True)


def key_for(event_id: str) -> int:
    """The 64-bit key of an event id: its 16 bytes folded in two, where the 16
    bytes are a UUID's own, or else a BLAKE2b digest of the id. A content id
    (``h-`` + 32 hex digits, as `row_for` makes them) gives its digest's first
    8 bytes, as `compact_row` does for an event without an id.

    Two different events share a key only if they also share name and time and
    their ids collide in 64 bits.
    """
    if len(event_id) == 36 and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-":
        try:
            return _fold(bytes.fromhex(event_id.replace("-", "")))
        except ValueError:
            pass
    elif len(event_id) == 34 and event_id.startswith("h-"):
        try:
            return int.from_bytes(bytes.fromhex(event_id[2:18]), signed=True)
        except ValueError:
            pass
    return _fold(
        hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    )


def from_legacy(row: tuple[str, str, int, bytes]) -> CompactRow:
    """A compact row (form 0: the whole encoding kept) from a `row_for` row."""
    event_id, name, ts, body = row
    return key_for(event_id), name, ts, 0, body


def compact_row(event: dict[str, Any]) -> CompactRow:
    """The compact row that stores `event` (see module docs); on the write path of every event."""
    body = dumps(event)  # shared with sibling sinks within a fan-out
    name = event.get("name")
    stamp = event.get("timestamp")
    if type(name) is not str or not (type(stamp) is datetime and stamp.tzinfo is UTC):
        return from_legacy(row_for(event))  # unusual events: the general path
    ts = (stamp - _EPOCH) // _MICROSECOND
    if ts < 0:
        return from_legacy(row_for(event))
    # The member's length: orjson writes a UTC datetime in 25 characters, 32 with
    # microseconds, between the quotes (the opening one ends _OPEN_TIME), then ",.
    size = len(_OPEN_TIME) + (34 if stamp.microsecond else 27)
    event_id = event.get("id")
    if event_id is None:
        digest = hashlib.blake2b(body, digest_size=16).digest()  # as `row_for` derives it
        key = int.from_bytes(digest[:8], signed=True)
        start = 1
        form = _USUAL
    elif type(event_id) is str and len(event_id) == 36:
        key = key_for(event_id)
        start = _ID_END
        form = _USUAL | ID
        if not body.startswith(b'{"id":"' + event_id.encode() + b'",'):
            return key, name, ts, 0, body
    else:
        return from_legacy(row_for(event))
    head = _HEADS.get(name) or _head(name)  # b'"name":"...","timestamp":"'
    cut = start + len(head) - len(_OPEN_TIME) + size
    if body.startswith(head, start) and body[cut - 2 : cut] == b'",':
        return key, name, ts, form, (b"{" if start == 1 else body[:start]) + body[cut:]
    return key, name, ts, 0, body  # members in another order: the whole encoding


_HEADS: dict[str, bytes] = {}  # name -> the name member and the time member's opening


def _head(name: str) -> bytes:
    if len(_HEADS) >= _CACHE_MAX:
        _HEADS.clear()
    head = _HEADS[name] = _name_member(name) + _OPEN_TIME
    return head


_OPEN_TIME: Final = b'"timestamp":"'
_MICROSECOND: Final = timedelta(microseconds=1)
