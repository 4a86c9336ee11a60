"""The event envelope: time-ordered ids and UTC timestamps.

Ids are UUIDv7 (RFC 9562) in canonical text form: 48 bits of Unix milliseconds,
a 12-bit sequence that keeps ids from one process strictly increasing within a
millisecond, and 62 random bits. Text ids cost less to build than `uuid.UUID`
objects on the emit path and go into every sink unchanged.
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any, Final

UNKNOWN_EVENT_TYPE: Final = "unknown"

_rng = random.Random()
_lock = threading.Lock()
_last_ms = 0
_seq = 0


def _reseed_after_fork() -> None:
    # A forked child starts with the parent's generator state; without a new
    # seed, parent and child would produce the same ids.
    global _lock
    _lock = threading.Lock()
    _rng.seed()


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_event_id() -> str:
    """Return a new UUIDv7 as a lower-case canonical string; thread-safe and fork-safe."""
    global _last_ms, _seq
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            # Start low in the 12-bit space so that bursts rarely overflow it.
            _seq = _rng.getrandbits(9)
        else:
            _seq += 1
            if _seq > 0xFFF:
                # More than ~3,500 ids in one millisecond: borrow the next
                # millisecond rather than break ordering (RFC 9562, 6.2).
                _last_ms += 1
                _seq = 0
            ms = _last_ms
        seq = _seq
    rand = _rng.getrandbits(62)
    return "%08x-%04x-7%03x-%04x-%012x" % (  # noqa: UP031 - fastest formatting here
        ms >> 16,
        ms & 0xFFFF,
        seq,
        0x8000 | (rand >> 48),
        rand & 0xFFFFFFFFFFFF,
    )


def event_id_time(event_id: str) -> datetime:
    """Return the creation time encoded in a UUIDv7 event id."""
    ms = int(event_id[:8] + event_id[9:13], 16)
    return datetime.fromtimestamp(ms / 1000, UTC)


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


Event = dict[str, Any]
"""An event is a plain dict: ``id``, ``name``, ``timestamp``, ``data``, ``context``."""
