"""Store events in the embedded SQLite store (the default store).

A plain writer: each `send_batch` writes its events in one transaction
(multi-row INSERTs, split into transactions of `batch_size` rows beyond
that), `send` is a batch of one. Writes are idempotent on the event id.
Each documentation version an event refers to (``event["meta"]``) is
written once, in the same transaction as the first event that needs it.
Read the store with `SQLiteStore` or the CLI.

A transaction per event is slow (tens of microseconds): events are meant to
arrive in batches. Built from configuration, the backend runs in the
delivery worker's ``inline`` mode, which gathers a batch in the emitting
thread and writes it there, writes a partial batch after ``max_delay``,
retries failures off the emitting thread, and writes before a fork and at
exit. In code, do the same::

    DeliveryBackend(SQLiteBackend("events.db"), mode="inline")
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..registry.registry import unseen_metadata
from ..store.sqlite import SQLiteStore
from . import check_batch_size


class SQLiteBackend:
    """Write events to the SQLite store at `path` (created if missing); thread- and fork-safe.

    `batch_size` is the most rows per transaction, and the delivery worker's
    batch size by default. A forked child opens its own connection (SQLite
    connections must not cross fork). `close()` is idempotent; sending
    afterwards raises RuntimeError.
    """

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "inline"}
    # Never changes an event: siblings may share its encoding (routing module docs).
    leaves_events_unchanged: ClassVar[bool] = True

    def __init__(self, path: str | os.PathLike[str] = "events.db", batch_size: int = 1000) -> None:
        self.batch_size = check_batch_size(batch_size)
        self.path = Path(path)
        self.store = SQLiteStore(self.path)
        self._pid = os.getpid()
        self._seen_types: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Connections inherited over fork(): kept referenced and never closed,
        # because closing one could checkpoint or remove the parent's WAL file.
        self._inherited: list[SQLiteStore] = []

    @property
    def destination(self) -> str:
        """The store's file: names the default journal."""
        return str(self.path.resolve())

    def send(self, event: dict[str, Any]) -> None:
        """Write one event (a batch of one, in its own transaction)."""
        self.send_batch([event])

    def send_batch(self, events: Sequence[dict[str, Any]]) -> None:
        """Write `events` in one transaction per `batch_size` of them; RuntimeError after close."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"SQLiteBackend({str(self.path)!r}) is closed")
            if self._pid != os.getpid():
                self._inherited.append(self.store)
                self.store, self._pid = SQLiteStore(self.path), os.getpid()
            step = self.batch_size
            for start in range(0, len(events), step):
                seen = self._seen_types
                types = []
                for event in events[start : start + step]:
                    if "meta" in event:
                        if seen is self._seen_types:
                            seen = set(seen)
                        types.extend(unseen_metadata(event, seen))
                self.store.write_events(events[start : start + step], types)
                self._seen_types = seen  # written: never again in this store

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing is ever held back: True."""
        return True

    def close(self) -> None:
        """Close the store; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pid == os.getpid():
                self.store.close()
