"""Private copies of events: what Open edX's ``copy.deepcopy`` promised, for less.

Open edX deep-copies every event before its processors and backends see it,
so nothing they do reaches the caller's data or the tracker's contexts, and
nothing the caller changes after emit reaches an event kept for later. We
copy only where somebody could tell (see `RoutingBackend` and `Tracker.emit`),
and copy JSON-like values by a direct walk that shares immutable scalars.
"""

from __future__ import annotations

import uuid
from copy import deepcopy
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from typing import Any, Final

from . import diagnostics

# Values nobody can change in place: shared between copies, as deepcopy shares them.
ATOMS: Final = frozenset(
    {str, int, float, bool, type(None), bytes, datetime, date, clock_time, Decimal, uuid.UUID}
)


def _walk(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        copy = value.copy()  # in C; then only the values that are not atoms are replaced
        for key, item in copy.items():
            if type(item) not in ATOMS:
                copy[key] = _walk(item)
        return copy
    if kind in ATOMS:
        return value
    if kind is list:
        return [item if type(item) in ATOMS else _walk(item) for item in value]
    return _deep(value)


def _deep(value: Any) -> Any:
    # copy.deepcopy, except that a value it cannot copy (a dict view, a lock,
    # an open file) is shared: where Open edX's deep copy raised out of emit,
    # the event is still delivered.
    try:
        return deepcopy(value)
    except Exception:
        diagnostics.increment("events.uncopyable")
        return value


def isolated_copy(value: Any) -> Any:
    """A deep copy of `value` that shares nothing anybody could change.

    Dicts, lists and immutable scalars are copied by a direct walk; anything
    else (and a structure that refers to itself) goes through `copy.deepcopy`;
    what that cannot copy is shared, and counted (``events.uncopyable``).
    """
    try:
        return _walk(value)
    except RecursionError:  # a cycle, or nesting deeper than the walk allows
        return _deep(value)


def kept_copy(event: Any) -> Any:
    """`event` with a private ``data``: what a backend that keeps events may be given.

    The event dict is copied, and its ``data`` deeply, so that a caller
    changing its data dict after emit changes nothing kept. The context is
    shared: a tracker builds a context dict for each event, or shares one it
    never changes. Anything but a dict is copied whole.
    """
    if type(event) is not dict:
        return isolated_copy(event)
    copy = event.copy()
    data = copy.get("data")
    if type(data) not in ATOMS:
        copy["data"] = isolated_copy(data)
    return copy


def nested_keys(context: dict[str, Any]) -> tuple[str, ...]:
    """The keys of `context` whose values are not atoms (a private copy copies those)."""
    return tuple(key for key, value in context.items() if type(value) not in ATOMS)
