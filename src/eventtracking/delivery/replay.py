"""Re-send events to one backend: from an event store, JSON-lines files or dead letters.

`read_events` yields stored events matching name globs and a time range,
from a store (SQLite path or PostgreSQL URL, paged so memory stays flat) or
from JSON-lines files. `Replayer` sends them in batches through the same
`Dispatcher` as live delivery (retries with backoff, bisection on terminal
errors), at most `rate` events per second, and reports what failed.
"""

from __future__ import annotations

import fnmatch
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ..backends import close_backend
from ..exceptions import StoreError
from ..serialization import dumps, loads
from ..store import Query, open_store
from .dispatch import Batch, Dispatcher, Event
from .metrics import DeliveryMetrics
from .retry import CircuitBreaker, CircuitPolicy, RetryPolicy

PAGE: Final = 1000
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def is_store(location: str) -> bool:
    """True when `location` is a store URL or a SQLite file (else: JSON lines)."""
    if location.startswith(("postgres://", "postgresql://")):
        return True
    try:
        with open(location, "rb") as handle:
            return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def read_events(
    sources: Sequence[str],
    names: tuple[str, ...] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    skipped: Counter[str] | None = None,
) -> Iterator[Event]:
    """Events from each source in turn, oldest first within a store (see module docs).

    Unreadable JSON lines are skipped and counted in `skipped` under the file
    name; a store that cannot be opened raises StoreError.
    """
    for source in sources:
        if is_store(source):
            yield from _store_events(source, names, since, until)
        else:
            yield from _jsonl_events(Path(source), names, since, until, skipped)


def _store_events(
    location: str, names: tuple[str, ...], since: datetime | None, until: datetime | None
) -> Iterator[Event]:
    store = open_store(location)
    try:
        seen: set[Any] = set()  # events at exactly `since`, already yielded
        page = PAGE
        while True:
            events = store.query(Query(names=names, since=since, until=until, limit=page))
            for event in events:
                if _key(event) not in seen:
                    yield event
            if len(events) < page:
                return
            last = _when(events[-1].get("timestamp"))
            if last is None or last == since:
                # The whole page shares one timestamp: read more of it at once.
                seen.update(_key(e) for e in events)
                page *= 2
                continue
            seen = {_key(e) for e in events if _when(e.get("timestamp")) == last}
            since = last
    finally:
        store.close()


def _key(event: Event) -> Any:
    event_id = event.get("id")
    return event_id if isinstance(event_id, str) else dumps(event)


def _jsonl_events(
    path: Path,
    names: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    skipped: Counter[str] | None,
) -> Iterator[Event]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc}") from exc
    with handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                event = loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                if skipped is not None:
                    skipped[str(path)] += 1
                continue
            if names and not any(fnmatch.fnmatchcase(str(event.get("name")), n) for n in names):
                continue
            if since is not None or until is not None:
                stamp = _when(event.get("timestamp"))
                if stamp is None or (since is not None and stamp < since):
                    continue
                if until is not None and stamp >= until:
                    continue
            yield event


@dataclass
class ReplayResult:
    """How a replay went: events sent, events that failed and why."""

    sent: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class Replayer:
    """Send events to `backend` in batches, with retries and an optional rate limit.

    The circuit breaker never opens here: each batch gets the whole retry
    budget, then its events are reported as failed.
    """

    def __init__(
        self,
        backend: Any,
        *,
        retry: RetryPolicy,
        batch_size: int = 500,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be a positive number of events per second, not {rate}")
        self.batch_size = max(1, min(batch_size, int(rate) if rate else batch_size))
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._failures: list[tuple[Event, str]] = []
        self._dispatcher = Dispatcher(
            backend,
            name="replay",
            retry=retry,
            breaker=CircuitBreaker(CircuitPolicy(failure_threshold=2**31), clock),
            metrics=DeliveryMetrics("replay"),
            dead_letter=self._collect,
            clock=clock,
            rand=random.random,
        )

    def close(self) -> None:
        """Close the target backend."""
        close_backend(self._dispatcher.backend)

    def _collect(
        self, events: list[Event], reason: str, attempts: int, first: float, last: float
    ) -> None:
        self._failures.extend((event, reason) for event in events)

    def deliver(self, events: list[Event]) -> list[tuple[Event, str]]:
        """Send one batch now; the events that failed, with the reason."""
        self._failures = []
        batch = Batch(events)
        batch.needs_flush = True  # "sent" must mean written, before a dead letter is deleted
        self._dispatcher.run(batch, self._sleep)
        return self._failures

    def run(
        self, events: Iterable[Event], progress: Callable[[int], None] | None = None
    ) -> ReplayResult:
        """Send every event, `batch_size` at a time, no faster than `rate` per second."""
        result = ReplayResult()
        start = self._clock()
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) >= self.batch_size:
                self._send(batch, result, start, progress)
                batch = []
        if batch:
            self._send(batch, result, start, progress)
        return result

    def _send(
        self,
        batch: list[Event],
        result: ReplayResult,
        start: float,
        progress: Callable[[int], None] | None,
    ) -> None:
        if self.rate:
            due = start + (result.sent + result.failed) / self.rate
            wait = due - self._clock()
            if wait > 0:
                self._sleep(wait)
        failures = self.deliver(batch)
        result.failed += len(failures)
        result.sent += len(batch) - len(failures)
        result.reasons.update(reason for _, reason in failures)
        if progress is not None:
            progress(len(batch))
