"""Fault-injection backends and a fake clock for the delivery tests (and their subprocesses)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventtracking.exceptions import RetryableError, TerminalError

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


class FakeClock:
    """A monotonic clock that only moves when `sleep` is called; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingBackend:
    """Keeps every batch it receives; `batched=False` hides `send_batch`."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.lock = threading.Lock()
        self.flushes = 0
        self.closed = False

    def send(self, event: Event) -> None:
        with self.lock:
            self.batches.append([event])

    def send_batch(self, events: list[Event]) -> None:
        with self.lock:
            self.batches.append(list(events))

    def flush(self, timeout: float) -> bool:
        self.flushes += 1
        return True

    def close(self) -> None:
        self.closed = True

    @property
    def events(self) -> list[Event]:
        with self.lock:
            return [e for batch in self.batches for e in batch]

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]


class OneByOneBackend:
    """Only `send`: the worker must deliver event by event."""

    def __init__(self, reject: Callable[[Event], bool] = lambda e: False) -> None:
        self.events: list[Event] = []
        self.reject = reject

    def send(self, event: Event) -> None:
        if self.reject(event):
            raise TerminalError(f"rejected {event['id']}")
        self.events.append(event)


class FlakyBackend(RecordingBackend):
    """Fails `failures` times (with `error()`), then records like RecordingBackend."""

    def __init__(self, failures: int, error: Callable[[], Exception] | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0
        self.error = error or (lambda: ConnectionError("backend unavailable"))

    def send_batch(self, events: list[Event]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error()
        super().send_batch(events)

    def send(self, event: Event) -> None:
        self.send_batch([event])


class RejectingBackend(RecordingBackend):
    """Rejects (TerminalError) any batch holding an event for which `bad(event)` is true."""

    def __init__(self, bad: Callable[[Event], bool]) -> None:
        super().__init__()
        self.bad = bad
        self.calls = 0

    def send_batch(self, events: list[Event]) -> None:
        self.calls += 1
        if any(self.bad(e) for e in events):
            raise TerminalError("HTTP 400: the batch holds an event we cannot accept")
        super().send_batch(events)

    def send(self, event: Event) -> None:
        self.send_batch([event])


class DownBackend:
    """Always fails with a retryable error (a backend that is down)."""

    def __init__(self, retry_after: float | None = None) -> None:
        self.attempts = 0
        self.retry_after = retry_after

    def send(self, event: Event) -> None:
        self.send_batch([event])

    def send_batch(self, events: list[Event]) -> None:
        self.attempts += 1
        raise RetryableError("connection refused", retry_after=self.retry_after)


class HangingBackend(RecordingBackend):
    """Blocks inside send_batch until `release` is set; `entered` tells it is inside."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def send_batch(self, events: list[Event]) -> None:
        self.entered.set()
        self.release.wait()
        super().send_batch(events)

    def send(self, event: Event) -> None:
        self.send_batch([event])


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


class AlwaysRejects:
    """A configurable (no-argument) target that rejects everything: for CLI replay tests."""

    def send(self, event: Event) -> None:
        raise TerminalError("HTTP 422: schema mismatch")
