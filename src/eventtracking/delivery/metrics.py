"""Self-metrics of one delivery worker: counters, drops by reason and delivery latency.

Counters are bumped under one lock (cheap: no I/O under it). Latency is the
time from an event's ``timestamp`` to its delivery, kept as the most recent
`RESERVOIR` samples (the first and last event of each delivered batch), so
p50/p99 describe the recent past in bounded memory.

A worker with a journal writes `snapshot()` as JSON to
``<journal_dir>/metrics-<pid>.json`` every few seconds (atomically:
temporary file, then rename) and removes it at close, which is how
``eventtracking stats --delivery`` sees running processes from outside.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

import orjson

from .. import diagnostics

RESERVOIR: Final = 2048
DROP_REASONS: Final = (
    "queue_full",  # drop_newest: the memory queue was full
    "oldest",  # drop_oldest: evicted to make room for a newer event
    "block_timeout",  # block: no room came within block_timeout
    "disk_full",  # the journal's disk budget was spent
    "journal_error",  # the journal could not be written (an OS error)
    "shutdown",  # still queued at close, with no journal to keep it
    "dead_letter_error",  # a dead letter that could not be stored
    "terminal",  # rejected or given up, and no dead-letter store configured
)


def _latency_of(event: Any, now: float) -> float | None:
    stamp = event.get("timestamp") if isinstance(event, dict) else None
    if isinstance(stamp, str):
        try:
            stamp = datetime.fromisoformat(stamp)
        except ValueError:
            return None
    if not isinstance(stamp, datetime):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return max(0.0, now - stamp.timestamp())


class AtomicCount:
    """A counter any thread may bump without a lock.

    The emitting thread must take no lock the worker also needs: CPython's
    locks are not fair, and a thread taking one per event starves a worker
    taking it per batch. ``next()`` on an `itertools.count` is one C call,
    atomic under the GIL; its repr, ``count(N)``, tells the value.
    """

    def __init__(self) -> None:
        self._count = itertools.count()
        # partial(next, count) is called by vectorcall; the bound ``count.__next__``
        # is a method-wrapper, called through a slower generic path.
        self.bump: Callable[[], int] = partial(next, self._count)

    @property
    def value(self) -> int:
        """How many times `bump` was called."""
        return int(repr(self._count)[6:-1])


def _nothing() -> int:
    return 0


class DeliveryMetrics:
    """Counters and latency samples for one delivery worker; thread-safe.

    Every drop is also counted process-wide as
    ``delivery.<name>.dropped.<reason>`` in `eventtracking.diagnostics`.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # Emitted events the worker's queue took in are counted by the queue
        # (`Worker.entered`, set as `queued`): emit then counts nothing. The
        # rest (durable, synchronous, journaled or dropped on overflow) are
        # bumped here by the emitting threads, without a lock.
        self.emitted = AtomicCount()
        self.queued: Callable[[], int] = _nothing
        self.delivered = 0
        self.retried = 0
        self.dead_lettered = 0
        self.batches = 0
        self.failures = 0
        self.dropped: Counter[str] = Counter()
        self._samples: list[float] = []
        self._next_sample = 0

    def after_fork_in_child(self) -> None:
        """Start from zero: the child's metrics describe the child only."""
        self._lock = threading.Lock()
        self._reset()

    def count_drop(self, reason: str, amount: int = 1) -> None:
        """`amount` events were lost for `reason` (one of `DROP_REASONS`)."""
        with self._lock:
            self.dropped[reason] += amount
        diagnostics.increment(f"delivery.{self.name}.dropped.{reason}", amount)

    def count(self, field: str, amount: int = 1) -> None:
        """Add `amount` to the counter `field` (``retried``, ``failures``, ...)."""
        with self._lock:
            setattr(self, field, getattr(self, field) + amount)

    def record_delivery(self, events: list[Any]) -> None:
        """`events` reached the backend: count them and sample their latency."""
        now = time.time()
        samples = [_latency_of(events[0], now)]
        if len(events) > 1:
            samples.append(_latency_of(events[-1], now))
        with self._lock:
            self.delivered += len(events)
            self.batches += 1
            for sample in samples:
                if sample is None:
                    continue
                if len(self._samples) < RESERVOIR:
                    self._samples.append(sample)
                else:  # overwrite the oldest: a ring of the most recent samples
                    self._samples[self._next_sample] = sample
                    self._next_sample = (self._next_sample + 1) % RESERVOIR

    def latency(self) -> tuple[float | None, float | None]:
        """(p50, p99) delivery latency in seconds over the recent samples, or Nones."""
        with self._lock:
            samples = sorted(self._samples)
        if not samples:
            return None, None
        last = len(samples) - 1
        return samples[min(last, int(0.50 * len(samples)))], samples[
            min(last, int(0.99 * len(samples)))
        ]

    def snapshot(self, **gauges: Any) -> dict[str, Any]:
        """Every counter, the drops by reason, latency and the given gauges, as plain JSON data."""
        p50, p99 = self.latency()
        emitted = self.emitted.value + self.queued()
        with self._lock:
            data: dict[str, Any] = {
                "name": self.name,
                "emitted": emitted,
                "delivered": self.delivered,
                "retried": self.retried,
                "dead_lettered": self.dead_lettered,
                "batches": self.batches,
                "failures": self.failures,
                "dropped": dict(self.dropped),
            }
        data["dropped_total"] = sum(data["dropped"].values())
        data["latency_p50_ms"] = None if p50 is None else round(p50 * 1000, 3)
        data["latency_p99_ms"] = None if p99 is None else round(p99 * 1000, 3)
        data.update(gauges)
        return data


def flat(snapshot: dict[str, Any]) -> dict[str, int]:
    """A snapshot as integer counters (for `Tracker.stats()`): drops flattened, latency in µs."""
    out: dict[str, int] = {}
    for key, value in snapshot.items():
        if key == "dropped":
            for reason, count in value.items():
                out[f"dropped.{reason}"] = int(count)
        elif key.startswith("latency_") and key.endswith("_ms"):
            if value is not None:
                out[key.removesuffix("_ms") + "_us"] = round(value * 1000)
        elif isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, int):
            out[key] = value
    return out


def metrics_file(directory: Path, pid: int | None = None) -> Path:
    """The metrics file of process `pid` (default: this one) in a journal directory."""
    return directory / f"metrics-{os.getpid() if pid is None else pid}.json"


def process_alive(pid: int) -> bool:
    """True if a process with this id exists (it may not be ours, after pid reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_metrics(directory: Path) -> None:
    """Delete the metrics files of processes that are gone."""
    for path in directory.glob("metrics-*.json"):
        pid = path.stem.removeprefix("metrics-")
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)


def write_metrics_file(path: Path, snapshot: dict[str, Any]) -> None:
    """Write `snapshot` as JSON to `path` atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def gauges(mode: str, circuit: str, worker: Any, journal: Any) -> dict[str, Any]:
    """What a delivery backend holds right now (`worker` and `journal` may be None)."""
    return {
        "mode": mode,
        "pid": os.getpid(),
        "updated": time.time(),
        "circuit": circuit,
        "circuit_open": circuit != "closed",
        "queue_depth": len(worker.queue) if worker is not None else 0,
        "in_flight": len(worker.batch.events()) if worker and worker.batch else 0,
        "journaled": journal.appended if journal else 0,
        "journal_unread": journal.appended - journal.read_records if journal else 0,
        "journal_bytes": journal.disk_bytes if journal else 0,
        "adopted_lanes": journal.adopted_lanes if journal else 0,
    }
