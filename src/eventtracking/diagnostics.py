"""Self-metrics and rate-limited internal warnings.

Counters are process-wide and cheap to bump; `snapshot()` copies them for
the CLI. Some belong to one object as well (a routing backend's backend and
processor errors, a LoggerBackend's oversize drops): that object bumps them
through its own `Counters`, which adds to the process totals too, so that
`Tracker.stats()` can report what the tracker's own backends counted.

Warnings about a recurring problem are logged once per key, so a bad event
type emitted a million times logs one line, and the counter tells how often
it happened. No message here ever carries an event payload: callers pass
names, paths, sizes and types only.

Names and paths can come from a browser, so every line is escaped (see
`logsafe`) and every kind of warning (the first part of its key) has a
budget: at most `WARN_BUDGET` lines per `WARN_WINDOW` seconds. What goes over
is counted under ``diagnostics.suppressed.KIND`` and reported in one line
when the kind next logs; the other counters always keep the full numbers.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Final

from . import _state
from .logsafe import safe_logger

LOG = safe_logger("eventtracking")
WARN_BUDGET: Final = 20  # lines per kind of warning per window
WARN_WINDOW: Final = 60.0  # seconds

_MAX_WARNED_KEYS = 10_000
# The state itself (counters, warned keys, budgets) lives in `_state`.
_lock = _state.counters_lock
_counters = _state.counters
_warned = _state.warned
_last_logged = _state.last_logged
_budgets = _state.budgets
_owned_names = _state.owned_names
_all_owned = _state.all_owned


def increment(name: str, amount: int = 1) -> None:
    """Add `amount` to the counter `name` (thread-safe)."""
    with _lock:
        _counters[name] += amount


def snapshot() -> dict[str, int]:
    """Return a copy of every counter."""
    with _lock:
        return dict(_counters)


def owned_names() -> frozenset[str]:
    """The names counted through a `Counters` (per owner) at least once since `reset()`."""
    with _lock:
        return frozenset(_owned_names)


class Counters:
    """Counters that belong to one object, also added to the process-wide totals.

    For what a tracker's own routing counts: `Tracker.stats()` sums the
    `Counters` found in its backend tree, and reports for every name in
    `owned_names()` only that sum, so two trackers never see each other's
    errors; `snapshot()` (module level) keeps the totals of the process.
    Bump only on rare paths (errors, drops): each bump takes the module lock.
    """

    __slots__ = ("__weakref__", "_counts")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        with _lock:
            _all_owned.add(self)

    def increment(self, name: str, amount: int = 1) -> None:
        """Add `amount` to `name` here and in the process totals (thread-safe)."""
        with _lock:
            self._counts[name] += amount
            _counters[name] += amount
            _owned_names.add(name)

    def snapshot(self) -> dict[str, int]:
        """A copy of this owner's counters."""
        with _lock:
            return dict(self._counts)


def reset() -> None:
    """Zero every counter and forget which warnings were logged (for tests)."""
    with _lock:
        _counters.clear()
        for owned in _all_owned:
            owned._counts.clear()
        _owned_names.clear()
        _warned.clear()
        _last_logged.clear()
        _budgets.clear()


def warn_once(key: tuple[str, ...], message: str, *args: object) -> None:
    """Log `message` at WARNING the first time `key` is seen in this process."""
    with _lock:
        if key in _warned:
            return
        suppressed = _spend(key[0] if key else "", time.monotonic())
        if suppressed is None:
            return  # not marked as warned: it may be logged once the budget allows
        if len(_warned) < _MAX_WARNED_KEYS:
            _warned.add(key)
    _report_suppressed(key[0] if key else "", suppressed)
    LOG.warning(message, *args)


def _spend(kind: str, now: float) -> int | None:
    """Take one line from `kind`'s budget (under `_lock`).

    None when the budget is spent (the line is counted as suppressed);
    otherwise how many lines the previous window suppressed.
    """
    state = _budgets.get(kind)
    if state is None or now - state[0] >= WARN_WINDOW:
        _budgets[kind] = [now, 1, 0]
        return int(state[2]) if state is not None else 0
    if state[1] < WARN_BUDGET:
        state[1] += 1
        return 0
    state[2] += 1
    _counters[f"diagnostics.suppressed.{kind}"] += 1
    return None


def _report_suppressed(kind: str, count: int) -> None:
    if count:
        LOG.warning(
            "%d more %r warning(s) suppressed in the last %.0fs (budget %d); "
            "the counters keep the full numbers",
            count,
            kind,
            WARN_WINDOW,
            WARN_BUDGET,
        )


def log_burst(key: str, message: str, *args: object, interval: float = 60.0) -> bool:
    """Log `message` (with the active exception, if any) at most once per `interval` per key.

    Returns True when the line was written, so callers can skip building extras.
    """
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(key)
        if last is not None and now - last < interval:
            return False
        kind = key.partition(":")[0]
        suppressed = _spend(kind, now)
        if suppressed is None:
            return False
        if len(_last_logged) >= _MAX_WARNED_KEYS:  # keys may name paths: keep the table bounded
            del _last_logged[next(iter(_last_logged))]
        _last_logged[key] = now
    _report_suppressed(kind, suppressed)
    # The traceback only when called while handling an exception.
    LOG.warning(message, *args, exc_info=sys.exc_info()[0] is not None)
    return True
