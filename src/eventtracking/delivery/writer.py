"""Append records to this process's lane: memory-mapped, preallocated segments.

A segment is created at its full size with ``posix_fallocate`` (so a full
disk shows as an OSError here, never as a SIGBUS on a later write), mapped
into memory, and records are copied into the mapping. A copy into a shared
file mapping is in the operating system's page cache the moment it is made:
it survives the process being killed (SIGKILL, OOM) without a system call
per record, which also keeps the emitting thread from handing the GIL to the
delivery worker on every event. The unwritten rest of a segment is zeros,
which readers take as its end (see `segments`); a sealed segment is cut to
the bytes it holds.

``fsync_always``: `append` returns once an fsync covered the record.
Concurrent appends share fsyncs (group commit): the first to find none
running fsyncs everything copied so far while the others wait. Otherwise
the worker calls `sync()` every ``fsync_interval`` seconds.

The disk budget counts whole segments as allocated (sealed ones at their
final size); `JournalFull` means the next segment would not fit.

An append may also hand over the object it encodes: the last `cache_limit`
of them are kept with their place in the lane and the record's payload, so
that the worker in the same process can deliver them without reading and
decoding them back, and deliver those very bytes. The worker stops the
cache while its backend is down (it reads nothing then, and would find the
oldest records in the file anyway), so that a long outage holds no more
events in memory than the queue may.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .lanes import Lane, _fsync_dir
from .segments import MAGIC, RECORD_HEADER


class JournalFull(Exception):
    """The journal's disk budget is spent; the overflow policy decides what happens."""


def _preallocate(fd: int, size: int) -> None:
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is not None:
        allocate(fd, 0, size)
    else:  # no fallocate (macOS): a sparse file; a full disk may then raise SIGBUS
        os.ftruncate(fd, size)


class SegmentWriter:
    """The writing side of one lane (created lazily by `make_lane`); thread-safe."""

    def __init__(
        self,
        make_lane: Callable[[], Lane],
        *,
        fsync_always: bool,
        segment_bytes: int,
        disk_budget: int,
        cache_limit: int = 0,
    ) -> None:
        self._make_lane = make_lane
        self.cache_limit = cache_limit
        self.fsync_always = fsync_always
        self.segment_bytes = segment_bytes
        self.disk_budget = disk_budget
        self.reset()

    def reset(self) -> None:
        """Forget everything (a forked child writes a lane of its own, lazily)."""
        # A plain Lock: `with self.lock` is C code, where Condition.__enter__ is not.
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.lane: Lane | None = None
        self.segments: list[int] = []  # ours on disk, oldest first; the last is being written
        # (segment, readable end) of the newest segment, replaced whole after every append:
        # the reader takes it without the lock and never reads past what was written.
        self.tail: tuple[int, int] = (0, 0)
        self._segment = 0
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._capacity = 0
        self.size = 0  # bytes used in the current segment: its readable end
        self._dirty = False
        self.disk_bytes = 0
        self.appended = 0  # records appended since this process (or child) started
        self.syncs = 0  # fsyncs covering appended records: fewer than appends = group commit
        self._seq = self._synced = 0
        self._leader = False
        self._failed: list[tuple[int, int, OSError]] = []
        # (segment, start, end, object, payload) of recent single-record appends, oldest first.
        self.cache: deque[tuple[int, int, int, Any, bytes]] = deque()
        self.caching = self.cache_limit > 0  # see stop_caching

    # -- appending ----------------------------------------------------------------------

    def open(self) -> None:
        """Create the lane and a segment now, rather than on the first append."""
        with self.lock:
            if self._map is None:
                self._make_room(0)

    def append(
        self, data: bytes, records: int = 1, obj: Any = None, body: bytes | None = None
    ) -> None:
        """Copy framed `records` into the lane; with fsync_always, return once synced.

        `obj` (one record only) is what `data` encodes, kept in the cache with
        `body`, the record's payload (taken from `data` if not given).
        JournalFull when a new segment would exceed the budget; OSError when
        the disk fails (nothing of `data` is then readable).
        """
        if obj is None or not self.caching:
            body = None  # None: nothing goes to the cache
        elif body is None:
            body = data[RECORD_HEADER.size :]
        size = len(data)
        lock = self.lock
        lock.acquire()  # not `with`: its special-method lookups cost more than the copy
        try:
            start = self.size
            end = start + size
            if self._map is None or end > self._capacity:
                self._make_room(size)
                start, end = self.size, self.size + size
            assert self._map is not None
            self._map[start:end] = data
            self.size = end
            self.tail = (self._segment, end)
            self._dirty = True
            self.appended += records
            if body is not None:
                if len(self.cache) >= self.cache_limit:
                    self.cache.popleft()  # the worker is far behind: it reads the file
                self.cache.append((self._segment, start, end, obj, body))
            if not self.fsync_always:
                return
            self._seq += 1
            mine = self._seq
            while self._synced < mine:
                if self._leader:
                    self.cond.wait()
                else:
                    self._lead()
            for first, upto, exc in self._failed:
                if first <= mine <= upto:
                    raise exc
        finally:
            lock.release()

    def _lead(self) -> None:
        """fsync everything copied so far, with the lock released meanwhile (lock held)."""
        self._leader = True
        first, upto = self._synced + 1, self._seq
        assert self._fd is not None
        fd = os.dup(self._fd)  # a roll may close ours meanwhile
        self._dirty = False
        error: OSError | None = None
        self.lock.release()
        try:
            os.fsync(fd)
            self.syncs += 1
        except OSError as exc:
            error = exc
        finally:
            os.close(fd)
            self.lock.acquire()
            self._leader = False
            self._synced = max(self._synced, upto)
            if error is not None:
                self._failed = [*self._failed[-15:], (first, upto, error)]
            self.cond.notify_all()

    def _make_room(self, size: int) -> None:
        """Start the lane, or seal the full segment and start the next (lock held)."""
        if self.lane is None:
            self.lane = self._make_lane()
        if self._map is not None:
            self._seal()
        self._start(self.segments[-1] + 1 if self.segments else 1, size)

    def _start(self, segment: int, size: int) -> None:
        assert self.lane is not None
        capacity = max(self.segment_bytes, len(MAGIC) + size)
        if self.disk_bytes + capacity > self.disk_budget:
            raise JournalFull(f"{self.lane.path}: disk budget of {self.disk_budget} bytes spent")
        path = self.lane.segment_path(segment)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _preallocate(fd, capacity)
            mapped = mmap.mmap(fd, capacity)
            mapped[: len(MAGIC)] = MAGIC
            if self.fsync_always:
                os.fsync(fd)
                _fsync_dir(self.lane.path)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._map, self._capacity = fd, mapped, capacity
        self.segments.append(segment)
        self._segment = segment
        self.size = len(MAGIC)
        self.tail = (segment, self.size)
        self.disk_bytes += capacity

    def _seal(self) -> None:
        """Unmap the current segment, cut it to what it holds and sync it (lock held)."""
        mapped, fd = self._map, self._fd
        self._map = self._fd = None
        if mapped is not None:
            mapped.close()
        if fd is None:
            return
        try:
            os.ftruncate(fd, self.size)
            self.disk_bytes -= self._capacity - self.size
            os.fsync(fd)
            self.syncs += 1
            self._synced = self._seq  # sealing synced every record it holds
        finally:
            os.close(fd)
            self._dirty = False
            self.cond.notify_all()

    def seal(self, segment: int) -> None:
        """Seal `segment` if it is being written (damage was found in it: never append behind)."""
        with self.lock:
            if self.segments and self.segments[-1] == segment and self._map is not None:
                self._seal()

    # -- what the reader and the worker need ---------------------------------------------

    def stop_caching(self) -> None:
        """Empty the cache and keep nothing more in it until `start_caching` (any thread).

        The reader finds a gap between the file and a restarted cache, and
        reads the file up to it (see `Journal.read`).
        """
        self.caching = False
        self.cache.clear()

    def start_caching(self) -> None:
        """Keep appended objects again (if this writer has a cache at all)."""
        self.caching = self.cache_limit > 0

    def forget(self, segment: int, freed: int) -> None:
        """The reader deleted `segment`, freeing `freed` bytes of the budget."""
        with self.lock:
            if segment in self.segments:
                self.segments.remove(segment)
            self.disk_bytes -= freed
            self.cond.notify_all()

    def wait_for_space(self, nbytes: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds until a segment for `nbytes` fits in the budget."""
        deadline = time.monotonic() + timeout
        need = max(self.segment_bytes, len(MAGIC) + nbytes)
        with self.lock:
            while self.disk_bytes + need > self.disk_budget:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def sync(self) -> None:
        """fsync what was appended since the last sync (the worker's housekeeping)."""
        with self.lock:
            if not self._dirty or self._fd is None:
                return
            self._dirty = False
            fd = os.dup(self._fd)  # fsync outside the lock: appends go on meanwhile
        try:
            os.fsync(fd)
            self.syncs += 1
        finally:
            os.close(fd)

    def close(self) -> Path | None:
        """Seal the segment being written; returns our lane's path (None if never written)."""
        with self.lock:
            self._seal()
        return None if self.lane is None else self.lane.path

    def after_fork_in_child(self) -> None:
        """Drop the parent's mapping, fd and lane (the child must never write them)."""
        if self._map is not None:
            self._map.close()
        if self._fd is not None:
            os.close(self._fd)
        if self.lane is not None:
            self.lane.forget()
        self.reset()
