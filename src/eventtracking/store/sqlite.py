"""The embedded SQLite store: schema, batched idempotent writes and the read API.

Layout: one row per event with the event id, name, time in integer
microseconds (UTC) and the whole event as JSON. One unique index on
(name, time, id) does two jobs: it serves the queries (time-only queries
skip-scan it, see _PLANNER_HINT), and it makes writes idempotent, since a
re-delivered event carries the same id, name and time, so at-least-once
delivery never shows a duplicate. One index instead of two makes each insert
cheaper. The rowid gives insertion order for `tail` and `follow`. WAL mode
lets readers run while a writer writes.

Stores made before schema version 2 keep their layout (a unique id column
and a (name, time) index); they are read and written the same way.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ..exceptions import StoreError
from ..registry.model import TypeVersion
from ..serialization import loads
from . import Query, describe_event
from .rows import _typed, from_micros, row_for, to_micros, type_row

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "from_micros", "row_for", "to_micros", "type_row"]

SCHEMA_VERSION: Final = 2

_EVENTS: Final = """
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL,
    name TEXT NOT NULL,
    ts   INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX events_name_ts_id ON events (name, ts, id);
"""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS et_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS et_types (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    registered_at TEXT,
    body          BLOB NOT NULL
);
"""

# There is no separate index on ts: each index costs every insert, and a
# time-only query can skip-scan (name, ts, id) because there are few names.
# SQLite plans a skip-scan only when its statistics say names repeat, so a new
# store gets this hint (as if ANALYZE had seen ~100 names); a real ANALYZE
# replaces it.
_PLANNER_HINT: Final = (
    "INSERT INTO sqlite_stat1 (tbl, idx, stat) "
    "SELECT 'events', 'events_name_ts_id', '1000000 10000 1 1' "
    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE idx = 'events_name_ts_id')"
)


_TABLE_EXISTS: Final = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"

# Rows per INSERT statement, largest first; each size's statement, built once.
_CHUNK_SIZES: Final = (256, 64, 16, 4, 1)
_INSERT_ROWS: Final = {
    size: "INSERT OR IGNORE INTO events (id, name, ts, body) VALUES "
    + ",".join(["(?, ?, ?, ?)"] * size)
    for size in _CHUNK_SIZES
}


class SQLiteStore:
    """A connection to a SQLite event store, for writing and reading; thread-safe.

    ``create=False`` opens an existing store only (StoreError otherwise).
    """

    def __init__(self, path: str | Path, create: bool = True, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not an event store file")
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if not create and not exists:
            raise StoreError(f"{self.path}: no such event store (run `eventtracking demo`?)")
        if exists:
            self._check_header()
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create its directory: {exc}") from exc
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=timeout, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from exc
        try:
            if exists:
                self._check_schema()
            if create:
                if not exists:
                    # Larger pages make batched inserts cheaper; must precede WAL.
                    self._db.execute("PRAGMA page_size=16384")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                if not self._has_table("events"):
                    self._db.executescript(_EVENTS)
                self._db.executescript(_SCHEMA)
                self._db.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1
                self._db.execute(_PLANNER_HINT)
                self._db.execute("ANALYZE sqlite_schema")  # makes this connection read it
                self._db.execute(
                    "INSERT OR IGNORE INTO et_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: not a readable event store: {exc}") from exc
        except StoreError:
            self._db.close()
            raise
        # Rows per INSERT: 256 where SQLite allows 1,024 parameters per statement.
        params = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._chunk_sizes = tuple(size for size in _CHUNK_SIZES if size * 4 <= params)
        self._lock = threading.Lock()

    def _check_header(self) -> None:
        # Read the magic bytes before SQLite touches the file, so that opening
        # a file that is not ours never changes it.
        try:
            with self.path.open("rb") as handle:
                header = handle.read(16)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read: {exc}") from exc
        if header != b"SQLite format 3\x00":
            raise StoreError(f"{self.path}: not a readable event store (not a SQLite file)")

    def _has_table(self, name: str) -> bool:
        return self._db.execute(_TABLE_EXISTS, (name,)).fetchone() is not None

    def _check_schema(self) -> None:
        if not self._has_table("events") or not self._has_table("et_meta"):
            raise StoreError(
                f"{self.path}: is a SQLite file but not an event store (no events table); "
                "choose another path"
            )

    # -- writing -------------------------------------------------------------

    def write(
        self,
        rows: list[tuple[str, str, int, bytes]],
        types: Iterable[TypeVersion] = (),
    ) -> int:
        """Insert rows (and the documentation versions they refer to) in one transaction.

        Rows and versions whose id is already stored are skipped. Returns how
        many event rows were new.
        """
        type_rows = [type_row(version) for version in types]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if type_rows:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO et_types (id, kind, name, registered_at, body) "
                        "VALUES (?, ?, ?, ?, ?)",
                        type_rows,
                    )
                added = self._insert(rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return added

    def _insert(self, rows: list[tuple[str, str, int, bytes]]) -> int:
        # Several rows per INSERT statement: SQLite does the same work, but the
        # per-row round trips of executemany cost about a third of a batch.
        # Statements come in a few fixed sizes, so all of them stay prepared.
        added = 0
        start, left = 0, len(rows)
        for size in self._chunk_sizes:
            while left >= size:
                chunk = rows[start : start + size]
                cursor = self._db.execute(
                    _INSERT_ROWS[size], list(itertools.chain.from_iterable(chunk))
                )
                added += cursor.rowcount
                start, left = start + size, left - size
        return added

    # -- documentation versions ----------------------------------------------------

    def metadata(self, type_id: str) -> dict[str, Any] | None:
        """The stored documentation version with this id (`TypeVersion.to_dict()` form)."""
        if not self._has_types:
            return None
        rows = self._read("SELECT body FROM et_types WHERE id = ?", [type_id])
        return loads(rows[0][0]) if rows else None

    def types(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every stored documentation version, by name then registration time."""
        if not self._has_types:
            return []
        sql = "SELECT body FROM et_types"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        rows = self._read(sql + " ORDER BY name, registered_at", params)
        return [loads(body) for (body,) in rows]

    def metadata_for(self, event: dict[str, Any]) -> dict[str, Any]:
        """The documentation an event refers to: ``{"type": ..., "contexts": {name: ...}}``."""
        return describe_event(event, self.metadata)

    # -- summaries for the catalogue --------------------------------------------------

    def summaries(self) -> list[tuple[str, int, datetime, datetime]]:
        """(name, count, first seen, last seen) for every stored event name."""
        rows = self._read("SELECT name, COUNT(*), MIN(ts), MAX(ts) FROM events GROUP BY name", [])
        return [(str(n), int(c), from_micros(lo), from_micros(hi)) for n, c, lo, hi in rows]

    def field_counts(self, section: str) -> dict[str, dict[str, int]]:
        """For each event name, how many stored events have each top-level key of `section`.

        `section` is ``"data"`` or ``"context"``.
        """
        if section not in ("data", "context"):
            raise ValueError(f"section must be 'data' or 'context', not {section!r}")
        rows = self._read(
            "SELECT e.name, j.key, COUNT(*) FROM events AS e, json_each(e.body, ?) AS j "
            "GROUP BY e.name, j.key",
            [f"$.{section}"],
        )
        out: dict[str, dict[str, int]] = {}
        for name, key, count in rows:
            out.setdefault(str(name), {})[str(key)] = int(count)
        return out

    def latest(self, name: str) -> dict[str, Any] | None:
        """The most recent stored event named `name`, or None."""
        rows = self._read("SELECT body FROM events WHERE name = ? ORDER BY ts DESC LIMIT 1", [name])
        return loads(rows[0][0]) if rows else None

    @property
    def _has_types(self) -> bool:
        return bool(self._read(_TABLE_EXISTS, ["et_types"]))

    # -- reading -------------------------------------------------------------

    def _where(self, query: Query) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.names:
            parts = []
            for pattern in query.names:
                if any(ch in pattern for ch in "*?["):
                    parts.append("name GLOB ?")
                else:
                    parts.append("name = ?")
                params.append(pattern)
            clauses.append("(" + " OR ".join(parts) + ")")
        if query.since is not None:
            clauses.append("ts >= ?")
            params.append(to_micros(query.since))
        if query.until is not None:
            clauses.append("ts < ?")
            params.append(to_micros(query.until))
        for section, filters in (("context", query.context), ("data", query.data)):
            for key, value in filters:
                if '"' in key:
                    raise ValueError(f"{section} filter key {key!r} must not contain '\"'")
                path = f'$.{section}."{key}"'
                if value in ("true", "false", "null") or value is None or isinstance(value, bool):
                    literal = "null" if value is None else str(value).lower()
                    clauses.append("json_type(body, ?) = ?")
                    params.extend([path, literal])
                else:
                    clauses.append("json_extract(body, ?) IN (?, ?)")
                    params.extend([path, value, _typed(value)])
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return where, params

    def query(self, query: Query) -> list[dict[str, Any]]:
        """Events matching `query`, oldest first unless ``newest_first``."""
        where, params = self._where(query)
        order = "DESC" if query.newest_first else "ASC"
        sql = f"SELECT body FROM events{where} ORDER BY ts {order}, seq {order}"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        return [loads(body) for (body,) in self._read(sql, params)]

    def count(self, query: Query) -> int:
        """How many events match `query` (its limit is ignored)."""
        where, params = self._where(query)
        rows = self._read(f"SELECT COUNT(*) FROM events{where}", params)
        return int(rows[0][0])

    def tail(self, n: int = 10) -> list[dict[str, Any]]:
        """The last `n` events stored, oldest first."""
        rows = self._read("SELECT body FROM events ORDER BY seq DESC LIMIT ?", [n])
        return [loads(body) for (body,) in reversed(rows)]

    def follow(self, poll_interval: float = 0.5, n: int = 10) -> Iterator[dict[str, Any]]:
        """Yield the last `n` events, then every event stored afterwards, forever.

        The starting point is fixed when `follow` is called, not on the first `next()`.
        """
        rows = self._read("SELECT seq, body FROM events ORDER BY seq DESC LIMIT ?", [n])
        if rows:
            last = int(rows[0][0])
        else:
            last = int(self._read("SELECT COALESCE(MAX(seq), 0) FROM events", [])[0][0])
        history = [loads(body) for _, body in reversed(rows)]
        return self._follow(history, last, poll_interval)

    def _follow(
        self, history: list[dict[str, Any]], last: int, poll_interval: float
    ) -> Iterator[dict[str, Any]]:
        yield from history
        while True:
            rows = self._read(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT 1000", [last]
            )
            for seq, body in rows:
                last = seq
                yield loads(body)
            if not rows:
                time.sleep(poll_interval)

    def counts_by_name(self, query: Query | None = None) -> list[tuple[str, int]]:
        """(name, count) for every event name, most frequent first."""
        where, params = self._where(query or Query(limit=None))
        rows = self._read(
            f"SELECT name, COUNT(*) FROM events{where} GROUP BY name ORDER BY 2 DESC, 1", params
        )
        return [(str(name), int(count)) for name, count in rows]

    def counts_by_hour(self, query: Query | None = None) -> list[tuple[datetime, int]]:
        """(start of hour, count) for every hour that has events, oldest first."""
        where, params = self._where(query or Query(limit=None))
        rows = self._read(
            f"SELECT ts / 3600000000 AS hour, COUNT(*) FROM events{where} GROUP BY hour ORDER BY 1",
            params,
        )
        return [(from_micros(hour * 3_600_000_000), int(count)) for hour, count in rows]

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The times of the oldest and newest stored events, or None when empty."""
        # Two queries: each is one index lookup, where MIN and MAX together scan.
        oldest = self._read("SELECT MIN(ts) FROM events", [])[0][0]
        if oldest is None:
            return None
        newest = self._read("SELECT MAX(ts) FROM events", [])[0][0]
        return from_micros(oldest), from_micros(newest)

    def _read(self, sql: str, params: list[Any]) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: read failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            self._db.close()
