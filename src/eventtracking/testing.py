"""Public test helpers: an in-memory backend and `capture_events()`.

Example::

    from eventtracking.testing import capture_events
    with capture_events() as events:
        tracker.emit('a.b', {'x': 1})
    assert events[0]['name'] == 'a.b'
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .tracker import Tracker
from .tracker import get_or_build_tracker as get_tracker


class InMemoryBackend:
    """Keep every event it receives in `events` (a list), in order; thread-safe."""

    def __init__(self, maxlen: int | None = None) -> None:
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen <= 0):
            raise ValueError(f"maxlen must be a positive int or None, not {maxlen!r}")
        self.events: list[dict[str, Any]] = []
        self.maxlen = maxlen
        self._lock = threading.Lock()
        self.closed = False

    def send(self, event: dict[str, Any]) -> None:
        """Record `event`; RuntimeError after `close()`."""
        if self.closed:
            raise RuntimeError("InMemoryBackend is closed")
        if self.maxlen is None:
            self.events.append(event)  # list.append is atomic under the GIL
            return
        with self._lock:
            self.events.append(event)
            if len(self.events) > self.maxlen:
                del self.events[0]

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        """Record several events."""
        for event in events:
            self.send(event)

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing is ever pending; always True."""
        return True

    def close(self) -> None:
        """Mark the backend closed (later sends raise); the recorded events stay readable."""
        self.closed = True

    def names(self) -> list[str]:
        """The names of the recorded events, in order."""
        return [event["name"] for event in self.events]

    def clear(self) -> None:
        """Forget every recorded event."""
        with self._lock:
            self.events.clear()


@contextmanager
def capture_events(
    tracker: Tracker | None = None, name: str = "capture"
) -> Iterator[list[dict[str, Any]]]:
    """Record, for the duration of the block, every event `tracker` sends (default tracker).

    Yields the live list of captured events. The capturing backend is added
    under `name` and removed afterwards; the tracker's other backends still run.
    """
    target = tracker if tracker is not None else get_tracker()
    routing = target.routing_backend
    if name in routing.backends:
        raise ValueError(f"tracker already has a backend named {name!r}; pass another name")
    backend = InMemoryBackend()
    routing.register_backend(name, backend)
    try:
        yield backend.events
    finally:
        routing.backends = {k: v for k, v in routing.backends.items() if k != name}
