"""One delivery attempt at a time: send, and decide what a failure means.

`Dispatcher.step(batch)` makes one attempt at the next part of a batch and
returns the clock time before which the next attempt must not be made. The
worker thread and synchronous mode both drive it; only how they wait
differs. The rules, in one place:

* A batch goes through ``send_batch`` when the backend has it, else event by
  event with ``send`` (what was sent before a failure stays delivered).
  Batches read from the journal are followed by the backend's ``flush`` so
  that nothing is committed that the backend still only buffers.
* A backend that declares ``leaves_events_unchanged`` is handed a batch read
  from the journal inside a sharing scope (`eventtracking.serialization`)
  that holds each event's record: it delivers the journal's bytes, as they
  are, rather than encode the events again.
* `TerminalError`: the backend answered, so the breaker closes; a part of
  several events is split in two (bisection) and each half is tried, until
  the event(s) the backend rejects are alone; those go to dead letters.
* Any other exception is retryable: the part waits (backoff with full
  jitter, at least ``retry_after``) and is tried again, until the retry
  policy gives up and the part goes to dead letters.
* The circuit breaker counts failures in a row; while open nothing is sent.
  After ``reset_timeout`` one event (in turn, from the part) is sent as a
  probe. A failed probe does not use up the part's retry budget, so a
  backend that is down for an hour exhausts nothing and loses nothing, unless
  the part is a single event: then the probe is that event, a down backend
  and an event the backend will never take look alike, and it counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from .. import diagnostics, serialization
from ..backends import flush_backend, leaves_events_unchanged
from ..exceptions import RetryableError
from .metrics import DeliveryMetrics
from .retry import CircuitBreaker, Clock, RetryPolicy, classify

Event = dict[str, Any]
FLUSH_TIMEOUT: Final = 30.0  # seconds a backend may take to write a journal batch


class DeadLetterSink(Protocol):
    """Where a dispatcher puts events it gives up on (the store, or a replay's tally)."""

    def __call__(
        self, events: list[Event], reason: str, attempts: int, first: float, last: float
    ) -> None: ...


class Part:
    """Events tried together, with their failure history."""

    __slots__ = ("attempts", "events", "first_failure", "first_wall", "probe", "reason")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.attempts = 0
        self.first_failure: float | None = None
        self.first_wall = 0.0
        self.probe = 0
        self.reason = ""


class Batch:
    """Events in the worker's hands until each is delivered or dead-lettered.

    `parts` is a stack: a terminal failure replaces a part by its two halves.
    `source` is whatever the owner needs to commit once the batch is done
    (a journal position), and `needs_flush` asks for the backend's flush.
    `bodies`, for a batch read from the journal, are the records of `events`
    in the same order (each its `serialization.dumps` bytes).
    """

    __slots__ = ("_bodies", "_by_id", "_events", "needs_flush", "parts", "source")

    def __init__(
        self, events: list[Event], source: Any = None, bodies: Sequence[bytes] | None = None
    ) -> None:
        self.parts = [Part(list(events))] if events else []  # ours to shrink, not the caller's
        self.source = source
        self.needs_flush = source is not None
        if bodies is not None and len(bodies) != len(events):
            raise ValueError(f"{len(events)} events but {len(bodies)} bodies")
        self._events = events
        self._bodies = bodies
        self._by_id: dict[int, bytes] | None = None

    def bodies_for(self, chunk: list[Event]) -> Sequence[bytes] | None:
        """The records of `chunk` (a part's events, or one of them), in its order.

        None for a batch not read from the journal.
        """
        bodies = self._bodies
        if bodies is None or len(chunk) == len(bodies):
            return bodies  # the whole batch: no part has been split off or delivered yet
        if self._by_id is None:
            # By id: `_events` keeps every event alive, so each id stays its own. (A
            # dict emitted twice into one batch then goes out as its later record.)
            self._by_id = dict(zip(map(id, self._events), bodies, strict=True))
        return list(map(self._by_id.__getitem__, map(id, chunk)))

    @property
    def done(self) -> bool:
        """True once every event was delivered or dead-lettered."""
        return not self.parts

    def events(self) -> list[Event]:
        """Every event still to deliver."""
        return [event for part in self.parts for event in part.events]


class Dispatcher:
    """Deliver batches to one backend under a retry policy and a circuit breaker.

    Not thread-safe: one worker thread (or the synchronous-mode lock) owns it.
    """

    def __init__(
        self,
        backend: Any,
        *,
        name: str,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
        metrics: DeliveryMetrics,
        dead_letter: DeadLetterSink,
        clock: Clock,
        rand: Callable[[], float],
    ) -> None:
        self.backend = backend
        self.name = name
        self.retry = retry
        self.breaker = breaker
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.clock = clock
        self.rand = rand
        self._send_batch = getattr(backend, "send_batch", None)
        self._unchanged = leaves_events_unchanged(backend)  # it may deliver journal bytes

    def step(self, batch: Batch) -> float:
        """Make one attempt at the top part of `batch`; the clock time of the next attempt."""
        now = self.clock()
        if not batch.parts:
            return now
        state = self.breaker.state
        if state == "open":
            return self.breaker.retry_at
        part = batch.parts[-1]
        probing = state == "half_open"
        index = part.probe % len(part.events) if probing else 0
        chunk = [part.events[index]] if probing else part.events
        if part.attempts:
            self.metrics.count("retried", len(chunk))
        bodies = batch.bodies_for(chunk) if self._unchanged else None
        sent, error = self._send(chunk, batch.needs_flush, bodies)
        if sent:
            self.metrics.record_delivery(chunk[:sent])
            if probing:
                del part.events[index]
            else:
                del part.events[:sent]
        if error is None:
            self.breaker.record_success()
            part.probe = 0
            self._drop_if_empty(batch, part)
            return now
        return self._failed(batch, part, index, len(chunk) - sent, probing, error, now)

    def run(self, batch: Batch, sleep: Callable[[float], None], fail_fast: bool = False) -> None:
        """Step `batch` to completion in this thread, sleeping between attempts.

        ``fail_fast``: once the circuit is open, give up at once (dead letters,
        reason "circuit open: ...") rather than wait for it to half-open.
        """
        while not batch.done:
            not_before = self.step(batch)
            if batch.done:
                return
            if fail_fast and self.breaker.state == "open":
                for part in batch.parts:
                    why = f"circuit open: {part.reason}" if part.reason else "circuit open"
                    first = part.first_wall or time.time()
                    self.dead_letter(part.events, why, part.attempts, first, time.time())
                batch.parts.clear()
                return
            wait = not_before - self.clock()
            if wait > 0:
                sleep(wait)

    def _send(
        self, events: list[Event], flush: bool, bodies: Sequence[bytes] | None = None
    ) -> tuple[int, BaseException | None]:
        """Hand `events` to the backend; (how many it took, the error that stopped it).

        `bodies`, their journal records, are what the backend delivers (module docs).
        """
        sent = 0
        try:
            if bodies is not None:
                # Only journal batches, only on the worker thread: never inside
                # another scope, which this one would end.
                serialization.begin_sharing_known(events, bodies)
            if self._send_batch is not None:
                self._send_batch(list(events))  # a backend must not reach our bookkeeping
                sent = len(events)
            else:
                for event in events:
                    self.backend.send(event)
                    sent += 1
            if flush and not flush_backend(self.backend, FLUSH_TIMEOUT):
                raise RetryableError(f"backend did not flush within {FLUSH_TIMEOUT} s")
        except Exception as exc:
            if flush:
                sent = 0  # not known to be written: send it all again
            diagnostics.log_burst(
                f"delivery:{self.name}",
                "delivery to backend %r failed; events kept for retry or dead letters",
                self.name,
            )
            return sent, exc
        finally:
            if bodies is not None:
                serialization.end_sharing()
        return sent, None

    def _failed(
        self,
        batch: Batch,
        part: Part,
        index: int,
        unsent: int,
        probing: bool,
        error: BaseException,
        now: float,
    ) -> float:
        """`unsent` events from `index` of `part` failed with `error`."""
        failure = classify(error)
        self.metrics.count("failures")
        if part.first_failure is None:
            part.first_failure, part.first_wall = now, time.time()
        part.reason = failure.reason
        if not failure.retryable:
            self.breaker.record_success()  # it answered: the backend is up
            if unsent > 1 and self._send_batch is not None:
                self._bisect(batch, part)
            else:  # one event, or sent one by one: the first unsent is the culprit
                culprit = part.events.pop(index)
                self._give_up([culprit], failure.reason, part.attempts + 1, part.first_wall)
                self._drop_if_empty(batch, part)
            return now
        opened = self.breaker.record_failure()
        if not probing or len(part.events) == 1:
            part.attempts += 1
        if probing:
            part.probe += 1
        elapsed = now - part.first_failure
        if part.attempts and self.retry.exhausted(part.attempts, elapsed):
            reason = f"retries exhausted after {part.attempts} attempts: {failure.reason}"
            events, part.events = part.events, []
            self._give_up(events, reason, part.attempts, part.first_wall)
            self._drop_if_empty(batch, part)
            return now
        if opened or self.breaker.state == "open":
            return self.breaker.retry_at
        return now + self.retry.delay(max(1, part.attempts), failure.retry_after, self.rand)

    @staticmethod
    def _bisect(batch: Batch, part: Part) -> None:
        batch.parts.remove(part)
        mid = len(part.events) // 2
        for half in (part.events[mid:], part.events[:mid]):  # first half on top: tried first
            batch.parts.append(Part(half))

    def _give_up(self, events: list[Event], reason: str, attempts: int, first: float) -> None:
        self.dead_letter(events, reason, max(1, attempts), first or time.time(), time.time())

    @staticmethod
    def _drop_if_empty(batch: Batch, part: Part) -> None:
        if not part.events and part in batch.parts:
            batch.parts.remove(part)
