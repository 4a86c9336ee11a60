"""Journal lanes: one directory of segments per writing process, locked while it lives.

Layout of a journal directory::

    journal_dir/
      lane-<ms>-<pid>-<token>/     one per process that wrote (a "lane")
        lock                       flock(2)-ed by the owner for its lifetime
        000000000001.seg ...       segments (see `segments`)
        committed                  {"segment": N, "offset": BYTES}: delivered up to here
      metrics-<pid>.json           a live process's self-metrics, refreshed every few seconds
      dead-letters.db              the default dead-letter store

Two processes never write one segment: each writes its own lane. A lane
whose lock is free belongs to a process that is gone; the next process to
start (or a live one, periodically) takes the lock and delivers what the
lane holds after its committed offset, then deletes it. A lane is created
under a dot-name and renamed once locked, so no one adopts a lane that is
still being born.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .. import diagnostics

LANE_PREFIX: Final = "lane-"
SEGMENT_SUFFIX: Final = ".seg"
_STALE_AFTER: Final = 60.0  # seconds before a half-made or half-removed lane is cleaned up


@dataclass(frozen=True, order=True)
class Position:
    """A place in a lane: byte `offset` of segment number `segment`."""

    segment: int
    offset: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(path: Path, create: bool = False) -> int | None:
    """An fd holding an exclusive flock on `path`; None if another process holds it (or no file)."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


class Lane:
    """One lane directory and the lock that makes it ours (see module docs)."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def create(cls, directory: Path) -> Lane:
        """Make, lock and publish a new lane for this process under `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{LANE_PREFIX}{time.time_ns() // 1_000_000}-{os.getpid()}-{secrets.token_hex(3)}"
        tmp = directory / f".{name}"
        tmp.mkdir()
        fd = _lock(tmp / "lock", create=True)
        if fd is None:  # impossible for a directory nobody else knows; fail loudly
            raise OSError(f"{tmp}: cannot lock a new journal lane")
        os.replace(tmp, directory / name)
        _fsync_dir(directory)
        return cls(directory / name, fd)

    @classmethod
    def adopt(cls, path: Path) -> Lane | None:
        """Take over the lane at `path` if its owner is gone; None if it is alive (or gone)."""
        fd = _lock(path / "lock")
        if fd is None:
            if not (path / "lock").exists() and _older_than(path, _STALE_AFTER):
                shutil.rmtree(path, ignore_errors=True)  # a removal cut short
            return None
        if not path.is_dir():  # removed between our listing and our lock
            os.close(fd)
            return None
        return cls(path, fd)

    @property
    def name(self) -> str:
        """The lane directory's name."""
        return self.path.name

    def segment_path(self, segment: int) -> Path:
        """Where segment number `segment` lives."""
        return self.path / f"{segment:012d}{SEGMENT_SUFFIX}"

    def segment_ids(self) -> list[int]:
        """The numbers of the segments on disk, oldest first."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        ids = []
        for name in names:
            stem, dot, suffix = name.partition(".")
            if dot and f".{suffix}" == SEGMENT_SUFFIX and stem.isdigit():
                ids.append(int(stem))
        return sorted(ids)

    def load_committed(self) -> Position:
        """Where delivery stopped last time; the start of the lane when unknown."""
        try:
            data = json.loads((self.path / "committed").read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except FileNotFoundError:
            return Position(0, 0)
        except (OSError, ValueError, KeyError, TypeError):
            # Starting over re-delivers, which stores absorb (idempotent on id):
            # better than skipping events.
            diagnostics.increment("delivery.journal.bad_committed_file")
            diagnostics.log_burst(
                f"committed:{self.path}",
                "%s: unreadable committed offset; delivering the lane from its start",
                self.path,
            )
            return Position(0, 0)

    def store_committed(self, position: Position) -> None:
        """Record `position` atomically and durably (temporary file, fsync, rename, fsync dir)."""
        tmp = self.path / ".committed.tmp"
        data = json.dumps({"segment": position.segment, "offset": position.offset}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path / "committed")
        _fsync_dir(self.path)

    def delete_segment(self, segment: int) -> int:
        """Delete a delivered segment; returns the bytes freed (0 if it was gone)."""
        path = self.segment_path(segment)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def remove(self) -> None:
        """Delete the whole lane (everything in it was delivered) and drop its lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self) -> None:
        """Drop the lock, keeping the lane for the next process to adopt."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def forget(self) -> None:
        """In a forked child: close our copy of the lock fd; the parent keeps the lock."""
        self.release()


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def orphans(directory: Path, mine: set[Path]) -> list[Lane]:
    """Adopt every lane under `directory` whose owner is gone, oldest first."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    adopted = []
    for entry in entries:
        path = Path(entry.path)
        if path in mine or not entry.is_dir():
            continue
        if entry.name.startswith(f".{LANE_PREFIX}"):
            fd = _lock(path / "lock") if _older_than(path, _STALE_AFTER) else None
            if fd is not None:  # a creation cut short
                shutil.rmtree(path, ignore_errors=True)
                os.close(fd)
            continue
        if entry.name.startswith(LANE_PREFIX):
            lane = Lane.adopt(path)
            if lane is not None:
                adopted.append(lane)
    return adopted
