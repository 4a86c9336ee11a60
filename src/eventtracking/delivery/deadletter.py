"""The dead-letter store: events a backend rejected, or that ran out of retries, with why.

A small SQLite file of its own (nothing shared with the event store): one row
per event, with the backend's name, the reason, how many attempts were made,
the first and last failure times (Unix seconds) and the event as JSON.
`eventtracking deadletters list|show|replay` reads and re-delivers them.
Safe for several threads and processes (WAL mode, one transaction per call);
a forked child opens its own connection on first use.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..exceptions import StoreError
from ..serialization import dumps, loads

DEFAULT_FILENAME: Final = "dead-letters.db"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id            INTEGER PRIMARY KEY,
    backend       TEXT NOT NULL,
    event_id      TEXT,
    name          TEXT,
    reason        TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    first_failure REAL NOT NULL,
    last_failure  REAL NOT NULL,
    event         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_backend_name ON dead_letters (backend, name);
"""


@dataclass(frozen=True)
class DeadLetter:
    """One stored dead letter; `event` is the decoded event."""

    id: int
    backend: str
    event_id: str | None
    name: str | None
    reason: str
    attempts: int
    first_failure: float
    last_failure: float
    event: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Everything but the event itself (for listings)."""
        return {
            "id": self.id,
            "backend": self.backend,
            "event_id": self.event_id,
            "name": self.name,
            "reason": self.reason,
            "attempts": self.attempts,
            "first_failure": self.first_failure,
            "last_failure": self.last_failure,
        }


class DeadLetterStore:
    """Open (``create=True``: or create) the dead-letter store at `path`.

    StoreError when the file cannot be opened or is not a dead-letter store.
    """

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / DEFAULT_FILENAME
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no dead-letter store here")
        self._pid = -1
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._inherited: list[sqlite3.Connection] = []
        self._connect(create)

    def after_fork_in_child(self) -> None:
        """A forked child must not use the parent's connection or lock: open anew on use."""
        self._lock = threading.Lock()
        self._pid = -1

    def _connect(self, create: bool = True) -> sqlite3.Connection:
        if self._db is not None and self._pid == os.getpid():
            return self._db
        if self._db is not None:
            # Connections must not cross fork(); keep the parent's referenced but
            # unused, since closing it here could disturb the parent's WAL.
            self._inherited.append(self._db)
            self._db = None
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None
            )
            if create:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the dead-letter store: {exc}") from exc
        if "dead_letters" not in tables:
            db.close()
            raise StoreError(f"{self.path}: not a dead-letter store (no dead_letters table)")
        self._db, self._pid = db, os.getpid()
        return db

    def add(
        self,
        backend: str,
        events: Iterable[dict[str, Any]],
        reason: str,
        attempts: int,
        first_failure: float,
        last_failure: float,
    ) -> int:
        """Store `events` as dead letters of `backend`; returns how many were stored."""
        rows = []
        for event in events:
            name, event_id = event.get("name"), event.get("id")
            rows.append(
                (
                    backend,
                    event_id if isinstance(event_id, str) else None,
                    name if isinstance(name, str) else None,
                    reason,
                    attempts,
                    first_failure,
                    last_failure,
                    dumps(event),
                )
            )
        with self._lock:
            self._write(
                "INSERT INTO dead_letters (backend, event_id, name, reason, attempts, "
                "first_failure, last_failure, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write dead letters: {exc}") from exc

    def _where(self, backend: str | None, names: tuple[str, ...]) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if backend is not None:
            clauses.append("backend = ?")
            params.append(backend)
        if names:
            clauses.append("(" + " OR ".join("name GLOB ?" for _ in names) + ")")
            params.extend(names)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def select(
        self,
        backend: str | None = None,
        names: tuple[str, ...] = (),
        limit: int | None = None,
        after: int = 0,
    ) -> list[DeadLetter]:
        """Dead letters matching `backend` and any of the `names` globs, oldest first."""
        where, params = self._where(backend, names)
        where += (" AND " if where else " WHERE ") + "id > ?"
        params.append(after)
        sql = f"SELECT * FROM dead_letters{where} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._letter(row) for row in self._read(sql, params)]

    def each(
        self, backend: str | None = None, names: tuple[str, ...] = (), page: int = 500
    ) -> Iterator[DeadLetter]:
        """Every matching dead letter, read a page at a time."""
        after = 0
        while True:
            letters = self.select(backend, names, limit=page, after=after)
            yield from letters
            if len(letters) < page:
                return
            after = letters[-1].id

    def count(self, backend: str | None = None, names: tuple[str, ...] = ()) -> int:
        """How many dead letters match."""
        where, params = self._where(backend, names)
        return int(self._read(f"SELECT COUNT(*) FROM dead_letters{where}", params)[0][0])

    def counts_by_backend(self) -> list[tuple[str, int]]:
        """(backend, count) for every backend with dead letters."""
        rows = self._read(
            "SELECT backend, COUNT(*) FROM dead_letters GROUP BY backend ORDER BY backend", []
        )
        return [(str(backend), int(count)) for backend, count in rows]

    def get(self, letter_id: int) -> DeadLetter | None:
        """The dead letter with this id, or None."""
        rows = self._read("SELECT * FROM dead_letters WHERE id = ?", [letter_id])
        return self._letter(rows[0]) if rows else None

    def delete(self, ids: Iterable[int]) -> None:
        """Forget dead letters (they were re-delivered)."""
        with self._lock:
            self._write("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])

    def record_failure(self, ids: Iterable[int], reason: str, when: float) -> None:
        """A replay failed again: count the attempt and keep the newest reason."""
        with self._lock:
            self._write(
                "UPDATE dead_letters SET attempts = attempts + 1, reason = ?, last_failure = ? "
                "WHERE id = ?",
                [(reason, when, i) for i in ids],
            )

    def _read(self, sql: str, params: list[Any]) -> list[Any]:
        try:
            with self._lock:
                return self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read dead letters: {exc}") from exc

    @staticmethod
    def _letter(row: tuple[Any, ...]) -> DeadLetter:
        return DeadLetter(
            id=row[0],
            backend=row[1],
            event_id=row[2],
            name=row[3],
            reason=row[4],
            attempts=row[5],
            first_failure=row[6],
            last_failure=row[7],
            event=loads(row[8]),
        )

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None
