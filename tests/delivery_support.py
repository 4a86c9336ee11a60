"""What the delivery tests need beyond `eventtracking.testing`: events, slow and gated backends.

The public fakes (a backend that is down, flaky, rejecting or blocking, and a
fake clock) live in `eventtracking.testing`; these are specific to our tests
and their subprocesses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventtracking.exceptions import RetryableError, TerminalError
from eventtracking.testing import RecordingBackend

Event = dict[str, Any]


def event(n: int, name: str = "test.event", **data: Any) -> Event:
    """A small event with a predictable id."""
    return {
        "id": f"ev-{n:08d}",
        "name": name,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"n": n, **data},
        "context": {},
    }


class OneByOneBackend:
    """Only `send`: the worker must deliver event by event."""

    def __init__(self, reject: Callable[[Event], bool] = lambda e: False) -> None:
        self.events: list[Event] = []
        self.reject = reject

    def send(self, event: Event) -> None:
        if self.reject(event):
            raise TerminalError(f"rejected {event['id']}")
        self.events.append(event)


class SlowBackend(RecordingBackend):
    """Takes `delay` seconds per batch."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def send_batch(self, events: list[Event]) -> None:
        time.sleep(self.delay)
        super().send_batch(events)


class LineFileBackend:
    """Appends ``<pid> <event id>`` lines to a file (O_APPEND): visible across processes."""

    def __init__(self, path: str) -> None:
        self.path = path

    def send_batch(self, events: list[Event]) -> None:
        data = "".join(f"{os.getpid()} {e['id']}\n" for e in events).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def send(self, event: Event) -> None:
        self.send_batch([event])


class GatedBackend:
    """Unavailable (RetryableError) until the file `gate` exists, then slow, then delegates."""

    def __init__(self, inner: Any, gate: str, delay: float = 0.0) -> None:
        self.inner = inner
        self.gate = Path(gate)
        self.delay = delay

    def send_batch(self, events: list[Event]) -> None:
        if not self.gate.exists():
            raise RetryableError("not yet available")
        time.sleep(self.delay)
        self.inner.send_batch(events)

    def send(self, event: Event) -> None:
        self.send_batch([event])

    def flush(self, timeout: float) -> bool:
        return bool(self.inner.flush(timeout))

    def close(self) -> None:
        self.inner.close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll `condition` until true (a generous safety net, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()
