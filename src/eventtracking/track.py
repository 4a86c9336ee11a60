"""The Open edX README's module name for the tracker API: ``from eventtracking import track``."""

from __future__ import annotations

from .tracker import (
    DEFAULT_TRACKER_NAME,
    TRACKERS,
    UNKNOWN_EVENT_TYPE,
    Tracker,
    emit,
    get_tracker,
    register_tracker,
    set_default_factory,
)

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
