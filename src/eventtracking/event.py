"""The event envelope: time-ordered ids and UTC timestamps.

Ids are UUIDv7 (RFC 9562) in canonical text form: 48 bits of Unix milliseconds,
a 12-bit sequence that keeps ids from one process strictly increasing within a
millisecond, and 62 random bits from the operating system's generator, drawn
once per millisecond. Text ids cost less to build than `uuid.UUID` objects on
the emit path and go into every sink unchanged.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any, Final

UNKNOWN_EVENT_TYPE: Final = "unknown"

_SEQ_TEXT: Final = tuple(f"-7{seq:03x}-" for seq in range(4096))
_lock = threading.Lock()
_last_ms = 0
_prefix = ""
_tail = ""
_seq = 0


def _after_fork_in_child() -> None:
    # Forget the millisecond state so the child draws fresh random bits and
    # never reuses the parent's (prefix, sequence, random) triples.
    global _lock, _last_ms
    _lock = threading.Lock()
    _last_ms = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


def _millisecond_prefix(ms: int) -> tuple[str, str]:
    # 62 random bits from the OS generator, drawn once per millisecond and
    # shared by the ids of that millisecond, which differ by their sequence.
    # The top two bits become the RFC 9562 variant "10".
    tail = (int.from_bytes(os.urandom(8), "big") >> 2) | (1 << 63)
    text = f"{tail:016x}"
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}", f"{text[:4]}-{text[4:]}"


def new_event_id() -> str:
    """Return a new UUIDv7 as a lower-case canonical string; thread-safe and fork-safe.

    Ids are unique, not secret: ids made in the same millisecond by one process
    share their random bits.
    """
    global _last_ms, _prefix, _tail, _seq
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            _prefix, _tail = _millisecond_prefix(ms)
            # Start low in the 12-bit space so that bursts rarely overflow it.
            _seq = ms & 0x1FF
        else:
            _seq += 1
            if _seq > 0xFFF:
                # More than ~3,500 ids in one millisecond: borrow the next
                # millisecond rather than break ordering (RFC 9562, 6.2).
                _last_ms += 1
                _prefix, _tail = _millisecond_prefix(_last_ms)
                _seq = 0
        return _prefix + _SEQ_TEXT[_seq] + _tail


def event_id_time(event_id: str) -> datetime:
    """Return the creation time encoded in a UUIDv7 event id."""
    ms = int(event_id[:8] + event_id[9:13], 16)
    return datetime.fromtimestamp(ms / 1000, UTC)


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


Event = dict[str, Any]
"""An event is a plain dict: ``id``, ``name``, ``timestamp``, ``data``, ``context``."""
