"""`DeliveryBackend`: wrap any backend in the one shared delivery mechanism.

Modes:

* ``buffered`` (default): `send` puts the event on a bounded memory queue
  and returns; a worker thread delivers in batches. With a `journal_dir`,
  events move to the journal while the backend is down (circuit open) and
  when the queue overflows (``overflow="spill"``).
* ``durable``: `send` writes the event to the journal (serialized once) and
  returns when it is on disk (``fsync="always"``, with group commit) or in
  the operating system (``fsync="interval"``); the worker delivers from the
  journal and commits its position. After a crash, the next process to start
  on the same `journal_dir` delivers what was left.
* ``sync``: `send` delivers in the caller's thread, with the same retries,
  bisection and dead letters; when the circuit is open it fails fast to dead
  letters instead of waiting. For tests and serverless functions.
* ``inline``: as buffered, but a full batch is written by the emitting
  thread itself (see `inline`): for local sinks, the SQLite store and
  JSON-lines files, which a hand-over to another thread would slow down.

Every mode but ``sync`` keeps a journal by default (see `paths`), so an
overflowing queue spills to disk instead of dropping. `send` never raises a
transport error and, but for ``overflow="block"`` and mode ``inline``, never
waits for I/O. Every event not delivered is counted by reason; events the
backend rejects or that run out of retries go to the dead-letter store.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from .. import _process, diagnostics
from ..backends import close_backend, flush_backend, leaves_events_unchanged
from ..event import with_id
from ..exceptions import StoreError
from ..serialization import dumps
from . import paths
from .deadletter import DeadLetterStore
from .dispatch import Batch, Dispatcher, Event
from .inline import InlineWriter
from .intake import Intake
from .journal import JournalFull
from .loop import Worker
from .metrics import DeliveryMetrics, flat, gauges
from .options import DeliveryOptions, Fsync, Mode, Overflow, preferred_batch_size
from .retry import CircuitBreaker, CircuitPolicy, RetryPolicy
from .segments import frame

STOP_GRACE: Final = 0.25  # seconds close() gives a worker stuck inside the backend
SPILL_GRACE: Final = 0.05  # seconds more for a worker that has just spilled its last chunk
YIELD_EVERY: Final = 32  # when behind, emit gives the worker the GIL once per this many events
OVERFLOW_YIELD_EVERY: Final = 128  # the same while the queue is full: under 1% of emits
MiB: Final = 1 << 20


class DeliveryBackend:
    """Deliver to `backend` off the emitting thread, with batching, retries and a journal.

    `backend` is any object with ``send(event)``; ``send_batch(events)``,
    ``flush(timeout)`` and ``close()`` are used when present. `name` labels
    metrics and dead letters (default: the backend's class name). The other
    options are described in the README ("Reliable delivery"); invalid ones
    raise ValueError saying what to write instead. `batch_size` defaults to
    the backend's own ``batch_size`` attribute (the most events it writes at
    once), else 500. `clock`, `sleep` and `rand` replace the monotonic clock,
    the waits and the jitter (tests).

    Thread-safe and fork-safe: a forked child starts with an empty queue and
    its own worker and journal lane; the parent delivers what it had queued.
    """

    def __init__(
        self,
        backend: Any,
        *,
        name: str | None = None,
        mode: Mode = "buffered",
        journal_dir: str | os.PathLike[str] | bool | None = True,
        batch_size: int | None = None,
        batch_bytes: int | None = None,
        max_delay: float = 1.0,
        queue_size: int = 10_000,
        overflow: Overflow | None = None,
        block_timeout: float = 1.0,
        fsync: Fsync | None = None,
        fsync_interval: float = 0.2,
        segment_bytes: int = 8 * MiB,
        disk_budget: int = 1024 * MiB,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        circuit: CircuitPolicy | Mapping[str, Any] | None = None,
        dead_letters: str | os.PathLike[str] | bool | None = None,
        atexit_timeout: float = 5.0,
        metrics_interval: float = 5.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        if not callable(getattr(backend, "send", None)):
            raise ValueError(f"backend {type(backend).__name__} has no callable 'send' method")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"name must be a non-empty str, not {name!r}")
        self.name = name or type(backend).__name__
        self.backend = backend
        self._closed = False
        self.options = o = DeliveryOptions.resolve(
            mode=mode,
            journal_dir=journal_dir,
            default_journal=lambda: paths.claim(
                paths.default_journal_dir(self.name, backend), self, suffix=True
            ),
            batch_size=preferred_batch_size(backend) if batch_size is None else batch_size,
            batch_bytes=batch_bytes,
            max_delay=max_delay,
            queue_size=queue_size,
            overflow=overflow,
            block_timeout=block_timeout,
            fsync=fsync,
            fsync_interval=fsync_interval,
            segment_bytes=segment_bytes,
            disk_budget=disk_budget,
            retry=retry,
            circuit=circuit,
            dead_letters=dead_letters,
            atexit_timeout=atexit_timeout,
            metrics_interval=metrics_interval,
        )
        self._clock = clock or time.monotonic
        self._sleep = sleep
        self.metrics = DeliveryMetrics(self.name)
        self._count_emitted = self.metrics.emitted.bump
        self.breaker = CircuitBreaker(o.circuit, self._clock)
        try:
            self.dead_letters = None if o.dead_letters is None else DeadLetterStore(o.dead_letters)
        except StoreError as exc:
            raise ValueError(f"dead_letters: {exc}") from exc
        self.journal = paths.open_journal(o, self)
        if self.journal is not None and o.mode == "durable":
            self.journal.open()  # a journal that cannot be written fails here, not at emit
        self._intake = Intake(
            self.name, o, self.metrics, self.journal, self.dead_letters, lambda: self._closed
        )
        self._inline_writer: InlineWriter | None = None
        target: Any = backend
        if o.mode == "inline":
            self._inline_writer = InlineWriter(backend, self.name, self.metrics, self._unhealthy)
            target = self._inline_writer.serialized()  # callers and the worker take turns
        self._dispatcher = Dispatcher(
            target,
            name=self.name,
            retry=o.retry,
            breaker=self.breaker,
            metrics=self.metrics,
            dead_letter=self._intake.dead_letter,
            clock=self._clock,
            rand=rand or random.random,
        )
        self._sync_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._forked = False
        self._fast = False  # True while send may take the buffered fast path
        self._durable = False  # True while send may go straight to the journal
        self._inline = False  # True while send may write full batches in the caller
        self._worker: Worker | None = None
        self._queue_size, self._batch_size = o.queue_size, o.batch_size
        self._overflows = 0  # events that found the queue full (a heuristic: not locked)
        self._ids_at_send = o.mode != "buffered"  # buffered: the worker gives ids
        # A tight emit loop holds the GIL; the worker waits up to the switch
        # interval (5 ms) after each of its system calls to get it back, and
        # falls behind. Once a batch waits, emit yields it now and then (README,
        # "Delivery and consume against hand-written floors", has the figures).
        self._yield_at = max(1, min(o.batch_size, o.queue_size // 2))
        _process.track(self)
        if o.mode != "sync":
            self._start()

    def _start(self) -> None:
        worker = Worker(
            name=self.name,
            options=self.options,
            dispatcher=self._dispatcher,
            journal=self.journal,
            metrics=self.metrics,
            gauges=self._gauges,
            sleep=self._sleep,
            recovered=self._healthy if self._inline_writer is not None else None,
        )
        self._worker = worker
        self._queue, self._wakeup = worker.queue, worker.wakeup
        self.metrics.queued = worker.entered
        worker.start()
        mode = self.options.mode
        self._fast = mode in ("buffered", "inline")
        self._durable = mode == "durable"
        self._inline = mode == "inline"

    def _unhealthy(self) -> None:
        """Inline mode: a write failed in the caller; queue only until the worker recovers."""
        self._inline = False

    def _healthy(self) -> None:
        """Inline mode: the worker delivered with the breaker closed; write in the caller again."""
        if self._fast and not self._inline and len(self._queue) < self._batch_size:
            self._inline = True

    # -- emitting ---------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Hand `event` over for delivery; see the class docs for when this waits.

        RuntimeError after `close()`; never raises for a failing backend.
        An event without an ``id`` (the Open edX envelope) is given one
        before its first delivery attempt or journal write, so retries and
        stores see the same id: by the worker in buffered mode, here in
        durable and synchronous mode; inline mode gives one only to events
        that failed in the caller.
        """
        if self._inline:  # counted as emitted by the queue (Worker.entered)
            queue = self._queue
            queue.append(event)
            depth = len(queue)
            if depth >= self._batch_size:
                assert self._inline_writer is not None and self._worker is not None
                self._inline_writer.write(self._worker, self._batch_size)
            elif depth == 1:
                worker = self._worker
                assert worker is not None
                if not worker.timing and not self._wakeup.is_set():
                    self._wakeup.set()  # the worker starts the max_delay clock
            return
        if not self._fast:
            if type(event) is dict and "id" not in event:
                event = with_id(event)
            if self._durable:
                self._send_durable(event)
            else:
                self._send_slow(event)
            return
        if self._ids_at_send and type(event) is dict and "id" not in event:
            event = with_id(event)  # inline mode, while the worker writes for the callers
        queue = self._queue
        depth = len(queue)
        if depth < self._queue_size:
            queue.append(event)
            if depth >= self._batch_size:
                if not self._wakeup.is_set():
                    self._wakeup.set()
                if depth >= self._yield_at and depth % YIELD_EVERY == 0:
                    worker = self._worker  # not while it retries: it only spills then
                    if worker is not None and worker.delivering:
                        time.sleep(0)
            return
        assert self._worker is not None
        if not self._intake.overflow(self._worker, event):
            self._count_emitted()  # journaled or dropped: the queue did not count it
        self._overflows += 1
        if self._overflows % OVERFLOW_YIELD_EVERY == 0:
            time.sleep(0)  # a full queue: let the worker take a batch instead of spilling all

    def _send_durable(self, event: Event) -> None:
        """Durable mode: the event is in the journal (or counted as dropped) on return."""
        self._count_emitted()
        journal = self.journal
        assert journal is not None
        body = dumps(event)
        data = frame(body)
        try:
            journal.append(data, 1, event, body)
        except (JournalFull, OSError):  # the policies: wait for room, or drop and count
            if not self._intake.append(data, event, body):
                return
        backlog = journal.appended - journal.read_records
        if backlog >= self._batch_size:
            if not self._wakeup.is_set():
                self._wakeup.set()
            if backlog >= self._yield_at and backlog % YIELD_EVERY == 0:
                time.sleep(0)  # see _yield_at

    def send_batch(self, events: list[Event]) -> None:
        """`send` each of `events` (in synchronous mode: deliver them as one batch)."""
        if self.options.mode == "sync" and not self._closed:
            for _ in events:
                self._count_emitted()
            self._deliver_now([with_id(e) if type(e) is dict else e for e in events])
            return
        for event in events:
            self.send(event)

    def _send_slow(self, event: Event) -> None:
        if self._closed:
            raise RuntimeError(
                f"delivery backend {self.name!r} is closed; create a new one to send again"
            )
        if self._forked:
            self._restart_after_fork()
            if self._fast or self._durable:
                self.send(event)
                return
        self._count_emitted()
        self._deliver_now([event])

    def _deliver_now(self, events: list[Event]) -> None:
        """Synchronous mode: deliver in this thread; an open circuit fails fast."""
        with self._sync_lock:
            self._dispatcher.run(Batch(events), self._sleep or time.sleep, fail_fast=True)

    # -- flush, close, stats --------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending and the backend has flushed; False after `timeout`.

        "Pending" covers the queue, the batch being delivered and the journal:
        under a steady stream of new events flush waits for a quiet moment.
        """
        if self._closed or self._forked:
            return True
        return self._flush(timeout)

    def _flush(self, timeout: float) -> bool:
        if self.options.mode == "sync":
            if not self._sync_lock.acquire(timeout=max(timeout, 0.0)):
                return False
            try:
                return flush_backend(self.backend, timeout)
            finally:
                self._sync_lock.release()
        assert self._worker is not None
        return self._worker.request_flush(timeout).wait(max(timeout, 0.0))

    async def aflush(self, timeout: float = 10.0) -> bool:
        """`flush` without blocking the event loop (it waits in a thread)."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 0.0) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close, timeout)

    def close(self, timeout: float = 0.0) -> None:
        """Flush for up to `timeout` seconds, stop the worker, keep or count what is left.

        The default waits for nothing: `Tracker.close` flushes every backend
        within one shared deadline first. Undelivered events go to the
        journal when there is one (delivered by the next process), else they
        are counted as dropped (``shutdown``). A worker stuck in the backend
        is abandoned after `STOP_GRACE` seconds, so close returns within
        `timeout` plus that margin. Idempotent.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._fast = self._durable = self._inline = False
        try:
            if self.options.mode == "sync" or self._forked:
                close_backend(self.backend)
                return
            if timeout > 0:
                self._flush(timeout)
            worker = self._worker
            assert worker is not None
            stopped = worker.stop(STOP_GRACE)
            left = worker.leftovers()  # waits for a chunk being spilled to the journal
            if not stopped:  # it was spilling (it ends now), or it is stuck in the backend
                stopped = worker.stop(SPILL_GRACE)
            if not stopped:
                worker.abandoned = True
            self._intake.keep(left)
            if self.journal is not None:
                self.journal.close()
                path = worker.metrics_path()
                if path is not None:
                    path.unlink(missing_ok=True)
            if stopped:
                close_backend(self.backend)
            else:
                diagnostics.warn_once(
                    ("delivery.abandoned", self.name),
                    "delivery backend %r: worker still inside the backend at close; abandoned",
                    self.name,
                )
        finally:
            if self.dead_letters is not None:
                self.dead_letters.close()
            _process.untrack(self)

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    @property
    def keeps_events(self) -> bool:
        """True but in mode ``sync``: events are queued or journaled for later.

        A tracker then hands over events with a private ``data`` dict. Call
        `send` yourself, and the dict you pass is kept as it is: do not
        change it afterwards.
        """
        return self.options.mode != "sync"

    @property
    def leaves_events_unchanged(self) -> bool:
        """True if the wrapped backend declares it never changes events (it gets them as given)."""
        return leaves_events_unchanged(self.backend)

    @property
    def exit_timeout(self) -> float:
        """Seconds this backend may spend flushing at interpreter exit (``atexit_timeout``)."""
        return self.options.atexit_timeout

    def _gauges(self) -> dict[str, Any]:
        return gauges(self.options.mode, self.breaker.state, self._worker, self.journal)

    def metrics_snapshot(self) -> dict[str, Any]:
        """Counters, drops by reason, latency p50/p99 and gauges, as plain JSON data."""
        return self.metrics.snapshot(**self._gauges())

    def delivery_stats(self) -> dict[str, int]:
        """`metrics_snapshot` as ``delivery.<name>.<metric>`` integers (for `Tracker.stats`)."""
        return {f"delivery.{self.name}.{k}": v for k, v in flat(self.metrics_snapshot()).items()}

    # -- processes (called by eventtracking._process) ------------------------------------

    def _before_fork(self) -> None:
        if self._inline_writer is not None:
            self._inline_writer.before_fork()

    def _after_fork_in_parent(self) -> None:
        if self._inline_writer is not None:
            self._inline_writer.after_fork_in_parent()

    def _after_fork_in_child(self) -> None:
        if self._inline_writer is not None:
            self._inline_writer.after_fork_in_child()
        if self._closed:
            return
        self._fast = self._durable = self._inline = False
        self._forked = True
        self._worker = None  # the parent's queue and thread stay the parent's
        self._sync_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self.metrics.after_fork_in_child()
        self._count_emitted = self.metrics.emitted.bump
        self.breaker.reset()
        if self.journal is not None:
            self.journal.after_fork_in_child()
        if self.dead_letters is not None:
            self.dead_letters.after_fork_in_child()

    def _restart_after_fork(self) -> None:
        with self._close_lock:
            if self._forked and not self._closed:
                self._forked = False
                if self.options.mode != "sync":
                    self._start()
