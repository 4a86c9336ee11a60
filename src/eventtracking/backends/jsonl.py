"""Append events to a file as JSON lines, with size and time rotation.

A plain writer: `send` writes one line, `send_batch` all of its lines with
one write, through a buffer of `buffer_size` bytes; `flush()` (and
`close()`) pushes them to the operating system, and with ``fsync=True`` to
the disk. ``autoflush=True`` flushes after every `send`/`send_batch` call,
so another process reading the file sees each event at once.

The writer keeps no thread and no hook into fork or exit. Built from
configuration it runs in the delivery worker's ``inline`` mode, which writes
in the emitting thread, flushes the file before ``os.fork()`` (so a child
never writes its parent's buffered lines a second time) and at interpreter
exit; with ``autoflush=True`` nothing is ever buffered, and it is used
directly. In code, wrap it the same way in a pre-fork server::

    DeliveryBackend(JSONLinesBackend("events.jsonl"), mode="inline")

Events that refer to documented types (``event["meta"]``) are preceded, the
first time in each file, by a ``{"metadata": {...}}`` line holding that
documentation version, so a file read alone is self-describing;
`read_jsonl` separates the two.

Rotation: when the file reaches `rotate_bytes`, or `rotate_interval` seconds
after it was opened, it is renamed to ``PATH.YYYYmmddTHHMMSS.ffffff`` and a new
file is started; rotated files are never overwritten. A rename that fails is
counted under ``jsonl.rotate_errors`` and writing goes on in the current file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import repeat
from operator import contains
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from .. import diagnostics
from ..registry.registry import unseen_metadata
from ..serialization import dumps_line, dumps_lines, loads


class JSONLinesBackend:
    """Write one JSON object per line to `path`; thread-safe.

    Each process appends its own lines (the file is opened for appending).
    Its buffer is its own too: flush before ``os.fork()``, as the delivery
    worker's ``inline`` mode does (see the module docs).
    """

    # Never changes an event: siblings may share its encoding (routing module docs).
    leaves_events_unchanged: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        rotate_bytes: int | None = None,
        rotate_interval: float | None = None,
        fsync: bool = False,
        autoflush: bool = False,
        buffer_size: int = 1 << 20,
    ) -> None:
        # bool is an int subclass: True would silently mean "rotate after 1 byte".
        if rotate_bytes is not None and (
            isinstance(rotate_bytes, bool) or not isinstance(rotate_bytes, int) or rotate_bytes <= 0
        ):
            raise ValueError(f"rotate_bytes must be a positive int or None, not {rotate_bytes!r}")
        if rotate_interval is not None and (
            isinstance(rotate_interval, bool)
            or not isinstance(rotate_interval, int | float)
            or not rotate_interval > 0
        ):
            raise ValueError(
                f"rotate_interval must be positive seconds or None, not {rotate_interval!r}"
            )
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 0:
            raise ValueError(f"buffer_size must be an int >= 0, not {buffer_size!r}")
        self.path = Path(path)
        self.rotate_bytes = rotate_bytes
        self.rotate_interval = rotate_interval
        self.fsync = bool(fsync)
        self.autoflush = bool(autoflush)
        self._rotating = rotate_bytes is not None or rotate_interval is not None
        self._seen_types: set[str] = set()
        # True while send may simply write: no rotation or autoflush, not closed.
        self._plain = not self._rotating and not self.autoflush
        self._buffer_size = buffer_size
        self._lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = self._open()

    @property
    def delivery_defaults(self) -> Mapping[str, Any] | None:
        """From configuration: mode ``inline``, or none with ``autoflush`` (module docs).

        Batches of 100: the file is buffered anyway, and a longer batch keeps
        more event dicts alive, which costs more in garbage collection than
        one write per 100 lines saves.
        """
        return None if self.autoflush else {"mode": "inline", "batch_size": 100}

    @property
    def destination(self) -> str:
        """The file: names the default journal."""
        return str(self.path.resolve())

    def _open(self) -> BinaryIO:
        handle = open(self.path, "ab", buffering=self._buffer_size)  # noqa: SIM115 - kept open
        self._size = handle.tell()
        self._opened_at = time.monotonic()
        return handle

    def send(self, event: dict[str, Any]) -> None:
        """Append `event` as one line."""
        self.send_line(event, dumps_line(event))

    def send_line(self, event: dict[str, Any], line: bytes) -> None:
        """`send` for a caller that already holds ``dumps_line(event)`` (a sharing fan-out)."""
        if self._plain and "meta" not in event:
            # The common case: nothing to rotate, flush or describe. The buffered
            # file takes its own lock for each write, so a line is never split and
            # this lock is not needed. A close() in between makes the write fail:
            # the locked path below then says the backend is closed.
            try:
                self._file.write(line)
                return
            except ValueError:
                pass
        with self._lock:
            self._append([event], [line])

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        """Append several events with one write."""
        if not any(map(contains, events, repeat("meta"))):  # nothing to describe first
            data = dumps_lines(events)
            with self._lock:
                self._prepare()
                self._write(data)
            return
        lines = [dumps_line(event) for event in events]
        with self._lock:
            self._append(events, lines)

    def _append(self, events: list[dict[str, Any]], lines: list[bytes]) -> None:
        # Called with the lock held: rotate first, so that metadata lines land
        # in the file their events go to.
        self._prepare()
        self._write(
            b"".join(
                self._metadata_lines(event) + line if "meta" in event else line
                for event, line in zip(events, lines, strict=True)
            )
        )

    def _prepare(self) -> None:
        # With the lock held, before a write: refuse after close, rotate when due.
        if self._closed:
            raise RuntimeError(f"JSONLinesBackend({str(self.path)!r}) is closed")
        if self._rotating and self._due_for_rotation():
            self._rotate()

    def _write(self, data: bytes) -> None:
        # With the lock held, after _prepare: one write.
        self._file.write(data)
        self._size += len(data)
        if self.autoflush:
            self._flush_locked()

    def _metadata_lines(self, event: dict[str, Any]) -> bytes:
        # Each file describes itself: a documentation version is written, as
        # {"metadata": {...}}, before the first event in this file that refers to it.
        versions = unseen_metadata(event, self._seen_types)
        return b"".join(dumps_line({"metadata": v.to_dict()}) for v in versions)

    def _due_for_rotation(self) -> bool:
        if self._size == 0:
            return False
        if self.rotate_bytes is not None and self._size >= self.rotate_bytes:
            return True
        return (
            self.rotate_interval is not None
            and time.monotonic() - self._opened_at >= self.rotate_interval
        )

    def _rotate(self) -> None:
        self._flush_locked()
        self._file.close()
        self._seen_types.clear()  # the next file must describe itself too
        try:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            target = self.path.with_name(f"{self.path.name}.{stamp}")
            n = 1
            while target.exists():
                target = self.path.with_name(f"{self.path.name}.{stamp}.{n}")
                n += 1
            os.replace(self.path, target)
        except OSError:
            # A failed rename must not lose the line being written: keep
            # appending to the current file and try again on a later write.
            diagnostics.increment("jsonl.rotate_errors")
            diagnostics.log_burst(
                f"jsonl.rotate:{self.path}", "cannot rotate %s; still writing to it", self.path
            )
        finally:
            self._file = self._open()

    def _flush_locked(self) -> None:
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def flush(self, timeout: float = 10.0) -> bool:
        """Push buffered lines to the OS (and to disk with ``fsync=True``).

        Returns False if another thread held the file for longer than `timeout`.
        """
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            if not self._closed:
                self._flush_locked()
        finally:
            self._lock.release()
        return True

    def close(self) -> None:
        """Flush and close the file; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._file.close()
            self._closed = True
            self._plain = False  # send takes the checked path, which refuses


def read_jsonl(
    path: str | os.PathLike[str],
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Read a JSON-lines file written by this backend: (events, metadata by version id).

    A line that is not valid JSON (a torn last line after a crash) is skipped
    and counted under ``jsonl.unreadable_lines``.
    """
    events: list[dict[str, Any]] = []
    metadata: dict[str, dict[str, Any]] = {}
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            try:
                record = loads(raw)
            except ValueError:
                diagnostics.increment("jsonl.unreadable_lines")
                continue
            if isinstance(record, dict) and set(record) == {"metadata"}:
                version = record["metadata"]
                if isinstance(version, dict) and isinstance(version.get("id"), str):
                    metadata[version["id"]] = version
                continue
            events.append(record)
    return events, metadata
