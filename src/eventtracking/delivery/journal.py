"""The crash-safe journal: our lane to append to, and every lane to read back in order.

Writers are the emitting threads (durable mode, or a buffered queue that
spills) and the delivery worker (spilling while the backend is down); see
`writer` for how a record is made to survive a crash. The reader is the
delivery worker alone: it reads lanes adopted from dead processes first,
then our own lane, and after delivering a batch it `commit`s the position in
memory. A committer thread records the positions in each lane's
``committed`` file every `COMMIT_INTERVAL` seconds, deletes the segments
wholly behind them and, every ``sync_interval`` seconds, fsyncs what was
appended. Those fsyncs can take long on a busy disk, and delivery never
waits for them: committing late only means re-delivering after a crash.

A torn or corrupt record ends the reading of its segment with a one-line
warning (and, in our own lane, seals that segment so nothing is appended
behind the damage); reading goes on with the next segment. Damage in the
newest segment of a dead process's lane is the torn tail a crash leaves
(counted under ``delivery.journal.torn_tails``); anywhere else it is
corruption (``delivery.journal.corrupt_segments``). Nothing here raises for
bad contents.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .. import diagnostics
from .lanes import Lane, Position, orphans
from .segments import MAGIC, RECORD_HEADER, CorruptRecord, read_segment
from .writer import JournalFull, SegmentWriter

__all__ = ["COMMIT_INTERVAL", "Journal", "JournalBatch", "JournalFull"]

COMMIT_INTERVAL: Final = 0.1  # seconds between committed-offset writes


@dataclass
class _Cursor:
    lane: Lane
    position: Position
    stored: Position  # what the committed file says


@dataclass
class JournalBatch:
    """Records read from one lane, and where reading resumes once they are delivered.

    `events` holds the objects themselves when they came from the writer's
    cache, and `bodies` their records' payloads, in the same order (then
    `payloads` is empty); otherwise decode `payloads`, each an event's bytes.
    """

    payloads: list[bytes]
    cursor: _Cursor
    end: Position
    events: list[Any] | None = None
    bodies: list[bytes] | None = None


class Journal:
    """A journal directory: our own lane to write, lanes of dead processes to drain.

    Our lane is created on the first `append` (or `open`); `fsync_always`,
    `segment_bytes` and `disk_budget` are the writer's (see `writer`).
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync_always: bool,
        segment_bytes: int,
        disk_budget: int,
        cache_limit: int = 0,
        sync_interval: float | None = None,
    ) -> None:
        self.directory = directory
        self.sync_interval = sync_interval
        self._store_lock = threading.Lock()  # the committer and the worker both store
        directory.mkdir(parents=True, exist_ok=True)  # a bad path fails here, at construction
        self.writer = SegmentWriter(
            lambda: Lane.create(directory),
            fsync_always=fsync_always,
            segment_bytes=segment_bytes,
            disk_budget=disk_budget,
            cache_limit=cache_limit,
        )
        self._reset()
        self.adopt()

    def _reset(self) -> None:
        self.read_records = 0  # records of our lane handed to the worker
        self._own: _Cursor | None = None
        self._adopted: list[_Cursor] = []
        self._committer: threading.Thread | None = None
        self._stop = threading.Event()

    # -- writing (any thread) ---------------------------------------------------------

    def open(self) -> None:
        """Create our lane and its first segment now rather than on the first append."""
        self.writer.open()
        self._start_committer()

    def append(
        self, data: bytes, records: int = 1, obj: Any = None, body: bytes | None = None
    ) -> None:
        """Append framed records (`data`, `records` of them); see `SegmentWriter.append`."""
        self.writer.append(data, records, obj, body)
        if self._committer is None:
            self._start_committer()

    def _start_committer(self) -> None:
        with self._store_lock:
            if self._committer is None:
                self._committer = threading.Thread(
                    target=self._commit_loop, name="eventtracking-journal", daemon=True
                )
                self._committer.start()

    def _commit_loop(self) -> None:
        next_sync = time.monotonic()
        while not self._stop.wait(COMMIT_INTERVAL):
            try:
                self.store()
                if self.sync_interval is not None and time.monotonic() >= next_sync:
                    next_sync = time.monotonic() + self.sync_interval
                    self.writer.sync()
            except Exception:
                diagnostics.log_burst(f"commit:{self.directory}", "journal commit failed")

    def wait_for_space(self, nbytes: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds until a record of `nbytes` fits in the disk budget."""
        return self.writer.wait_for_space(nbytes, timeout)

    def sync(self) -> None:
        """fsync what was appended since the last sync."""
        self.writer.sync()

    @property
    def fsync_always(self) -> bool:
        """True when every append waits for an fsync."""
        return self.writer.fsync_always

    @property
    def appended(self) -> int:
        """Records appended to our lane by this process."""
        return self.writer.appended

    @property
    def disk_bytes(self) -> int:
        """Bytes our lane holds on disk (what the budget limits)."""
        return self.writer.disk_bytes

    @property
    def syncs(self) -> int:
        """fsyncs that covered appended records (fewer than appends: group commit)."""
        return self.writer.syncs

    @property
    def lane_path(self) -> Path | None:
        """Our lane's directory (None until we first write)."""
        lane = self.writer.lane
        return None if lane is None else lane.path

    # -- reading (the worker thread only) -----------------------------------------------

    def adopt(self) -> int:
        """Take over the lanes of processes that are gone; returns how many."""
        mine = {c.lane.path for c in self._adopted}
        if self.lane_path is not None:
            mine.add(self.lane_path)
        found = orphans(self.directory, mine)
        for lane in found:
            committed = lane.load_committed()
            self._adopted.append(_Cursor(lane, committed, committed))
        return len(found)

    @property
    def adopted_lanes(self) -> int:
        """How many lanes of dead processes are still being drained."""
        return len(self._adopted)

    def read(self, max_records: int, max_bytes: int | None) -> JournalBatch | None:
        """The next records to deliver (adopted lanes first), or None when none are waiting."""
        while self._adopted:
            cursor = self._adopted[0]
            batch = self._read_lane(cursor, None, max_records, max_bytes)
            if batch is not None:
                return batch
            with self._store_lock:
                cursor.lane.remove()  # drained: everything read was delivered
                self._adopted.pop(0)
        own = self._own_cursor()
        if own is None:
            return None
        batch = self._read_cached(own, max_records, max_bytes)
        if batch is None:
            tail = self.writer.tail  # one immutable tuple: no lock shared with emitters
            segments = list(range(max(1, own.position.segment), tail[0] + 1))
            batch = self._read_lane(own, tail, max_records, max_bytes, segments)
        if batch is not None:
            self.read_records += len(batch.payloads) or len(batch.events or ())
        return batch

    def _read_cached(
        self, cursor: _Cursor, max_records: int, max_bytes: int | None
    ) -> JournalBatch | None:
        """Records of our lane from the writer's cache, if reading is where the cache starts.

        Lock-free: deque pops are atomic, and the writer only appends (or,
        when the cache is full, pops the oldest); an entry popped too early
        goes back.
        """
        segment, offset = cursor.position.segment, max(cursor.position.offset, len(MAGIC))
        events: list[Any] = []
        bodies: list[bytes] = []
        limit = max_bytes if max_bytes is not None else 1 << 62
        total = 0
        cache = self.writer.cache
        while len(events) < max_records and total < limit:
            try:
                entry = cache.popleft()
            except IndexError:
                break
            head_segment, start, stop, obj, body = entry
            if head_segment < segment or (head_segment == segment and start < offset):
                continue  # read from the file meanwhile
            if head_segment != segment or start != offset:
                cache.appendleft(entry)  # a gap: the file holds what comes first
                break
            events.append(obj)
            bodies.append(body)
            total += stop - start - RECORD_HEADER.size
            offset = stop
        if not events:
            return None
        return JournalBatch([], cursor, Position(segment, offset), events, bodies)

    def _own_cursor(self) -> _Cursor | None:
        if self._own is None and self.writer.lane is not None:
            self._own = _Cursor(self.writer.lane, Position(1, 0), Position(0, 0))
        return self._own

    def _read_lane(
        self,
        cursor: _Cursor,
        live: tuple[int, int] | None,
        max_records: int,
        max_bytes: int | None,
        segments: list[int] | None = None,
    ) -> JournalBatch | None:
        """Read from `cursor`: every segment before the `live` one (being written) is sealed."""
        position = cursor.position
        ids = segments if segments is not None else cursor.lane.segment_ids()
        for segment in ids:
            if segment < position.segment:
                continue
            offset = position.offset if segment == position.segment else 0
            end = live[1] if live is not None and segment == live[0] else None
            path = cursor.lane.segment_path(segment)
            read = read_segment(path, offset, end, max_records, max_bytes)
            if read.payloads:
                return JournalBatch(read.payloads, cursor, Position(segment, read.offset))
            if read.status == "corrupt":
                self._skip_corrupt(path, read.offset, read.problem, segment, cursor)
            elif end is not None:
                cursor.position = Position(segment, read.offset)
                return None  # caught up with the writer
            position = Position(segment + 1, 0)
            cursor.position = position
        return None

    def _skip_corrupt(
        self, path: Path, offset: int, problem: str, segment: int, cursor: _Cursor
    ) -> None:
        # One line, no traceback: this is about the file, not about our code.
        ids = cursor.lane.segment_ids() if cursor is not self._own else []
        if ids and segment == max(ids):
            # The newest segment of a process that is gone: it died mid-append. What
            # it had not finished writing was never acknowledged as durable.
            diagnostics.increment("delivery.journal.torn_tails")
            diagnostics.log_burst(
                f"torn:{path}",
                "journal: the last record in %s was cut short when its process stopped "
                "(%s at byte %d); the records before it are delivered",
                path,
                problem,
                offset,
            )
        else:
            diagnostics.increment("delivery.journal.corrupt_segments")
            diagnostics.log_burst(
                f"corrupt:{path}",
                "journal damaged; skipping the rest: %s",
                CorruptRecord(path, offset, problem),
            )
        if cursor is self._own:
            self.writer.seal(segment)

    def commit(self, batch: JournalBatch, force: bool = False) -> None:
        """`batch` was delivered: move on (recorded on disk soon, or now with `force`)."""
        batch.cursor.position = batch.end
        if force:
            self.store()

    def store(self) -> None:
        """Record every delivered position now and delete the segments wholly delivered."""
        with self._store_lock:
            for cursor in [*self._adopted, self._own]:
                position = None if cursor is None else cursor.position
                if cursor is None or position is None or cursor.stored == position:
                    continue
                try:
                    cursor.lane.store_committed(position)
                except FileNotFoundError:
                    continue  # a lane removed meanwhile
                cursor.stored = position
                self._delete_before(cursor, position)

    def _delete_before(self, cursor: _Cursor, position: Position) -> None:
        own = cursor is self._own
        if own:
            ids, current = list(self.writer.segments), self.writer.tail[0]
        else:
            ids, current = cursor.lane.segment_ids(), None
        for segment in ids:
            if segment >= position.segment or segment == current:
                break
            freed = cursor.lane.delete_segment(segment)
            if own:
                self.writer.forget(segment, freed)

    def idle(self) -> bool:
        """True when everything written was read, delivered and committed in memory."""
        if self._adopted:
            return False
        own = self._own_cursor()
        if own is None:
            return True
        tail = self.writer.tail
        position = own.position
        if position.offset < len(MAGIC):
            # A cursor that has read nothing yet stands before the segment's
            # header, which is never an event: it has read all there is to read
            # once it reaches the end of that header.
            position = Position(position.segment, len(MAGIC))
        return tail[0] == 0 or position >= Position(*tail)

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Seal our segment; delete our lane if everything in it was delivered."""
        self._stop.set()
        if self._committer is not None:
            self._committer.join()
        idle = self.idle()
        self.store()
        self.writer.close()
        for cursor in self._adopted:
            cursor.lane.release()
        self._adopted = []
        lane = self.writer.lane
        if lane is not None:
            if idle:
                lane.remove()
            else:
                lane.release()

    def after_fork_in_child(self) -> None:
        """Forget the parent's lane, mapping and fds: the child writes a lane of its own."""
        self._store_lock = threading.Lock()
        self.writer.after_fork_in_child()
        for cursor in self._adopted:
            cursor.lane.forget()
        self._reset()
