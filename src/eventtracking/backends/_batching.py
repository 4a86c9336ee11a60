"""The batch buffer shared by the network backends (PostgreSQL, Redis Streams).

`BatchBuffer` collects events and hands them to a ``write(batch)`` callable:
when `batch_size` are waiting (in the sending thread), `max_delay` seconds
after the first one arrived (in one flusher thread per buffer, started on
first use), on `flush()`, on `close()`, before `os.fork()` and at
interpreter exit. It keeps what the backend needs to survive a short outage and nothing
more; queueing off the emit path, journaling and dead letters are the delivery
worker's job (wrap the backend in it when they matter).

Failures: ``write`` raises `RetryableError` for a transient failure (the
connection dropped) and `TerminalError` for a batch that can never be
written. A retryable batch is kept and tried again up to `retries` times with
exponential backoff and jitter inside the same call, then kept: the flusher
thread tries again `max_backoff` seconds later, as does any `flush`; while
it cools down, `send` only buffers.
A terminal batch is dropped, counted under ``<label>.dropped``, and the error
raised. Once `max_buffered` events are waiting, `send` and `send_batch`
raise `RetryableError` and the events are counted under ``<label>.rejected``
(a `send_batch` accepted just below the limit may take the buffer over it
by its own size).
"""

from __future__ import annotations

import atexit
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final

from .. import diagnostics
from ..exceptions import RetryableError, TerminalError

Event = dict[str, Any]
DEFAULT_MAX_BUFFERED: Final = 100_000
_buffers: weakref.WeakSet[BatchBuffer] = weakref.WeakSet()
_forking: list[BatchBuffer] = []


@atexit.register
def _flush_all_at_exit() -> None:
    for buffer in list(_buffers):
        try:
            buffer.flush(5.0)
        except Exception:
            diagnostics.log_burst(
                f"{buffer.label}:atexit", "%s: flush at exit failed", buffer.label
            )


def _before_fork() -> None:
    # Write every buffer before fork(), so that parent and child never both
    # hold (and write) the same events; the locks are held across the fork.
    _forking[:] = list(_buffers)
    for buffer in _forking:
        buffer._write_lock.acquire()
        buffer._lock.acquire()
        if not buffer._closed and buffer._events:
            try:
                buffer._write(buffer._events, time.monotonic() + 5.0)
                buffer._events = []
            except Exception:
                diagnostics.log_burst(
                    f"{buffer.label}:fork", "%s: write before fork failed", buffer.label
                )


def _after_fork_in_parent() -> None:
    for buffer in _forking:
        buffer._lock.release()
        buffer._write_lock.release()
    _forking.clear()


def _after_fork_in_child() -> None:
    for buffer in _forking:
        buffer._lock = threading.Lock()
        buffer._wake = threading.Condition(buffer._lock)
        buffer._write_lock = threading.Lock()
        buffer._flusher = None  # threads do not survive fork(); started again when needed
        buffer._due_at = None
        buffer._events = []
    _forking.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def check_batching(batch_size: int, max_delay: float, retries: int) -> None:
    """Raise ValueError naming the first bad option."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    if isinstance(max_delay, bool) or not isinstance(max_delay, int | float) or max_delay < 0:
        raise ValueError(f"max_delay must be seconds >= 0, not {max_delay!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, not {retries!r}")


class BatchBuffer:
    """Buffer events for ``write(batch)``; thread-safe and fork-safe (see module docs).

    `label` names the backend in counters and log lines. `write` must be
    idempotent for a batch it is handed twice (stores de-duplicate on the
    event id; a stream may carry a duplicate the consumer's store absorbs).
    """

    def __init__(
        self,
        write: Callable[[list[Event]], None],
        *,
        label: str,
        batch_size: int,
        max_delay: float,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        max_buffered: int | None = None,
    ) -> None:
        check_batching(batch_size, max_delay, retries)
        if max_buffered is not None and (
            isinstance(max_buffered, bool) or not isinstance(max_buffered, int) or max_buffered < 1
        ):
            raise ValueError(f"max_buffered must be a positive int or None, not {max_buffered!r}")
        self.label = label
        self.batch_size = batch_size
        self.max_delay = float(max_delay)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_buffered = max_buffered if max_buffered is not None else DEFAULT_MAX_BUFFERED
        self._sink = write
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # wakes the flusher thread
        self._flusher: threading.Thread | None = None
        self._due_at: float | None = None  # when the flusher writes what is buffered
        self._cool_until = 0.0
        self._closed = False
        _buffers.add(self)

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    def add(self, event: Event) -> None:
        """Buffer one event; write the batch when it is full (`send`).

        RuntimeError after close; RetryableError when the buffer is full or
        the write still fails after the retries (the events are kept).
        """
        with self._lock:
            events = self._events
            if self._closed or len(events) >= self.max_buffered:
                self._refuse(1)
            events.append(event)
            if len(events) < self.batch_size and self.max_delay:
                if self._due_at is None:
                    self._schedule(self.max_delay)
                return
            if self._cool_until and time.monotonic() < self._cool_until:
                return  # the last write failed: the timer tries again
        self._write_pending(-1)

    def add_batch(self, events: list[Event]) -> None:
        """Buffer `events` and write everything buffered now (`send_batch`); errors as `add`."""
        with self._lock:
            if self._closed or len(self._events) >= self.max_buffered:
                self._refuse(len(events))
            self._events.extend(events)
        self._write_pending(-1)

    def _refuse(self, n: int) -> None:
        if self._closed:
            raise RuntimeError(f"{self.label} is closed; create a new backend to send again")
        diagnostics.increment(f"{self.label}.rejected", n)
        raise RetryableError(
            f"{self.label}: {len(self._events)} events are waiting to be written "
            f"(max_buffered={self.max_buffered}); is the server reachable?"
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything buffered; False if it is not all written within `timeout` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                if not self._write_pending(max(0.0, deadline - time.monotonic()), deadline):
                    return False
            except RetryableError:
                return False
            with self._lock:
                if not self._events:
                    return True
            if time.monotonic() >= deadline:
                return False

    def close(self, timeout: float = 30.0) -> bool:
        """Write what is buffered (for up to `timeout` seconds); idempotent.

        Returns False, after logging and counting ``<label>.lost_at_close``,
        when events could not be written.
        """
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        _buffers.discard(self)
        try:
            ok = self.flush(timeout)
        finally:
            with self._lock:
                self._due_at = None
                self._wake.notify()  # the flusher sees the buffer closed and ends
                left, self._events = len(self._events), []
        if left:
            diagnostics.increment(f"{self.label}.lost_at_close", left)
            diagnostics.log_burst(
                f"{self.label}:close", "%s: %d events not written at close", self.label, left
            )
        return ok

    def _schedule(self, delay: float) -> None:
        """Have the flusher write in `delay` seconds (called with the lock held)."""
        self._due_at = time.monotonic() + delay
        if self._flusher is None:
            # One thread per buffer, started on first use, rather than a timer
            # thread per batch: under load a batch fills every few milliseconds.
            self._flusher = threading.Thread(
                target=self._flush_when_due, name=f"eventtracking-{self.label}", daemon=True
            )
            self._flusher.start()
        else:
            self._wake.notify()

    def _flush_when_due(self) -> None:
        with self._lock:
            while not self._closed:
                if self._due_at is None:
                    self._wake.wait()
                    continue
                delay = self._due_at - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                self._due_at = None
                self._lock.release()
                try:
                    self._write_pending(-1)
                except Exception:
                    diagnostics.log_burst(
                        f"{self.label}:timer", "%s: write failed; events kept", self.label
                    )
                finally:
                    self._lock.acquire()

    def _write_pending(self, lock_timeout: float, deadline: float | None = None) -> bool:
        if not self._write_lock.acquire(timeout=lock_timeout):
            return False
        try:
            with self._lock:
                events, self._events = self._events, []
                self._due_at = None
            if not events:
                return True
            try:
                self._write(events, deadline)
            except BaseException as exc:
                with self._lock:  # keep what is left, before anything sent meanwhile
                    self._events[:0] = events
                    if not isinstance(exc, TerminalError):
                        self._cool_until = time.monotonic() + self.max_backoff
                        if not self._closed:
                            self._schedule(self.max_backoff)
                raise
            self._cool_until = 0.0
            return True
        finally:
            self._write_lock.release()

    def _write(self, events: list[Event], deadline: float | None) -> None:
        """Write `events` in slices of `batch_size`, removing each slice once written.

        On an error, `events` holds what is still to be written: a slice that
        failed retryably stays, a slice that failed terminally is dropped.
        """
        while events:
            batch = events[: self.batch_size]
            try:
                self._write_slice(batch, deadline)
            except TerminalError:
                diagnostics.increment(f"{self.label}.dropped", len(batch))
                del events[: len(batch)]
                raise
            del events[: len(batch)]

    def _write_slice(self, batch: list[Event], deadline: float | None) -> None:
        attempt = 0
        while True:
            try:
                self._sink(batch)
                return
            except RetryableError as exc:
                attempt += 1
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                delay = exc.retry_after or delay * random.uniform(0.5, 1.0)
                late = deadline is not None and time.monotonic() + delay > deadline
                if attempt > self.retries or late:
                    diagnostics.increment(f"{self.label}.write_errors")
                    raise
                diagnostics.increment(f"{self.label}.retries")
                time.sleep(delay)


class BufferedBackend:
    """A backend whose sends go through a `BatchBuffer` (``self._buffer``).

    Subclasses build the buffer around their own write function and say in
    `_release` what to close once the buffer is written out.
    """

    _buffer: BatchBuffer

    def send(self, event: dict[str, Any]) -> None:
        """Buffer `event`; write the batch when it is full."""
        self._buffer.add(event)

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        """Write `events` (and anything buffered) now; raises when they could not be written.

        RetryableError: the destination stayed unreachable through the retries
        (the events are kept and written later); TerminalError: it rejected
        them (they are dropped and counted under ``LABEL.dropped``).
        """
        self._buffer.add_batch(list(events))

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything buffered; False if not all of it was written within `timeout`."""
        return self._buffer.flush(timeout)

    def close(self) -> None:
        """Write what is buffered, then release the connection; idempotent."""
        if self._buffer.closed:
            return
        try:
            self._buffer.close()
        finally:
            self._release()

    def _release(self) -> None:
        """Close what the writes used (called once, by `close`)."""


def skip_unencodable(label: str, event: Mapping[str, Any], exc: Exception) -> None:
    """Count and log (once per name) an event not even the repair can encode.

    A string with a lone surrogate is one: skipping that event is better than
    a batch that can never be written and blocks every event behind it.
    """
    diagnostics.increment(f"{label}.unencodable")
    name = str(event.get("name"))
    diagnostics.warn_once(
        (f"{label}.unencodable", name),
        "%s: event %r cannot be encoded even after repair (%s); skipped and counted",
        label,
        name,
        exc,
    )
