"""Self-metrics and rate-limited internal warnings.

Counters are process-wide and cheap to bump; `snapshot()` copies them for
`Tracker.stats()` and the CLI. Warnings about a recurring problem are logged
once per key, so a bad event type emitted a million times logs one line, and
the counter tells how often it happened. No message here ever carries an
event payload: callers pass names, paths, sizes and types only.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter

LOG = logging.getLogger("eventtracking")

_counters: Counter[str] = Counter()
_lock = threading.Lock()
_warned: set[tuple[str, ...]] = set()
_MAX_WARNED_KEYS = 10_000
_last_logged: dict[str, float] = {}


def increment(name: str, amount: int = 1) -> None:
    """Add `amount` to the counter `name` (thread-safe)."""
    with _lock:
        _counters[name] += amount


def snapshot() -> dict[str, int]:
    """Return a copy of every counter."""
    with _lock:
        return dict(_counters)


def reset() -> None:
    """Zero every counter and forget which warnings were logged (for tests)."""
    with _lock:
        _counters.clear()
        _warned.clear()
        _last_logged.clear()


def warn_once(key: tuple[str, ...], message: str, *args: object) -> None:
    """Log `message` at WARNING the first time `key` is seen in this process."""
    with _lock:
        if key in _warned:
            return
        if len(_warned) < _MAX_WARNED_KEYS:
            _warned.add(key)
    LOG.warning(message, *args)


def log_burst(key: str, message: str, *args: object, interval: float = 60.0) -> bool:
    """Log `message` (with the active exception, if any) at most once per `interval` per key.

    Returns True when the line was written, so callers can skip building extras.
    """
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(key)
        if last is not None and now - last < interval:
            return False
        _last_logged[key] = now
    # The traceback only when called while handling an exception.
    LOG.warning(message, *args, exc_info=sys.exc_info()[0] is not None)
    return True
