"""The event envelope: time-ordered ids and UTC timestamps.

Ids are UUIDv7 (RFC 9562) in canonical text form: 48 bits of Unix milliseconds,
a 12-bit sequence that keeps ids from one process strictly increasing within a
millisecond, and 62 random bits from the operating system's generator, drawn
once per millisecond. Text ids cost less to build than `uuid.UUID` objects on
the emit path and go into every sink unchanged.

The random bits are read from the operating system 128 milliseconds' worth
at a time. ``os.urandom`` releases the interpreter lock for its system call,
so a call per millisecond handed the lock to the delivery worker about once
per millisecond, and the emitting thread then waited for it to come back:
in durable mode that wait was a tenth of the emitting thread's time.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from . import _process, diagnostics
from .exceptions import EventError

UNKNOWN_EVENT_TYPE: Final = "unknown"

_SEQ_TEXT: Final = tuple(f"-7{seq:03x}-" for seq in range(4096))
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)

# The id state of the current millisecond: (the end of that millisecond, as an
# aware datetime; prefix text; random tail text; next sequence number). It is
# replaced as a whole, under _lock, only when the millisecond changes; within a
# millisecond, itertools.count hands out sequence numbers atomically, so the
# common path takes no lock. Comparing two UTC datetimes is a memcmp in C,
# cheaper than reading a clock and dividing its nanoseconds.
_State = tuple[datetime, str, str, Iterator[int]]
_lock = threading.Lock()
_state: _State = (_EPOCH, "", "", itertools.count())


_hooked = False  # _after_fork_in_child is registered (on the first id, not at import)
_POOL_BYTES: Final = 8 * 128  # random bits for 128 milliseconds, read at once (module docs)
_pool = b""  # unused random bytes from the OS, 8 per millisecond; read under _lock
_pool_at = 0


def _after_fork_in_child() -> None:
    # Forget the millisecond state so the child draws fresh random bits and
    # never reuses the parent's (prefix, sequence, random) triples.
    global _lock, _state, _pool, _pool_at
    _lock = threading.Lock()
    _state = (_EPOCH, "", "", itertools.count())
    _pool, _pool_at = b"", 0  # never the parent's bits: its ids would repeat


def _roll(seen: _State, at: datetime) -> _State:
    """Start the millisecond of `at`, or borrow the next one (clock behind, sequence spent)."""
    global _state, _hooked, _pool, _pool_at
    with _lock:
        if not _hooked:  # once per process, on the first id
            _hooked = True
            _process.on_fork(after_in_child=_after_fork_in_child)
        if _state is seen:  # nobody rolled it meanwhile
            ms = (max(at, seen[0]) - _EPOCH) // _MS
            # 62 random bits from the OS generator, shared by the ids of this
            # millisecond (which differ by sequence); the top two bits become
            # the RFC 9562 variant "10". The sequence starts low in its 12 bits
            # so that bursts rarely spend it.
            if _pool_at >= len(_pool):
                _pool, _pool_at = os.urandom(_POOL_BYTES), 0
            bits = int.from_bytes(_pool[_pool_at : _pool_at + 8], "big")
            _pool_at += 8
            tail = f"{(bits >> 2) | (1 << 63):016x}"
            _state = (
                _EPOCH + (ms + 1) * _MS,
                f"{ms >> 16:08x}-{ms & 0xFFFF:04x}",
                f"{tail[:4]}-{tail[4:]}",
                itertools.count(ms & 0x1FF),
            )
        return _state


def new_event_id(at: datetime | None = None) -> str:
    """Return a new UUIDv7 as a lower-case canonical string; thread-safe and fork-safe.

    `at` (an aware datetime, default now) gives the id its millisecond; emit
    passes the event's timestamp, so an id and its event's time agree. Ids
    from one thread strictly increase, even if the clock steps back. Ids are
    unique, not secret: ids made in the same millisecond by one process share
    their random bits.
    """
    if at is None:
        at = datetime.now(UTC)
    state = _state
    if at >= state[0]:
        state = _roll(state, at)
    seq = next(state[3])
    while seq > 0xFFF:
        # More than ~3,500 ids in one millisecond: borrow the next millisecond
        # rather than break ordering (RFC 9562, 6.2).
        state = _roll(state, state[0])
        seq = next(state[3])
    return f"{state[1]}{_SEQ_TEXT[seq]}{state[2]}"  # one allocation, not two


def with_id(event: dict[str, Any]) -> dict[str, Any]:
    """`event` itself if it has an ``id``; else a copy with a new one in front.

    For events of the Open edX envelope (no ``id``) entering delivery: the id
    is given once, before the first write, so every retry and every store
    sees the same one. Its millisecond is the event's timestamp when that is
    an aware datetime.
    """
    if "id" in event:
        return event
    stamp = event.get("timestamp")
    at = stamp if isinstance(stamp, datetime) and stamp.tzinfo is not None else None
    return {"id": new_event_id(at), **event}


def event_id_time(event_id: str) -> datetime:
    """Return the creation time encoded in a UUIDv7 event id."""
    ms = int(event_id[:8] + event_id[9:13], 16)
    return datetime.fromtimestamp(ms / 1000, UTC)


def checked_name(name: object, strict: bool) -> str:
    """The event name to use for `name`: 'unknown' when empty; str() of others, or EventError.

    Outside strict mode a repaired name is logged once per type and counted
    under ``events.repaired_name``.
    """
    if name is None or name == "":
        return UNKNOWN_EVENT_TYPE
    if isinstance(name, str):
        return name
    if strict:
        raise EventError(f"event name must be a str, not {type(name).__name__}: {name!r}")
    text = str(name)
    diagnostics.warn_once(
        ("name", type(name).__name__),
        "event name of type %s converted to str %r",
        type(name).__name__,
        text,
    )
    diagnostics.increment("events.repaired_name")
    return text


def checked_data(name: str, data: object, strict: bool) -> dict[str, Any]:
    """The data dict to use for `data`: a copy of a Mapping; anything else kept as {'value': data}.

    In strict mode a non-mapping raises EventError; otherwise it is logged once
    per (name, type) and counted under ``events.repaired_data``.
    """
    if isinstance(data, Mapping):
        return dict(data)
    if strict:
        raise EventError(f"event {name!r}: data must be a mapping, not {type(data).__name__}")
    diagnostics.warn_once(
        ("data", name, type(data).__name__),
        "event %r: data of type %s is not a mapping; kept under data.value",
        name,
        type(data).__name__,
    )
    diagnostics.increment("events.repaired_data")
    return {"value": data}


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


Event = dict[str, Any]
"""An event is a plain dict: ``id``, ``name``, ``timestamp``, ``data``, ``context``."""
