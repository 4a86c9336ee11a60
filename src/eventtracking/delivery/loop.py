"""The delivery worker thread: gather batches, deliver them, spill while the backend is down.

One `Worker` per wrapped backend, so a slow or dead backend only ever holds
up its own thread. Its loop:

1. Wait for work: a full batch (`batch_size` events), `max_delay` seconds
   after the first waiting event was seen, a flush request, or close.
2. Take a batch: from lanes of dead processes first, then our own journal
   lane, then the memory queue; cut at `batch_size` events or `batch_bytes`.
3. Step the dispatcher until the batch is done, waiting between attempts.
   While the circuit breaker is open and there is a journal (buffered mode),
   move the memory queue to the journal, so memory stays bounded however
   long the outage lasts; with ``overflow="spill"``, also while retrying once
   the queue is half full, so the emitting thread seldom has to.
4. Commit journal batches; answer flush requests once nothing is pending.

The wrapped backend is called from this thread only, except in mode
``inline``, where emitting threads write full batches and take turns with
this thread (see `inline`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from pathlib import Path
from typing import Any, Final

from .. import diagnostics
from ..backends import flush_backend
from ..event import with_id
from ..serialization import dumps, loads
from .dispatch import Batch, Dispatcher, Event
from .journal import Journal, JournalBatch, JournalFull
from .metrics import DeliveryMetrics, metrics_file, remove_stale_metrics, write_metrics_file
from .options import DeliveryOptions
from .segments import frame

IDLE_WAIT: Final = 0.5  # seconds between housekeeping rounds when there is nothing to do
ADOPT_INTERVAL: Final = 30.0  # seconds between looks for lanes of dead processes
SPILL_CHUNK: Final = 1000
_popleft = deque.popleft


def decode(payload: bytes) -> Event:
    """An event from its journal record, with its timestamp a datetime again."""
    event: Event = loads(payload)
    if isinstance(event, dict):
        stamp = event.get("timestamp")
        if isinstance(stamp, str):
            with contextlib.suppress(ValueError):  # else delivered as it was emitted
                event["timestamp"] = datetime.fromisoformat(stamp)
    return event


@dataclass
class FlushRequest:
    """A caller waiting until nothing is pending (or its deadline passes)."""

    deadline: float
    done: threading.Event = field(default_factory=threading.Event)


class Worker:
    """The thread that delivers for one `DeliveryBackend` (see module docs)."""

    def __init__(
        self,
        *,
        name: str,
        options: DeliveryOptions,
        dispatcher: Dispatcher,
        journal: Journal | None,
        metrics: DeliveryMetrics,
        gauges: Callable[[], dict[str, Any]],
        sleep: Callable[[float], None] | None,
        recovered: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.dispatcher = dispatcher
        self.journal = journal
        self.metrics = metrics
        self._gauges = gauges
        self._sleep = sleep
        self._recovered = recovered  # told after each batch done with the breaker closed
        self.queue: deque[Event] = deque()
        # Events that left the queue (taken or evicted) less those put back,
        # changed under `lock`: with the queue's length, how many ever entered
        # it, so emit counts nothing itself (`entered`).
        self.taken = 0
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)  # `block` overflow waits here
        self.waiting_for_room = 0
        self.wakeup = threading.Event()
        # Held while a spilled chunk is out of the queue but not yet in the
        # journal, so close never takes the queue with a chunk in neither place.
        self.handoff = threading.Lock()
        self.batch: Batch | None = None
        self.abandoned = False  # close gave up waiting for us: commit nothing more
        self.delivering = True  # False while the batch in hand waits to be retried
        # True while max_delay runs for events seen waiting: those emitted
        # meanwhile go out with them, no later, and need not wake this thread.
        self.timing = False
        self._stop = threading.Event()
        self._flushes: list[FlushRequest] = []
        self._thread: threading.Thread | None = None
        self._next_metrics = self._next_adopt = 0.0
        self._spill_blocked = False
        # Buffered mode queues events as emitted; this thread gives each its id
        # (see DeliveryBackend.send). Inline mode leaves ids to the sink.
        self._give_ids = options.mode == "buffered"

    # -- control (other threads) -------------------------------------------------

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread = threading.Thread(
            target=self.run, name=f"eventtracking-delivery-{self.name}", daemon=True
        )
        self._thread.start()

    def request_flush(self, timeout: float) -> threading.Event:
        """Ask to be told (the returned event is set) once nothing is pending."""
        request = FlushRequest(time.monotonic() + timeout)
        with self.lock:
            self._flushes.append(request)
        self.wakeup.set()
        return request.done

    def stop(self, timeout: float) -> bool:
        """Ask the thread to end; True if it did within `timeout` seconds."""
        self._stop.set()
        self.wakeup.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def leftovers(self) -> list[Event]:
        """At close (after `stop`): the memory batch in hand and the queue, emptied.

        A worker still spilling finishes the chunk it holds first; it spills
        nothing more once stopped, so what this returns is all that is left.
        """
        left: list[Event] = []
        with self.handoff:
            if self.batch is not None and self.batch.source is None:
                left.extend(self.batch.events())  # a journal batch stays in the journal
            left.extend(self._identified(self.take(len(self.queue))))
        return left

    def _identified(self, events: list[Event]) -> list[Event]:
        """`events`, each with an ``id`` (buffered mode), in the same order."""
        if not self._give_ids:
            return events
        return [with_id(event) if type(event) is dict else event for event in events]

    def take(self, limit: int) -> list[Event]:
        """Remove up to `limit` events from the head of the queue (any thread)."""
        with self.lock:
            queue = self.queue
            # Emitting threads append without the lock, and the interpreter may
            # switch threads between any two operations here: each event is
            # popped alone (never copied, then cleared), in C, so one appended
            # meanwhile stays queued.
            taken = [*map(_popleft, repeat(queue, min(limit, len(queue))))]
            self.taken += len(taken)
            if self.waiting_for_room:
                self.room.notify_all()
        return taken

    def put_back(self, events: list[Event]) -> None:
        """Return `events`, taken earlier, to the head of the queue, in order (any thread)."""
        with self.lock:
            self.queue.extendleft(reversed(events))
            self.taken -= len(events)

    def replace_oldest(self, event: Event) -> bool:
        """Queue `event`, evicting the oldest queued event if any: True if one was evicted."""
        with self.lock:
            evicted = bool(self.queue)
            if evicted:
                self.queue.popleft()
                self.taken += 1
            self.queue.append(event)
        return evicted

    def entered(self) -> int:
        """How many events were ever appended to the queue (taken, evicted or still there)."""
        with self.lock:
            return self.taken + len(self.queue)

    # -- the loop ----------------------------------------------------------------

    def run(self) -> None:
        """The thread's body: never raises; an unexpected error is logged and the loop goes on."""
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:
                diagnostics.increment(f"delivery.{self.name}.worker_errors")
                diagnostics.log_burst(f"worker:{self.name}", "delivery worker %r error", self.name)
                self._wait(IDLE_WAIT)

    def _turn(self) -> None:
        self._housekeeping()
        if self.batch is None:
            if not self._wait_for_work():
                return
            self.batch = self._next_batch()
            if self.batch is None:
                self._answer_flushes()
                return
        not_before = self.dispatcher.step(self.batch)
        if self.batch.done:
            self.delivering = True
            self._finish(self.batch)
            self.batch = None
            return
        self.delivering = False
        self._wait_until(not_before)

    def _available(self) -> int:
        waiting = len(self.queue)
        journal = self.journal
        if journal is not None:
            if journal.adopted_lanes:
                return self.options.batch_size
            waiting += journal.appended - journal.read_records
        return waiting

    def _wait_for_work(self) -> bool:
        """Wait until a batch is due; False if there is nothing to do (yet)."""
        try:
            return self._wait_for_a_batch()
        finally:
            self.timing = False

    def _wait_for_a_batch(self) -> bool:
        first_seen: float | None = None
        while not self._stop.is_set():
            self.wakeup.clear()
            waiting = self._available()
            now = time.monotonic()
            if waiting and (waiting >= self.options.batch_size or self._flushes):
                return True
            if waiting and first_seen is None:
                first_seen = now
                self.timing = True
            if first_seen is not None and now - first_seen >= self.options.max_delay:
                return True
            if not waiting:
                self._answer_flushes()
            due = IDLE_WAIT if first_seen is None else first_seen + self.options.max_delay - now
            self._wait(min(due, IDLE_WAIT))
            self._housekeeping()
        return False

    def _next_batch(self) -> Batch | None:
        options = self.options
        if self.journal is not None:
            read = self.journal.read(options.batch_size, options.batch_bytes)
            if read is not None:
                if read.events is not None:
                    return Batch(read.events, source=read, bodies=read.bodies)
                events, bodies = self._decoded(read)
                return Batch(events, source=read, bodies=bodies)
        events = self._identified(self.take(options.batch_size))
        if options.batch_bytes is not None and len(events) > 1:
            events = self._cut_to_bytes(events, options.batch_bytes)
        return Batch(events) if events else None

    def _decoded(self, read: JournalBatch) -> tuple[list[Event], list[bytes]]:
        """The events `read` holds, and the payload each came from (the same order)."""
        events, bodies = [], []
        for payload in read.payloads:
            try:
                events.append(decode(payload))
            except ValueError:  # a checksummed record that is not JSON: a bug, not a crash
                self.metrics.count_drop("journal_error")
                diagnostics.log_burst(f"decode:{self.name}", "undecodable journal record")
                continue
            bodies.append(payload)
        return events, bodies

    def _cut_to_bytes(self, events: list[Event], limit: int) -> list[Event]:
        total = 0
        for i, event in enumerate(events):
            total += len(dumps(event))
            if total > limit and i > 0:
                self.put_back(events[i:])  # the rest, at the head, in order
                return events[:i]
        return events

    def _wait_until(self, when: float) -> None:
        writer = self.journal.writer if self.journal is not None else None
        if writer is not None and writer.caching and self.dispatcher.breaker.state == "open":
            writer.stop_caching()  # nothing is read while down: memory holds the queue only
        while not self._stop.is_set():
            left = when - self.dispatcher.clock()
            if left <= 0:
                return
            self._housekeeping()
            if self.journal is not None and self._should_spill():
                self.spill()
            self._wait(min(left, IDLE_WAIT))

    def _should_spill(self) -> bool:
        # Down (circuit open): everything goes to the journal. Merely retrying:
        # spill only once the queue is half full, so that emit itself rarely
        # has to (overflow="spill" makes the emitting thread write the journal).
        if self.dispatcher.breaker.state == "open":
            return True
        return self.options.overflow == "spill" and 2 * len(self.queue) >= self.options.queue_size

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self.wakeup.wait(max(0.0, seconds))
        self.wakeup.clear()

    def _finish(self, batch: Batch) -> None:
        journal = self.journal
        if isinstance(batch.source, JournalBatch) and journal is not None and not self.abandoned:
            journal.commit(batch.source)
        state = self.dispatcher.breaker.state
        if journal is not None and not journal.writer.caching and state != "open":
            journal.writer.start_caching()  # the backend is back
        if self._recovered is not None and state == "closed":
            self._recovered()
        self._answer_flushes()

    # -- spilling, flushing, housekeeping ----------------------------------------

    def spill(self) -> int:
        """Move the memory queue to the journal; returns how many events moved.

        What does not fit (disk budget spent, disk error) goes back to the
        head of the queue, where the overflow policy deals with it.
        """
        assert self.journal is not None
        moved = 0
        while True:
            with self.handoff:
                if self._stop.is_set():
                    return moved  # close journals the rest (see leftovers)
                chunk = self._identified(self.take(SPILL_CHUNK))
                if not chunk:
                    return moved
                blob = b"".join([frame(dumps(event)) for event in chunk])
                try:
                    self.journal.append(blob, len(chunk))
                except (JournalFull, OSError):
                    self.put_back(chunk)
                    if not self._spill_blocked:
                        self._spill_blocked = True
                        diagnostics.log_burst(
                            f"spill:{self.name}",
                            "delivery %r cannot spill to its journal",
                            self.name,
                        )
                    return moved
            self._spill_blocked = False
            moved += len(chunk)

    def idle(self) -> bool:
        """True when nothing is queued, in hand or waiting in the journal."""
        if self.batch is not None or self.queue:
            return False
        return self.journal is None or self.journal.idle()

    def _answer_flushes(self) -> None:
        if not self._flushes or not self.idle():
            return
        with self.lock:
            requests, self._flushes = self._flushes, []
        if self.journal is not None and not self.abandoned:
            self.journal.store()
        deadline = max(request.deadline for request in requests)
        try:
            flushed = flush_backend(self.dispatcher.backend, max(0.0, deadline - time.monotonic()))
        except Exception:
            flushed = False
            diagnostics.log_burst(f"flush:{self.name}", "flush of backend %r failed", self.name)
        for request in requests:
            if flushed:
                request.done.set()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        journal = self.journal
        if journal is None:
            return
        if now >= self._next_adopt:
            self._next_adopt = now + ADOPT_INTERVAL
            journal.adopt()
            remove_stale_metrics(journal.directory)
        if self.options.metrics_interval and now >= self._next_metrics:
            self._next_metrics = now + self.options.metrics_interval
            self.write_metrics()

    def metrics_path(self) -> Path | None:
        """Where this process publishes our metrics: ``<journal_dir>/metrics-<pid>.json``."""
        return None if self.journal is None else metrics_file(self.journal.directory)

    def write_metrics(self) -> None:
        """Refresh our metrics file (read by ``eventtracking stats --delivery``)."""
        path = self.metrics_path()
        if path is None:
            return
        try:
            write_metrics_file(path, self.metrics.snapshot(**self._gauges()))
        except OSError:
            diagnostics.log_burst(f"metrics:{self.name}", "cannot write delivery metrics file")
