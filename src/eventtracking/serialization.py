"""One JSON encoder for every sink.

`dumps(event)` returns UTF-8 JSON bytes through orjson. orjson encodes dicts,
lists, tuples, str, int, float, bool, None, datetimes (naive ones as UTC),
dates, times, UUIDs, enums and dataclasses natively; `_default` adds Decimal
(as a string, exactly), set and frozenset (as sorted lists where sortable),
bytes (as base64 text) and any other Mapping or iterable view.

A value that still cannot be encoded never loses the event: the encoder walks
the event once to find each bad value, replaces it with a marked repr
(``"<unserializable TYPE: REPR>"``), logs one warning per event name and
problem, and counts it under ``serialization.repaired``. In strict mode the
tracker calls `check(event)` at emit instead, which raises `SerializationError`
naming the event and the field path.

Encode once: inside a sharing scope (`begin_sharing` ... `end_sharing`,
opened by a routing backend around a fan-out to two or more backends that
never change events), `dumps` and `dumps_line` remember the bytes of each
event object they encode, and return them again for the same object, so ten
sinks of one event cost one encoding. The bytes can never belong to a changed
event: the scope lasts one fan-out on one thread, where no caller code runs;
a processor's branch works on its own copy (another object, so encoded
afresh); and after any backend that may change events the routing backend
calls `forget`, which drops every remembered encoding. Outside a scope every
call encodes.

A scope may also start with encodings made earlier: for a batch read from
the journal (durable mode, or events spilled there) the delivery worker
opens one holding each event's record, when its backend never changes
events, so the bytes journaled are the bytes delivered. That is safe because
those bytes are the event as it was journaled: the journal is the record of
what was emitted, and a process that delivers the same records after a
restart sends them as they are. A caller that changes an event after
emitting it changes nothing delivered, in this process as after a restart.
The scope holds each event, so its id cannot be reused by another object
meanwhile.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from decimal import Decimal
from itertools import repeat
from operator import is_, itemgetter
from typing import Any, Final

import orjson

from . import diagnostics
from .exceptions import SerializationError

OPTIONS: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS
# Non-string keys are rare and OPT_NON_STR_KEYS slows every call, so the first
# attempt goes without it; the output is identical when all keys are strings.
_FAST: Final = orjson.OPT_NAIVE_UTC
_FAST_LINE: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_APPEND_NEWLINE
MAX_DEPTH: Final = 200  # orjson refuses deeper nesting (254); leave headroom
_REPR_LIMIT: Final = 200
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Set):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError


class _Sharing(threading.local):
    """This thread's sharing scope: None outside one, else id(event) -> [event, body, line]."""

    cache: dict[int, list[Any]] | None = None


_sharing: Final = _Sharing()


class _Given(dict[int, list[Any]]):
    """A scope's cache that starts from encodings made earlier (see `begin_sharing_known`).

    They wait in order: a batch sent whole is found in them (`_known`), and
    only the first lookup of a single event moves them all into the dict,
    since an entry per event costs more than such a batch needs. A plain
    dict serves every other scope, so their lookups cost what they did.
    """

    __slots__ = ("bodies", "events")

    def __init__(self, events: Sequence[Mapping[str, Any]], bodies: Sequence[bytes]) -> None:
        super().__init__()
        if len(events) != len(bodies):
            raise ValueError(f"begin_sharing_known: {len(events)} events but {len(bodies)} bodies")
        self.events, self.bodies = events, bodies

    def get(self, key: int, default: Any = None) -> Any:
        """`dict.get`, once the encodings given have moved in."""
        if self.events:
            events, bodies = self.events, self.bodies
            self.events = self.bodies = ()
            entries = map(list, zip(events, bodies, repeat(None), strict=False))  # repeat: endless
            self.update(zip(map(id, events), entries, strict=True))
        return dict.get(self, key, default)


def begin_sharing() -> None:
    """Open a sharing scope on this thread (see module docs); a new scope starts empty.

    Call `end_sharing` in a ``finally``. Scopes do not nest: an inner fan-out
    that opens one ends sharing for the rest of the outer one, which then
    encodes each event again (correct, only slower).
    """
    _sharing.cache = {}


def begin_sharing_known(events: Sequence[Mapping[str, Any]], bodies: Sequence[bytes]) -> None:
    """`begin_sharing`, knowing the `bodies` of `events` (see module docs).

    `bodies` are the bytes `dumps` made of `events`, in the same order (the
    journal's records of them): within the scope `dumps` and its kin return
    those bytes for those very objects. Neither sequence may change while it
    lasts. ValueError when the two lengths differ.
    """
    _sharing.cache = _Given(events, bodies) if events else {}


def end_sharing() -> None:
    """Close this thread's sharing scope: every call encodes again."""
    _sharing.cache = None


def forget() -> None:
    """Drop the encodings remembered in this thread's scope (after a backend that may
    have changed the event); the scope stays open."""
    if _sharing.cache is not None:
        _sharing.cache = {}


def _encode(event: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(event, default=_default, option=_FAST)
    except (orjson.JSONEncodeError, TypeError):
        return _dumps_slow(event)


def _encode_line(event: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(event, default=_default, option=_FAST_LINE)
    except (orjson.JSONEncodeError, TypeError):
        return _dumps_slow(event) + b"\n"


def dumps(event: Mapping[str, Any]) -> bytes:
    """Encode `event` as JSON bytes; never raises for a bad value (see module docs).

    Inside a sharing scope, the same event object gives the same bytes object.
    """
    cache = _sharing.cache
    if cache is None:  # _encode, without the call: the path of every single sink
        try:
            return orjson.dumps(event, default=_default, option=_FAST)
        except (orjson.JSONEncodeError, TypeError):
            return _dumps_slow(event)
    entry = cache.get(id(event))
    if entry is None or entry[0] is not event:
        body = _encode(event)
        cache[id(event)] = [event, body, None]  # holds `event`: its id is not reused
        return body
    body = entry[1]
    if body is None:
        body = entry[1] = entry[2][:-1]
    return body  # type: ignore[no-any-return]


def dumps_line(event: Mapping[str, Any]) -> bytes:
    """`dumps` followed by a newline, for line-oriented sinks (shared the same way)."""
    cache = _sharing.cache
    if cache is None:  # _encode_line, without the call
        try:
            return orjson.dumps(event, default=_default, option=_FAST_LINE)
        except (orjson.JSONEncodeError, TypeError):
            return _dumps_slow(event) + b"\n"
    entry = cache.get(id(event))
    if entry is None or entry[0] is not event:
        line = _encode_line(event)
        cache[id(event)] = [event, None, line]
        return line
    line = entry[2]
    if line is None:
        line = entry[2] = entry[1] + b"\n"
    return line  # type: ignore[no-any-return]


_event_of: Final = itemgetter(0)
_body_of: Final = itemgetter(1)


def _known(cache: dict[int, list[Any]], events: Sequence[Mapping[str, Any]]) -> list[Any] | None:
    """The bytes this scope knows for each of `events`, or None if it lacks one.

    An element is None where only the line was made. Found from C, with no
    Python call per event.
    """
    if type(cache) is _Given and cache.events:
        given = cache.events
        if len(given) == len(events) and all(map(is_, events, given)):
            return list(cache.bodies)  # the batch begin_sharing_known was given: no lookups
        return None  # the dict is empty until a lookup moves the given encodings in
    try:
        entries = list(map(cache.__getitem__, map(id, events)))
    except KeyError:
        return None
    if not all(map(is_, map(_event_of, entries), events)):
        return None
    return list(map(_body_of, entries))


def dumps_lines(events: Iterable[Mapping[str, Any]]) -> bytes:
    """`dumps_line` of each event, joined: the lines of a batch, for line-oriented sinks."""
    cache = _sharing.cache
    events = events if type(events) is list else list(events)  # may be walked twice
    if cache is None:
        # One orjson call per event, all made from C (map passes default and
        # option positionally); any event that needs a fallback sends the whole
        # batch the slower way, event by event.
        try:
            return b"".join(map(orjson.dumps, events, repeat(_default), repeat(_FAST_LINE)))
        except (orjson.JSONEncodeError, TypeError):
            pass
    elif bodies := _known(cache, events):
        try:
            bodies[-1] += b"\n"  # so that the one join is the only copy of the batch
            return b"\n".join(bodies)
        except TypeError:  # a None: not every body was made
            pass
    return b"".join([dumps_line(event) for event in events])


def dumps_array(events: Sequence[Mapping[str, Any]]) -> bytes:
    """The JSON array of `events`, each element exactly the bytes `dumps(event)` gives.

    One orjson call over the whole list when every event takes `dumps`'s
    first path (about four times faster than a call per event on the
    delivery benchmark's batches); in a sharing scope that knows every
    event's bytes, those bytes joined; otherwise event by event, with repair.
    """
    cache = _sharing.cache
    if cache is None:
        try:
            batch = events if type(events) is list else list(events)
            return orjson.dumps(batch, default=_default, option=_FAST)
        except (orjson.JSONEncodeError, TypeError):
            pass
    elif bodies := _known(cache, events):
        try:
            # Brackets on the first and last bodies: the join is the one copy of the batch.
            bodies[0] = b"[" + bodies[0]
            bodies[-1] += b"]"
            return b",".join(bodies)
        except TypeError:  # a None: not every body was made
            pass
    return b"[" + b",".join([dumps(event) for event in events]) + b"]"


def _dumps_slow(event: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(event, default=_default, option=OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        return _dumps_repaired(event)


def dumps_str(event: Mapping[str, Any]) -> str:
    """`dumps` decoded to str, for text sinks such as the logging module."""
    return dumps(event).decode("utf-8")


loads = orjson.loads


def check(event: Mapping[str, Any]) -> None:
    """Raise `SerializationError` for the first value of `event` that cannot be encoded."""
    try:
        orjson.dumps(event, default=_default, option=OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        for path, problem in problems(event):
            raise SerializationError(_event_name(event), path, problem) from None
        raise  # orjson failed on something the walk accepts: a bug, show it


def problems(event: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield ``(path, problem)`` for every value of `event` that cannot be encoded."""
    for key, value in event.items():
        yield from _walk(value, str(key), set(), 1)


def _event_name(event: Mapping[str, Any]) -> str:
    name = event.get("name")
    return name if isinstance(name, str) else repr(name)


def _walk(value: Any, path: str, seen: set[int], depth: int) -> Iterator[tuple[str, str]]:
    problem = _scalar_problem(value)
    if problem is not None:
        yield path, problem
        return
    children = _children(value)
    if children is None:
        return
    if depth > MAX_DEPTH:
        yield path, f"nested deeper than {MAX_DEPTH} levels"
        return
    if id(value) in seen:
        yield path, "circular reference"
        return
    seen.add(id(value))
    for key, child in children:
        if not isinstance(key, _KEY_TYPES):
            yield f"{path}.{key!r}", f"key of type {type(key).__name__} is not allowed"
            continue
        yield from _walk(child, f"{path}.{key}", seen, depth + 1)
    seen.discard(id(value))


_KEY_TYPES = (str, int, float, bool, uuid.UUID, enum.Enum, type(None), _dt.date, _dt.time)
_NATIVE = (str, bool, float, type(None), _dt.date, _dt.time, uuid.UUID, enum.Enum, Decimal)


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "string holds a lone surrogate (not valid Unicode)"
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if _INT64_MIN <= value <= _UINT64_MAX:
            return None
        return "integer does not fit in 64 bits"
    if isinstance(value, (*_NATIVE, bytes, bytearray, memoryview)):
        return None
    if isinstance(value, Mapping | list | tuple | Set):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return None
    return f"value of type {type(value).__name__} is not JSON serializable"


def _children(value: Any) -> Iterator[tuple[Any, Any]] | None:
    if isinstance(value, Mapping):
        return iter(value.items())
    if isinstance(value, list | tuple):
        return iter(enumerate(value))
    if isinstance(value, Set):
        return iter(enumerate(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return iter((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    return None


def marked_repr(value: Any) -> str:
    """The text that stands in for a value that cannot be encoded."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not lose the event either
        text = "?"
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return f"<unserializable {type(value).__name__}: {text}>"


def sanitize(event: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Return a copy of `event` in which every bad value is a marked repr, and the problems."""
    found: list[tuple[str, str]] = []
    clean = {str(k): _clean(v, str(k), set(), 1, found) for k, v in event.items()}
    return clean, found


def _clean(value: Any, path: str, seen: set[int], depth: int, found: list[tuple[str, str]]) -> Any:
    problem = _scalar_problem(value)
    if problem is not None:
        found.append((path, problem))
        if isinstance(value, str):  # keep the text, with U+FFFD for each lone surrogate
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return marked_repr(value)
    children = _children(value)
    if children is None:
        return value
    if depth > MAX_DEPTH or id(value) in seen:
        found.append((path, "circular reference" if id(value) in seen else "nested too deep"))
        return marked_repr(value) if depth <= MAX_DEPTH else "<unserializable: nested too deep>"
    seen.add(id(value))
    try:
        if isinstance(value, Mapping) or dataclasses.is_dataclass(value):
            out: dict[Any, Any] = {}
            for key, child in children:
                if not isinstance(key, _KEY_TYPES):
                    found.append((f"{path}.{key!r}", f"key of type {type(key).__name__}"))
                    key = marked_repr(key)
                out[key] = _clean(child, f"{path}.{key}", seen, depth + 1, found)
            return out
        return [_clean(child, f"{path}.{i}", seen, depth + 1, found) for i, child in children]
    finally:
        seen.discard(id(value))


def _dumps_repaired(event: Mapping[str, Any]) -> bytes:
    clean, found = sanitize(event)
    name = _event_name(event)
    for path, problem in found:
        diagnostics.warn_once(
            ("serialization", name, path, problem),
            "event %r: field %s replaced by a marked repr: %s",
            name,
            path,
            problem,
        )
    diagnostics.increment("serialization.repaired")
    return orjson.dumps(clean, default=_default, option=OPTIONS)


def skip_unencodable(label: str, event: Mapping[str, Any], exc: Exception) -> None:
    """Count and log (once per name) an event not even the repair can encode.

    A string with a lone surrogate is one: skipping that event is better than
    a batch that can never be written and blocks every event behind it.
    """
    diagnostics.increment(f"{label}.unencodable")
    name = str(event.get("name"))
    diagnostics.warn_once(
        (f"{label}.unencodable", name),
        "%s: event %r cannot be encoded even after repair (%s); skipped and counted",
        label,
        name,
        exc,
    )
