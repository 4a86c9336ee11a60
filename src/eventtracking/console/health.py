"""Delivery health: what the delivery workers report, their journals, and dead letters.

Two sources, one report. Workers in other processes are read from the
metrics files they write under a journal directory (the same files as
``eventtracking stats --delivery``); workers in this process (the console
inside a Django project) are read directly from the tracker's backend tree.
Dead letters are listed from every dead-letter store under the journal
directory and from the paths given. Replaying them is a separate call
(`replay`) that the pages offer only when the console was started with
replay allowed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..delivery.deadletter import DeadLetter, DeadLetterStore
from ..delivery.replay import Replayer
from ..delivery.report import delivery_report, redeliver
from ..delivery.retry import RetryPolicy
from ..exceptions import StoreError


@dataclass
class Health:
    """One look at delivery: workers' snapshots, journal backlog, dead letters per store."""

    workers: list[dict[str, Any]] = field(default_factory=list)
    lanes: dict[str, int] = field(default_factory=dict)
    dead: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def queue_depth(self) -> int:
        """Events waiting in memory across every live worker."""
        return sum(int(w.get("queue_depth", 0)) for w in self.workers if w.get("alive", True))

    @property
    def dead_total(self) -> int:
        """Dead letters across every store."""
        return sum(sum(counts.values()) for counts in self.dead.values())

    def total(self, key: str) -> int:
        """The sum of one counter (``delivered``, ``retried``...) over every worker."""
        return sum(int(w.get(key, 0) or 0) for w in self.workers)

    def dropped(self) -> dict[str, int]:
        """Dropped events by reason, over every worker."""
        out: dict[str, int] = {}
        for worker in self.workers:
            for reason, count in (worker.get("dropped") or {}).items():
                out[reason] = out.get(reason, 0) + int(count)
        return out


def in_process_workers(root: Any) -> list[Any]:
    """Every delivery backend in a tracker's (or routing backend's) tree."""
    found, pending, seen = [], [root], set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if callable(getattr(node, "metrics_snapshot", None)):
            found.append(node)
        for attribute in ("routing_backend", "backend"):
            child = getattr(node, attribute, None)
            if child is not None and callable(getattr(child, "send", None)):
                pending.append(child)
        children = getattr(node, "backends", None)
        if isinstance(children, Mapping):
            pending.extend(children.values())
    return found


class HealthSource:
    """Where to look: a journal directory, dead-letter stores, and this process's tracker.

    `tracker` returns the tracker whose delivery backends run in this process
    (None: only files are read).
    """

    def __init__(
        self,
        journal_dir: Path | None,
        dead_letters: Sequence[Path] = (),
        tracker: Callable[[], Any] | None = None,
    ) -> None:
        self.journal_dir = journal_dir
        self.dead_letter_paths = [Path(p) for p in dead_letters]
        self._tracker = tracker

    def report(self) -> Health:
        """Read every source now (a few small files and SQLite counts)."""
        health = Health()
        if self.journal_dir is not None and self.journal_dir.is_dir():
            report = delivery_report(self.journal_dir)
            health.lanes = report["lanes"]
            health.dead = report["dead"]
            for worker in report["workers"]:
                if worker.get("pid") == os.getpid() and self._tracker is not None:
                    continue  # read live below
                worker["source"] = "file"
                health.workers.append(worker)
        for path in self.dead_letter_paths:
            if str(self._resolve(path)) in health.dead:
                continue
            try:
                store = DeadLetterStore(path, create=False)
            except StoreError as exc:
                health.problems.append(str(exc))
                continue
            try:
                health.dead[str(store.path)] = dict(store.counts_by_backend())
            finally:
                store.close()
        if self._tracker is not None:
            for backend in in_process_workers(self._tracker()):
                snapshot = backend.metrics_snapshot()
                snapshot.update(alive=True, age_s=0.0, source="this process")
                health.workers.append(snapshot)
                kept = getattr(backend, "dead_letters", None)
                if isinstance(kept, DeadLetterStore) and str(kept.path) not in health.dead:
                    health.dead[str(kept.path)] = dict(kept.counts_by_backend())
        return health

    @staticmethod
    def _resolve(path: Path) -> Path:
        return path / "dead-letters.db" if path.is_dir() else path

    def letters(self, health: Health, limit: int = 50) -> list[tuple[str, DeadLetter]]:
        """Up to `limit` dead letters of each store in `health`, oldest first."""
        out: list[tuple[str, DeadLetter]] = []
        for path in health.dead:
            try:
                store = DeadLetterStore(path, create=False)
            except StoreError as exc:
                health.problems.append(str(exc))
                continue
            try:
                out.extend((path, letter) for letter in store.select(limit=limit))
            finally:
                store.close()
        return out


def replay(
    path: str,
    ids: Iterable[int] | None,
    target: Any,
    *,
    backend: str,
    close: bool = True,
) -> tuple[int, int]:
    """Send the dead letters of `backend` in the store at `path` to `target`.

    `ids` picks letters (None: all of that backend). Delivered letters leave
    the store; failures stay with one more attempt counted. `close` closes
    `target` afterwards. Returns (sent, failed); StoreError when the store
    cannot be read.
    """
    store = DeadLetterStore(path, create=False)
    replayer = Replayer(target, retry=RetryPolicy(max_attempts=3, initial_backoff=0.2))
    sent = failed = 0
    try:
        if ids is None:
            letters = list(store.each(backend))
        else:
            picked = (store.get(i) for i in ids)
            letters = [x for x in picked if x is not None and x.backend == backend]
        for start in range(0, len(letters), replayer.batch_size):
            ok, bad = redeliver(store, replayer, letters[start : start + replayer.batch_size])
            sent, failed = sent + ok, failed + bad
    finally:
        if close:
            replayer.close()
        store.close()
    return sent, failed


def letter_time(seconds: float) -> str:
    """A dead letter's failure time as UTC text."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
