"""What a backend's ``DELIVERY`` key in a configuration tree means.

Next to ``ENGINE`` and ``OPTIONS`` (``delivery`` with lower-case keys)::

    [backends.pg]
    ENGINE = "eventtracking.backends.postgres.PostgresBackend"
    OPTIONS = { dsn = "postgresql://app@db/analytics" }
    DELIVERY = { mode = "durable", retry = { max_attempts = 20 } }

* no key: the backend's ``delivery_defaults`` when it declares them (the
  network backends: buffered with a journal; the SQLite store and JSON-lines
  files: inline), else the backend itself, called in the emitting thread, as
  Open edX's backends and any class of your own are;
* ``false`` (or None): the backend itself;
* ``true``: its ``delivery_defaults``, or buffered mode when it has none;
* a table: `DeliveryBackend` options over those defaults. The delivery
  backend is named after the backend's key in the tree unless it says
  ``name``; ``backend`` and the test hooks cannot be given.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any, Final

from .worker import DeliveryBackend

NO_SETTING: Final[Any] = object()
# DeliveryBackend arguments that configuration cannot give (the backend, test hooks).
_NOT_OPTIONS: Final = frozenset({"backend", "clock", "sleep", "rand"})
OPTIONS: Final = tuple(sorted(set(inspect.signature(DeliveryBackend).parameters) - _NOT_OPTIONS))
# Options of our backends in 5.0.0 that the delivery worker took over.
MOVED_OPTIONS: Final = ("max_delay", "retries", "max_buffered")


def carry_over(moved: Mapping[str, Any], setting: Any, path: str) -> Any:
    """`setting` with `moved` (OPTIONS of 5.0.0, found at `path`) turned into delivery options.

    ``max_delay`` stays ``max_delay``, ``retries`` N becomes ``retry.max_attempts``
    N + 1 and ``max_buffered`` becomes ``queue_size``; the delivery table wins
    where both say. A DeprecationWarning says where to move them.
    """
    if not moved:
        return setting
    names = ", ".join(sorted(moved))
    if setting is False or setting is None:
        raise ValueError(f"{path} sets {names}, which only the delivery worker uses; remove them")
    warnings.warn(
        f"{path}: {names} moved to the delivery worker: write them under DELIVERY "
        "(retries as retry.max_attempts, max_buffered as queue_size)",
        DeprecationWarning,
        stacklevel=4,
    )
    translated: dict[str, Any] = {}
    if "max_delay" in moved:
        translated["max_delay"] = moved["max_delay"]
    if "max_buffered" in moved and moved["max_buffered"] is not None:
        translated["queue_size"] = moved["max_buffered"]
    retries = moved.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool):
        translated["retry"] = {"max_attempts": retries + 1}
    elif "retries" in moved:
        raise ValueError(f"{path}.retries must be an int >= 0, not {retries!r}")
    table = setting if isinstance(setting, Mapping) else {}
    return {**translated, **table}


def deliver(backend: Any, setting: Any, name: str | None) -> Any:
    """`backend` as `setting` (a ``DELIVERY`` value, or `NO_SETTING`) asks; ValueError if bad."""
    # Declared by the class (as a mapping, or a property that gives one per
    # instance): a stand-in that answers every attribute (a MagicMock in Open
    # edX's tests) declares nothing.
    declared = hasattr(type(backend), "delivery_defaults")
    defaults = getattr(backend, "delivery_defaults", None) if declared else None
    if not isinstance(defaults, Mapping):
        defaults = None
    if setting is NO_SETTING:
        if defaults is None:
            return backend
        setting = {}
    if setting is False or setting is None:
        return backend
    if setting is True:
        setting = {}
    if not isinstance(setting, Mapping):
        raise ValueError(
            "must be true, false or a table of delivery options "
            f"(mode, journal_dir, batch_size, retry, ...), not {type(setting).__name__}"
        )
    if isinstance(backend, DeliveryBackend):
        raise ValueError("the component is a DeliveryBackend already; put its options in OPTIONS")
    unknown = sorted(set(setting) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown delivery option(s) {unknown}; valid options: {list(OPTIONS)}")
    options: dict[str, Any] = {**(defaults or {}), **setting}
    if name is not None:
        options.setdefault("name", name)
    try:
        return DeliveryBackend(backend, **options)
    except TypeError as exc:  # a value of the wrong kind that the checks did not name
        raise ValueError(str(exc)) from exc
