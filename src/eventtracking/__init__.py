"""eventtracking: named application events, enriched from nested contexts, delivered everywhere.

The public API (see README)::

    from eventtracking import track
    tracker = track.get_tracker()
    tracker.enter_context('outer', {'user_id': 10938})
    tracker.emit('navigation.request', {'url': 'http://www.edx.org/some/path/1'})
"""

from __future__ import annotations

from ._version import __version__
from .backends.jsonl import JSONLinesBackend
from .backends.logger import LoggerBackend
from .backends.routing import RoutingBackend
from .backends.sqlite import SQLiteBackend
from .config import load_tracker, tracker_from_config
from .event import new_event_id
from .exceptions import (
    EventError,
    EventTrackingError,
    ImproperlyConfigured,
    SerializationError,
    StoreError,
)
from .locator import DefaultContextLocator, ThreadLocalContextLocator
from .processors import (
    EventEmissionExit,
    NameWhitelistProcessor,
    Redactor,
    RegexFilter,
    Sampler,
)
from .store import Query, open_store
from .track import emit, get_tracker
from .tracker import Tracker, register_tracker

__all__ = [
    "DefaultContextLocator",
    "EventEmissionExit",
    "EventError",
    "EventTrackingError",
    "ImproperlyConfigured",
    "JSONLinesBackend",
    "LoggerBackend",
    "NameWhitelistProcessor",
    "Query",
    "Redactor",
    "RegexFilter",
    "RoutingBackend",
    "SQLiteBackend",
    "Sampler",
    "SerializationError",
    "StoreError",
    "ThreadLocalContextLocator",
    "Tracker",
    "__version__",
    "emit",
    "get_tracker",
    "load_tracker",
    "new_event_id",
    "open_store",
    "register_tracker",
    "tracker_from_config",
]
