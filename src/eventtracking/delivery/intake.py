"""What happens to events that do not simply flow: overflow, disk budget, dead letters.

`Intake` applies the overflow policy when the memory queue is full
(``drop_newest``, ``drop_oldest``, ``block``, ``spill``), appends to the
journal under its disk budget (where ``block`` waits for room and anything
else drops), and accounts for every event that is lost, by reason: counted
in the backend's metrics and in `eventtracking.diagnostics`, with a warning
the first time each reason occurs (never with the event itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import diagnostics
from ..event import with_id
from ..serialization import dumps
from .deadletter import DeadLetterStore
from .dispatch import Event
from .journal import Journal, JournalFull
from .loop import Worker
from .metrics import DeliveryMetrics
from .options import DeliveryOptions
from .segments import frame


class Intake:
    """The emit-side policies of one delivery backend; safe from any thread."""

    def __init__(
        self,
        name: str,
        options: DeliveryOptions,
        metrics: DeliveryMetrics,
        journal: Journal | None,
        dead_letters: DeadLetterStore | None,
        closed: Callable[[], bool],
    ) -> None:
        self.name = name
        self.options = options
        self.metrics = metrics
        self.journal = journal
        self.dead_letters = dead_letters
        self._closed = closed

    def drop(self, reason: str, amount: int = 1) -> None:
        """Count `amount` lost events; warn the first time `reason` happens."""
        self.metrics.count_drop(reason, amount)
        diagnostics.warn_once(
            ("delivery.dropped", self.name, reason),
            "delivery backend %r dropped %d event(s): %s; further drops are only counted "
            "(see Tracker.stats() or eventtracking stats --delivery)",
            self.name,
            amount,
            reason,
        )

    def dead_letter(
        self, events: list[Event], reason: str, attempts: int, first: float, last: float
    ) -> None:
        """Events given up on: to the dead-letter store, or counted lost if there is none."""
        if not events:
            return
        if self.dead_letters is None:
            self.drop("terminal", len(events))
            return
        try:
            self.dead_letters.add(self.name, events, reason, attempts, first, last)
        except Exception:
            self.metrics.count_drop("dead_letter_error", len(events))
            diagnostics.log_burst(f"deadletter:{self.name}", "cannot store dead letters")
            return
        self.metrics.count("dead_lettered", len(events))

    def journal_event(self, event: Event) -> bool:
        """Serialize `event` once and append it to the journal; False if it was dropped."""
        body = dumps(event)
        return self.append(frame(body), event, body)

    def append(self, data: bytes, obj: Any = None, body: bytes | None = None) -> bool:
        """Append one framed record; a spent disk budget applies the policy.

        `obj` and `body`, its encoding, are kept for the worker (`SegmentWriter.append`).
        """
        journal = self.journal
        assert journal is not None
        deadline: float | None = None
        while True:
            try:
                journal.append(data, 1, obj, body)
                return True
            except JournalFull:
                if self.options.overflow != "block":
                    self.drop("disk_full")
                    return False
                if deadline is None:
                    deadline = time.monotonic() + self.options.block_timeout
                left = deadline - time.monotonic()
                if left <= 0 or not journal.wait_for_space(len(data), left):
                    self.drop("block_timeout")
                    return False
            except OSError:
                self.drop("journal_error")
                diagnostics.log_burst(f"journal:{self.name}", "cannot write journal %r", self.name)
                return False

    def overflow(self, worker: Worker, event: Event) -> bool:
        """The memory queue is full: apply the overflow policy to `event`.

        True if `event` went into the queue after all (where it is counted
        as emitted), False if it was journaled or dropped.
        """
        policy = self.options.overflow
        if policy == "drop_newest":
            self.drop("queue_full")
            return False
        if policy == "spill":
            self.journal_event(with_id(event) if type(event) is dict else event)
            return False
        if policy == "drop_oldest":
            if worker.replace_oldest(event):
                self.drop("oldest")
            return True
        return self._block(worker, event)

    def _block(self, worker: Worker, event: Event) -> bool:
        deadline = time.monotonic() + self.options.block_timeout
        with worker.room:
            worker.waiting_for_room += 1
            try:
                while len(worker.queue) >= self.options.queue_size:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed():
                        break
                    worker.room.wait(left)
                else:
                    worker.queue.append(event)
                    return True
            finally:
                worker.waiting_for_room -= 1
        self.drop("block_timeout")
        return False

    def keep(self, events: list[Event]) -> None:
        """At close: journal what is left (the next process delivers it), else count it lost."""
        if not events:
            return
        if self.journal is not None:
            try:
                self.journal.append(b"".join(frame(dumps(e)) for e in events), len(events))
            except (JournalFull, OSError):
                diagnostics.log_burst(f"close:{self.name}", "cannot journal events at close")
            else:
                return
        self.drop("shutdown", len(events))
