"""The live feed: one thread follows the store and keeps its newest events in memory.

Every page watching the feed reads from the same bounded ring (`capacity`
events), so ten open browsers cost one store poll, not ten. Each event gets
a feed position (1, 2, 3...); a reader keeps the last position it saw and
asks for what came after. A reader that falls more than `capacity` events
behind skips ahead (the page says how many it missed).

The follower uses a connection of its own (`store.follow`, which for
PostgreSQL also catches transactions that commit out of order); `close()`
ends it. A store that fails is opened again after `RETRY_SECONDS`, and the
error is shown until then.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from ..store import EventStore

RETRY_SECONDS: Final = 2.0


class LiveFeed:
    """The newest events of a store, fed by a background thread; thread-safe.

    `open_store` opens a new reading connection (called on start and after a failure).
    """

    def __init__(
        self,
        open_store: Callable[[], EventStore],
        capacity: int = 2000,
        poll_interval: float = 0.2,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._open = open_store
        self.poll_interval = poll_interval
        self._ring: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self._position = 0
        self._changed = threading.Condition()
        self._closed = False
        self._store: EventStore | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="eventtracking-console-feed")
        self._thread.daemon = True  # a console stopped by Ctrl-C must not wait for a poll
        self._started = threading.Event()

    def start(self) -> None:
        """Start following; returns once the starting point is fixed (or the first error)."""
        self._thread.start()
        self._started.wait(10.0)

    @property
    def position(self) -> int:
        """The position of the newest event in the feed (0 before the first)."""
        return self._position

    def after(
        self, position: int, limit: int = 500
    ) -> tuple[list[tuple[int, dict[str, Any]]], int]:
        """Up to `limit` (position, event) pairs after `position`, and how many were missed."""
        with self._changed:
            if not self._ring or self._position <= position:
                return [], 0
            oldest = self._ring[0][0]
            missed = max(0, oldest - position - 1)
            start = max(position + 1, oldest) - oldest
            items = [self._ring[i] for i in range(start, min(len(self._ring), start + limit))]
        return items, missed

    def wait(self, position: int, timeout: float) -> bool:
        """Block until an event after `position` arrives or `timeout` passes; True if one did."""
        with self._changed:
            return self._changed.wait_for(lambda: self._position > position, timeout)

    def _publish(self, event: dict[str, Any]) -> None:
        with self._changed:
            self._position += 1
            self._ring.append((self._position, event))
            self._changed.notify_all()

    def _run(self) -> None:
        while not self._closed:
            try:
                self._store = store = self._open()
                follower = store.follow(poll_interval=self.poll_interval, n=0)
                self.error = None
                self._started.set()
                for event in follower:
                    if self._closed:
                        break
                    self._publish(event)
            except Exception as exc:  # a lost server or a closed store: shown, then retried
                if self._closed:
                    break
                self.error = f"the live feed cannot read the store: {exc}"
                self._started.set()
                self._discard()
                time.sleep(RETRY_SECONDS)
        self._discard()

    def _discard(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                store.close()

    def close(self) -> None:
        """Stop following and close the follower's connection; idempotent."""
        self._closed = True
        self._discard()
        with self._changed:
            self._changed.notify_all()
