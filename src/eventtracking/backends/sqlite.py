"""Store events in the embedded SQLite store (the default store).

Events are buffered and written in batches of `batch_size` in one
transaction; a batch is also written `max_delay` seconds after its first
event arrived, on `flush()`, on `close()` and at interpreter exit. Writes are
idempotent on the event id. Each documentation version an event refers to
(``event["meta"]``) is written once, in the same transaction as the first
event that needs it. Read the store with `SQLiteStore` or the CLI.

Events still in the buffer are lost if the process is killed; wrap the
backend in the delivery worker's durable journal when that matters.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from .. import diagnostics
from ..registry.model import TypeVersion
from ..registry.registry import unseen_metadata
from ..store.sqlite import SQLiteStore, row_for

_open_backends: weakref.WeakSet[SQLiteBackend] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for backend in list(_open_backends):
        try:
            backend.flush(5.0)
        except Exception:
            diagnostics.log_burst("sqlite:atexit", "SQLite store flush at exit failed")


_forking: list[SQLiteBackend] = []


def _before_fork() -> None:
    # Write every buffer before fork(): otherwise parent and child would both
    # hold (and write) the same events. Locks are held across the fork.
    _forking[:] = list(_open_backends)
    for backend in _forking:
        backend._write_lock.acquire()
        backend._lock.acquire()
        if not backend._closed and (backend._rows or backend._types):
            try:
                backend.store.write(backend._rows, backend._types)
                backend._rows, backend._types = [], []
            except Exception:
                diagnostics.log_burst("sqlite:fork", "SQLite write before fork failed")


def _after_fork_in_parent() -> None:
    for backend in _forking:
        backend._lock.release()
        backend._write_lock.release()
    _forking.clear()


def _after_fork_in_child() -> None:
    for backend in _forking:
        backend._after_fork()
    _forking.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class SQLiteBackend:
    """Write events to the SQLite store at `path` (created if missing); thread- and fork-safe.

    Buffered events are written before `os.fork()`; a child process gets its
    own connection and an empty buffer, so nothing is written twice.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "events.db",
        batch_size: int = 1000,
        max_delay: float = 1.0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if isinstance(max_delay, bool) or not isinstance(max_delay, int | float) or max_delay < 0:
            raise ValueError(f"max_delay must be seconds >= 0, not {max_delay!r}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.max_delay = float(max_delay)
        self.store = SQLiteStore(self.path)
        self._rows: list[tuple[str, str, int, bytes]] = []
        # Documentation versions the buffered events refer to, written with them once.
        self._types: list[TypeVersion] = []
        self._seen_types: set[str] = set()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False
        self._inherited: list[SQLiteStore] = []
        _open_backends.add(self)

    def _after_fork(self) -> None:
        # The child has no timer thread, an empty buffer, and its own
        # connection: SQLite connections must not cross fork(). The inherited
        # one is kept referenced, never closed, because closing it here could
        # checkpoint or remove the parent's WAL file.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._timer = None
        self._rows = []
        self._types = []
        if not self._closed:
            self._inherited.append(self.store)
            self.store = SQLiteStore(self.path)

    def send(self, event: dict[str, Any]) -> None:
        """Buffer `event`; write the batch when it is full."""
        row = row_for(event)
        lock = self._lock
        lock.acquire()  # not `with`: its special-method lookups cost more than the append
        try:
            if self._closed:
                raise RuntimeError(f"SQLiteBackend({str(self.path)!r}) is closed")
            if "meta" in event:
                self._types.extend(unseen_metadata(event, self._seen_types))
            rows = self._rows
            rows.append(row)
            full = len(rows) >= self.batch_size
            if not full and self._timer is None and self.max_delay > 0:
                self._start_timer()
        finally:
            lock.release()
        if full or self.max_delay == 0:
            self._write_pending()

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        """Write `events` (and anything buffered) now, in one transaction."""
        rows = [row_for(event) for event in events]
        with self._lock:
            if self._closed:
                raise RuntimeError(f"SQLiteBackend({str(self.path)!r}) is closed")
            for event in events:
                if "meta" in event:
                    self._types.extend(unseen_metadata(event, self._seen_types))
            self._rows.extend(rows)
        self._write_pending()

    def _start_timer(self) -> None:
        timer = threading.Timer(self.max_delay, self._on_timer)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _on_timer(self) -> None:
        try:
            self._write_pending()
        except Exception:
            diagnostics.increment("sqlite.write_errors")
            diagnostics.log_burst("sqlite:timer", "SQLite store write failed; events kept")

    def _write_pending(self, timeout: float = -1) -> bool:
        if not self._write_lock.acquire(timeout=timeout):
            return False
        try:
            with self._lock:
                rows, self._rows = self._rows, []
                types, self._types = self._types, []
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if not rows and not types:
                return True
            try:
                self.store.write(rows, types)
            except BaseException:
                # Keep the batch: the next write or flush tries again.
                with self._lock:
                    self._rows[:0] = rows
                    self._types[:0] = types
                raise
            return True
        finally:
            self._write_lock.release()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything buffered; False if another write held the store past `timeout`."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if not self._write_pending(max(0.0, deadline - time.monotonic())):
                return False
            with self._lock:
                if not self._rows:
                    return True
            if time.monotonic() >= deadline:
                return False

    def close(self) -> None:
        """Write what is buffered and close the store; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._write_pending()
        finally:
            self.store.close()
            _open_backends.discard(self)
