"""The embedded SQLite store: batched idempotent writes and the read API.

The layout of a new store (schema version 3) and of the older ones, which
keep theirs, is described in `store.sqlite_schema`; the inserts live in
`store.sqlite_write`. The rowid gives insertion order for `tail` and
`follow`. WAL mode lets readers run while a writer writes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from ..exceptions import StoreError
from ..registry.model import TypeVersion
from ..serialization import loads
from . import Query, describe_event
from . import sqlite_schema as schema
from . import sqlite_write as write
from .rows import _typed, from_micros, row_for, to_micros, type_row
from .sqlite_schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "from_micros", "row_for", "to_micros", "type_row"]


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
                self.layout = schema.create(self._db, new=not exists)
            else:
                self.layout = schema.layout_of(self._db)
            self._names = write.NameIds(self._db) if self.layout.named else None
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: not a readable event store: {exc}") from exc
        except StoreError:
            self._db.close()
            raise
        self._chunk_sizes = write.chunk_sizes(self._db, 3 if self.layout.named else 4)
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
        return self._db.execute(schema.TABLE_EXISTS, (name,)).fetchone() is not None

    def _check_schema(self) -> None:
        has_events = self._has_table("et_events") or self._has_table("events")
        if not has_events or not self._has_table("et_meta"):
            raise StoreError(
                f"{self.path}: is a SQLite file but not an event store (no events table); "
                "choose another path"
            )

    # -- writing -------------------------------------------------------------

    def write(
        self,
        rows: Sequence[tuple[str | None, str, int, bytes]],
        types: Iterable[TypeVersion] = (),
    ) -> int:
        """Insert (id, name, ts, body) rows and the documentation versions they refer to.

        One transaction; rows and versions already stored are skipped (see
        `store.sqlite_schema`); a row's id may be None for an event without
        one. Returns how many event rows were new.
        """
        return self._transaction(rows, types, events=False)

    def write_events(
        self, events: Sequence[dict[str, Any]], types: Iterable[TypeVersion] = ()
    ) -> int:
        """Encode and insert `events` like `write`, in one transaction; how many were new."""
        return self._transaction(events, types, events=True)

    def _transaction(self, items: Sequence[Any], types: Iterable[TypeVersion], events: bool) -> int:
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
                names = self._names
                if names is None:
                    rows = [row_for(event) for event in items] if events else items
                    added = write.insert_text_rows(self._db, rows, self._chunk_sizes)
                elif events:
                    added = write.insert_named_events(self._db, names, items, self._chunk_sizes)
                else:
                    added = write.insert_named_rows(self._db, names, items, self._chunk_sizes)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if self._names is not None:
                    self._names.rolled_back()
                raise
            if self._names is not None:
                self._names.committed()
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
        table, name = self.layout.table, self.layout.name
        rows = self._read(
            f"SELECT {name}, COUNT(*), MIN(ts), MAX(ts) FROM {table} GROUP BY {name}", []
        )
        found = [(self.label(n), int(c), from_micros(lo), from_micros(hi)) for n, c, lo, hi in rows]
        return sorted(found)

    def field_counts(self, section: str) -> dict[str, dict[str, int]]:
        """For each event name, how many stored events have each top-level key of `section`.

        `section` is ``"data"`` or ``"context"``.
        """
        if section not in ("data", "context"):
            raise ValueError(f"section must be 'data' or 'context', not {section!r}")
        rows = self._read(
            f"SELECT e.{self.layout.name}, j.key, COUNT(*) "
            f"FROM {self.layout.table} AS e, json_each(e.body, ?) AS j "
            f"GROUP BY e.{self.layout.name}, j.key",
            [f"$.{section}"],
        )
        out: dict[str, dict[str, int]] = {}
        for name, key, count in rows:
            out.setdefault(self.label(name), {})[str(key)] = int(count)
        return out

    def latest(self, name: str) -> dict[str, Any] | None:
        """The most recent stored event named `name`, or None."""
        where = self.layout.name_is()
        rows = self._read(
            f"SELECT body FROM {self.layout.table} WHERE {where} ORDER BY ts DESC LIMIT 1", [name]
        )
        return loads(rows[0][0]) if rows else None

    @property
    def _has_types(self) -> bool:
        return bool(self._read(schema.TABLE_EXISTS, ["et_types"]))

    def label(self, value: Any) -> str:
        """The event name for a value of the layout's name column."""
        if self._names is not None and isinstance(value, int):
            return self._names.name_of(value)
        return str(value)

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
            if parts == ["name = ?"]:
                clauses.append(self.layout.name_is())
            else:
                clauses.append(self.layout.names_where(" OR ".join(parts)))
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
        sql = f"SELECT body FROM {self.layout.table}{where} ORDER BY ts {order}, seq {order}"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        return [loads(body) for (body,) in self._read(sql, params)]

    def count(self, query: Query) -> int:
        """How many events match `query` (its limit is ignored)."""
        where, params = self._where(query)
        rows = self._read(f"SELECT COUNT(*) FROM {self.layout.table}{where}", params)
        return int(rows[0][0])

    def tail(self, n: int = 10) -> list[dict[str, Any]]:
        """The last `n` events stored, oldest first."""
        rows = self._read(f"SELECT body FROM {self.layout.table} ORDER BY seq DESC LIMIT ?", [n])
        return [loads(body) for (body,) in reversed(rows)]

    def follow(self, poll_interval: float = 0.5, n: int = 10) -> Iterator[dict[str, Any]]:
        """Yield the last `n` events, then every event stored afterwards, forever.

        The starting point is fixed when `follow` is called, not on the first `next()`.
        """
        table = self.layout.table
        rows = self._read(f"SELECT seq, body FROM {table} ORDER BY seq DESC LIMIT ?", [n])
        if rows:
            last = int(rows[0][0])
        else:
            last = int(self._read(f"SELECT COALESCE(MAX(seq), 0) FROM {table}", [])[0][0])
        history = [loads(body) for _, body in reversed(rows)]
        return self._follow(history, last, poll_interval)

    def _follow(
        self, history: list[dict[str, Any]], last: int, poll_interval: float
    ) -> Iterator[dict[str, Any]]:
        yield from history
        while True:
            rows = self._read(
                f"SELECT seq, body FROM {self.layout.table} WHERE seq > ? ORDER BY seq LIMIT 1000",
                [last],
            )
            for seq, body in rows:
                last = seq
                yield loads(body)
            if not rows:
                time.sleep(poll_interval)

    def counts_by_name(self, query: Query | None = None) -> list[tuple[str, int]]:
        """(name, count) for every event name, most frequent first."""
        where, params = self._where(query or Query(limit=None))
        name = self.layout.name
        rows = self._read(
            f"SELECT {name}, COUNT(*) FROM {self.layout.table}{where} GROUP BY {name}", params
        )
        counts = [(self.label(value), int(count)) for value, count in rows]
        return sorted(counts, key=lambda item: (-item[1], item[0]))

    def counts_by_hour(self, query: Query | None = None) -> list[tuple[datetime, int]]:
        """(start of hour, count) for every hour that has events, oldest first."""
        where, params = self._where(query or Query(limit=None))
        rows = self._read(
            f"SELECT ts / 3600000000 AS hour, COUNT(*) FROM {self.layout.table}{where} "
            "GROUP BY hour ORDER BY 1",
            params,
        )
        return [(from_micros(hour * 3_600_000_000), int(count)) for hour, count in rows]

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The times of the oldest and newest stored events, or None when empty."""
        # Two queries: each is one index lookup, where MIN and MAX together scan.
        oldest = self._read(f"SELECT MIN(ts) FROM {self.layout.table}", [])[0][0]
        if oldest is None:
            return None
        newest = self._read(f"SELECT MAX(ts) FROM {self.layout.table}", [])[0][0]
        return from_micros(oldest), from_micros(newest)

    def _read(self, sql: str, params: list[Any]) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: read failed: {exc}") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            self._db.close()
