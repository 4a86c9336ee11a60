"""The Open edX README's module name for the tracker API: ``from eventtracking import track``."""

from __future__ import annotations

from typing import Any

from .tracker import (
    DEFAULT_TRACKER_NAME,
    TRACKERS,
    UNKNOWN_EVENT_TYPE,
    Tracker,
    register_tracker,
    set_default_factory,
)
from .tracker import get_or_build_tracker as get_tracker


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
