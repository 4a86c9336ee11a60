"""Public test helpers: backends that record, fail or block, and a clock you move by hand.

Capture what a tracker sends::

    from eventtracking.testing import capture_events
    with capture_events(tracker) as events:
        tracker.emit('a.b', {'x': 1})
    assert events[0]['name'] == 'a.b'

Inject faults into the delivery worker (or into your own code), without
real time passing::

    from eventtracking.delivery import DeliveryBackend
    from eventtracking.testing import FakeClock, FlakyBackend

    clock, backend = FakeClock(), FlakyBackend(failures=2)
    delivery = DeliveryBackend(backend, mode="sync", retry={"initial_backoff": 1.0},
                               clock=clock, sleep=clock.sleep, rand=lambda: 1.0)
    delivery.send({'id': '1', 'name': 'a.b', 'data': {}})
    assert backend.attempts == 3 and clock.sleeps == [1.0, 2.0]

Every backend here honours the backend protocol (`send`, `send_batch`,
`flush(timeout) -> bool`, an idempotent `close`, RuntimeError when used
after it) and is thread-safe. They never change the events they receive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .exceptions import RetryableError, TerminalError
from .track import get_tracker
from .tracker import Tracker

__all__ = [
    "BlockingBackend",
    "DownBackend",
    "FakeClock",
    "FlakyBackend",
    "InMemoryBackend",
    "RecordingBackend",
    "RejectingBackend",
    "capture_events",
]

Event = dict[str, Any]


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


# -- backends that record each call --------------------------------------------------------


class RecordingBackend(InMemoryBackend):
    """An `InMemoryBackend` that also keeps each call: for tests of batching.

    `batches` holds the events of each `send_batch` call (a `send` is a batch
    of one); `events` all of them, in order; `flushes` counts `flush` calls.
    """

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Event]] = []
        self.flushes = 0

    def send(self, event: Event) -> None:
        """Record `event` as a batch of one; RuntimeError after `close()`."""
        self._record([event])

    def send_batch(self, events: list[Event]) -> None:
        """Record `events` as one batch; RuntimeError after `close()`."""
        self._record(list(events))

    def _record(self, batch: list[Event]) -> None:
        with self._lock:
            self._check_open()
            self.batches.append(batch)
            self.events.extend(batch)

    def flush(self, timeout: float = 10.0) -> bool:
        """Count the call; nothing is ever pending, so True."""
        with self._lock:
            self.flushes += 1
        return True

    def ids(self) -> list[str]:
        """The ``id`` of each recorded event, in order (KeyError for an event without one)."""
        return [event["id"] for event in self.events]

    def clear(self) -> None:
        """Forget every recorded event and batch."""
        with self._lock:
            self.events.clear()
            self.batches.clear()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} is closed")


# -- faults ----------------------------------------------------------------------------------


class DownBackend(RecordingBackend):
    """A backend that is down: every `send` and `send_batch` raises `RetryableError`.

    The error reads as a refused connection (its cause is a
    `ConnectionRefusedError`) and carries `retry_after` (seconds, or None),
    as a server's Retry-After would. `attempts` counts the calls. After
    `recover()` the backend is up and records what it receives, as a
    `RecordingBackend` does.
    """

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.attempts = 0
        self.down = True

    def send(self, event: Event) -> None:
        """Fail (while down), else record; RuntimeError after `close()`."""
        self.send_batch([event])

    def send_batch(self, events: list[Event]) -> None:
        """Fail (while down), else record the batch; RuntimeError after `close()`."""
        with self._lock:
            self._check_open()
            self.attempts += 1
            down = self.down
        if down:
            raise RetryableError(
                "connection refused", retry_after=self.retry_after
            ) from ConnectionRefusedError(111, "Connection refused")
        self._record(list(events))

    def recover(self) -> None:
        """Bring the backend up: the following calls succeed."""
        self.down = False


class FlakyBackend(RecordingBackend):
    """Fail the first `failures` calls, then record like a `RecordingBackend`.

    `error` is the exception to raise: an instance, or a callable that
    returns a new one each time (default: a `RetryableError` for a refused
    connection). `attempts` counts every call, failed or not.
    """

    def __init__(
        self,
        failures: int,
        error: BaseException | Callable[[], BaseException] | None = None,
    ) -> None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
            raise ValueError(f"failures must be an int >= 0, not {failures!r}")
        super().__init__()
        self.failures = failures
        self.error = error
        self.attempts = 0

    def send(self, event: Event) -> None:
        """Fail (for the first `failures` calls), else record; RuntimeError after `close()`."""
        self.send_batch([event])

    def send_batch(self, events: list[Event]) -> None:
        """Fail (for the first `failures` calls), else record; RuntimeError after `close()`."""
        with self._lock:
            self._check_open()
            self.attempts += 1
            failing = self.attempts <= self.failures
        if failing:
            raise self._error()
        self._record(list(events))

    def _error(self) -> BaseException:
        error = self.error
        if error is None:
            return RetryableError("connection refused")
        if isinstance(error, BaseException):
            return error
        return error()


class RejectingBackend(RecordingBackend):
    """Raise `TerminalError` for any batch holding an event that `bad(event)` says is bad.

    Without `bad`, every event is rejected. `message` is the error's text
    (as a server's answer would read, say ``"HTTP 400: ..."``). Batches
    without a bad event are recorded. `calls` counts the calls, `rejected`
    keeps the refused events. Takes no required argument, so configuration
    can name it as an ENGINE.
    """

    def __init__(
        self,
        bad: Callable[[Event], bool] | None = None,
        message: str = "rejected: the batch holds an event this backend cannot accept",
    ) -> None:
        super().__init__()
        self.bad = bad
        self.message = message
        self.calls = 0
        self.rejected: list[Event] = []

    def send(self, event: Event) -> None:
        """Reject `event` (TerminalError) or record it; RuntimeError after `close()`."""
        self.send_batch([event])

    def send_batch(self, events: list[Event]) -> None:
        """Reject the whole batch if it holds a bad event, else record it."""
        bad = self.bad
        with self._lock:
            self._check_open()
            self.calls += 1
            refused = [e for e in events if bad is None or bad(e)]
            self.rejected.extend(refused)
        if refused:
            raise TerminalError(self.message)
        self._record(list(events))


class BlockingBackend(RecordingBackend):
    """Block every `send` and `send_batch` until `release()`, then record as usual.

    For tests of what happens while a backend hangs (a stuck socket):
    `wait_until_blocked()` returns once a call is waiting inside the backend,
    `waiting` tells how many are. After `release()` every call, waiting or
    future, goes through; `block()` makes later calls wait again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._released = threading.Event()
        self._state = threading.Condition()
        self._waiting = 0

    def send(self, event: Event) -> None:
        """Wait until released, then record `event`; RuntimeError after `close()`."""
        self.send_batch([event])

    def send_batch(self, events: list[Event]) -> None:
        """Wait until released, then record `events`; RuntimeError after `close()`."""
        self._check_open()
        with self._state:
            self._waiting += 1
            self._state.notify_all()
        try:
            self._released.wait()
        finally:
            with self._state:
                self._waiting -= 1
        self._record(list(events))

    @property
    def waiting(self) -> int:
        """How many calls are waiting inside the backend now."""
        with self._state:
            return self._waiting

    def wait_until_blocked(self, timeout: float = 10.0, calls: int = 1) -> bool:
        """Wait until `calls` calls (or more) are waiting; False if `timeout` ran out first."""
        with self._state:
            return self._state.wait_for(lambda: self._waiting >= calls, timeout)

    def release(self) -> None:
        """Let every waiting call, and every later one, through."""
        self._released.set()

    def block(self) -> None:
        """Make later calls wait again (until the next `release()`)."""
        self._released.clear()


# -- time -------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when told to: `advance(seconds)` or `sleep(seconds)`.

    Call it for the time (it replaces `time.monotonic`); pass ``clock=clock,
    sleep=clock.sleep`` to `eventtracking.delivery.DeliveryBackend` so that
    retries, backoff and the circuit breaker run without real waiting.
    `sleeps` records every sleep asked for, in order. A worker thread that
    sleeps on it does not wait, so prefer ``mode="sync"`` there; `sleep`
    still hands the GIL over, so such a thread cannot starve the others.
    Thread-safe.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        """The current fake time, in seconds."""
        return self._now

    monotonic = __call__

    @property
    def now(self) -> float:
        """The current fake time, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the time forward by `seconds` (ValueError if negative: it never goes back)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock never goes back; cannot advance by {seconds!r}")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance the time by `seconds`, at once (ValueError if negative)."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds
        time.sleep(0)  # not a wait: lets other threads run
