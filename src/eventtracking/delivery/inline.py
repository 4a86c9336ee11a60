"""Mode ``inline``: batches gathered and written in the emitting thread, for local sinks.

The embedded SQLite store and JSON-lines files are fastest when the thread
that emits also writes: a hand-over to another thread costs more than the
write. In this mode `send` appends to the same memory queue as buffered mode
and, once `batch_size` events wait, the emitting thread writes them with one
``send_batch`` (`InlineWriter.write`). The worker thread does the rest:
a partial batch `max_delay` seconds old, flush requests, and every batch
that failed in the caller, which it retries under the retry policy, the
circuit breaker and the dead letters, as in buffered mode. While it holds a
failed batch, emitting threads only queue (so emit does not keep running
into a failing sink, and order is kept); its first delivery with the
breaker closed turns the in-caller writes back on.

Callers and the worker take turns in the backend (`Serialized`), so a
backend written inline is never entered by two threads at once. Before a
fork the writer holds that lock and flushes the backend (a file's buffer
must not be inherited, or the child would write it a second time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from .. import diagnostics
from ..backends import flush_backend, leaves_events_unchanged
from ..event import with_id
from .dispatch import Event
from .loop import Worker
from .metrics import DeliveryMetrics

FORK_FLUSH_TIMEOUT: Final = 5.0  # seconds a backend may take to flush before a fork


class Serialized:
    """The backend of `writer`, called under its lock: ``send``, ``send_batch``, ``flush``."""

    def __init__(self, writer: InlineWriter) -> None:
        self.writer = writer
        self.backend = writer.backend
        self.leaves_events_unchanged = leaves_events_unchanged(self.backend)  # as it declares
        if callable(getattr(self.backend, "send_batch", None)):
            self.send_batch = self._send_batch

    def send(self, event: Event) -> None:
        """The backend's ``send``, under the lock."""
        with self.writer.lock:
            self.backend.send(event)

    def _send_batch(self, events: list[Event]) -> None:
        with self.writer.lock:
            self.backend.send_batch(events)

    def flush(self, timeout: float) -> bool:
        """The backend's flush, under the lock; False if the lock is not had within `timeout`."""
        lock = self.writer.lock
        if not lock.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            return flush_backend(self.backend, timeout)
        finally:
            lock.release()


class InlineWriter:
    """The in-caller half of mode ``inline`` for one delivery backend (see module docs)."""

    def __init__(
        self,
        backend: Any,
        name: str,
        metrics: DeliveryMetrics,
        on_failure: Callable[[], None],
    ) -> None:
        self.backend = backend
        self.name = name
        self.metrics = metrics
        self.lock = threading.Lock()
        self._held = False  # taken by before_fork
        self._on_failure = on_failure
        self._batch: Callable[[list[Event]], None] | None = getattr(backend, "send_batch", None)

    def serialized(self) -> Serialized:
        """The backend as the worker must call it: taking turns with the emitting threads."""
        return Serialized(self)

    def write(self, worker: Worker, batch_size: int) -> None:
        """Take up to `batch_size` events from the head of the queue and write them here.

        On failure what was not written goes back to the head of the queue,
        each with an id, for the worker to retry, and `on_failure` is called.
        """
        with self.lock:
            batch = worker.take(batch_size)
            if not batch:
                return
            sent = 0
            try:
                if self._batch is not None:
                    self._batch(batch)
                    sent = len(batch)
                else:
                    for event in batch:
                        self.backend.send(event)
                        sent += 1
            except Exception:
                worker.put_back([with_id(e) if type(e) is dict else e for e in batch[sent:]])
                self._on_failure()
                worker.wakeup.set()
                diagnostics.log_burst(
                    f"delivery:{self.name}",
                    "delivery to backend %r failed; events kept for retry or dead letters",
                    self.name,
                )
                if sent:
                    self.metrics.record_delivery(batch[:sent])
                return
        self.metrics.record_delivery(batch)

    def before_fork(self) -> None:
        """Hold the backend and flush it, so that the child inherits nothing buffered.

        A backend busy for longer than `FORK_FLUSH_TIMEOUT` is left alone: the
        fork goes on rather than wait on a stuck write.
        """
        self._held = self.lock.acquire(timeout=FORK_FLUSH_TIMEOUT)
        if not self._held:
            diagnostics.log_burst(f"fork:{self.name}", "backend %r busy at fork", self.name)
            return
        try:
            flush_backend(self.backend, FORK_FLUSH_TIMEOUT)
        except Exception:
            diagnostics.log_burst(f"fork:{self.name}", "flush of %r before fork failed", self.name)

    def after_fork_in_parent(self) -> None:
        """Let the emitting threads and the worker write again."""
        if self._held:
            self._held = False
            self.lock.release()

    def after_fork_in_child(self) -> None:
        """A lock of the child's own: the parent's may be held by a thread the child lacks."""
        self._held = False
        self.lock = threading.Lock()
