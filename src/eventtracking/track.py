"""The Open edX README's module name for the tracker API: ``from eventtracking import track``.

It offers what `eventtracking.tracker` does, with one difference: its
`get_tracker()` builds the default tracker on first use, from configuration.
That is why it lives here, above both the tracker and the configuration,
and not in `tracker`, which never imports the configuration.
"""

from __future__ import annotations

from typing import Any

from . import _state
from .tracker import (
    DEFAULT_TRACKER_NAME,
    TRACKERS,
    UNKNOWN_EVENT_TYPE,
    Tracker,
    register_tracker,
    set_default_factory,
)


def get_tracker(name: str = DEFAULT_TRACKER_NAME) -> Tracker:
    """The tracker registered as `name`, building the default one on first use.

    The default tracker comes from the factory given to `set_default_factory`
    (the Django app gives one), else from the TOML file named by
    ``$EVENTTRACKING_CONFIG``, else it sends JSON to the Python logger
    ``tracking``. Other names raise KeyError when not registered.
    """
    try:
        return TRACKERS[name]
    except KeyError:
        if name != DEFAULT_TRACKER_NAME:
            raise
    with _state.default_lock:
        if name not in TRACKERS:
            TRACKERS[name] = _build_default_tracker()
        return TRACKERS[name]


def _build_default_tracker() -> Tracker:
    factory = _state.default_factory
    if factory is None:
        from .config import build_default_tracker

        return build_default_tracker()
    tracker: Tracker = factory()
    return tracker


def emit(name: Any = None, data: Any = None) -> None:
    """Emit on the default tracker, building it on first use (see `get_tracker`)."""
    get_tracker().emit(name, data)


__all__ = [
    "DEFAULT_TRACKER_NAME",
    "TRACKERS",
    "UNKNOWN_EVENT_TYPE",
    "Tracker",
    "emit",
    "get_tracker",
    "register_tracker",
    "set_default_factory",
]
