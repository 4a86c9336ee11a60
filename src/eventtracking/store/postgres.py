"""The PostgreSQL event store: COPY-batched idempotent writes and the read API.

Layout (see `postgres_schema`): one row per event with ``seq`` (insertion
order, for `tail` and `follow`), ``id`` (unique: a re-delivered event is
stored once), ``name``, ``ts`` (timestamptz), ``data`` and ``context``
(jsonb) and ``extra`` (jsonb: any other top-level keys, such as ``meta``).
Indexes on id, (name, ts) and ts. The documentation versions events refer
to are kept in ``<table>_types``, written in the transaction of the first
event that needs them.

A batch is written with one COPY in one transaction. When an id in it is
already stored (a retry, a redelivery), the COPY fails on the unique index
and the batch is written again through a temporary table with
``INSERT ... ON CONFLICT (id) DO NOTHING``; a batch of new events, the common
case, pays for no second pass.

Read events come back as ``{id, name, timestamp (ISO-8601 text, UTC), data,
context, **extra}``, the shape the SQLite store returns. An event stored
without an id has the content-derived id `store.rows.content_id` gives it; a
missing ``data``/``context`` comes back as None.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self

from .. import _state, diagnostics
from ..exceptions import MissingExtraError, RetryableError, StoreError, TerminalError
from ..registry.model import TypeVersion
from ..serialization import loads
from . import Query, describe_event
from .postgres_follow import follow
from .postgres_query import where_clause
from .postgres_rows import COLUMNS, copy_rows, event_from_row
from .postgres_schema import (
    SCHEMA_VERSION,
    Names,
    check_schema,
    describe,
    migrate,
    split_location,
)
from .rows import type_row

try:
    import psycopg
    from psycopg.errors import UniqueViolation
    from psycopg.types.json import set_json_loads
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtraError("psycopg", "postgres") from exc

_inherited = _state.inherited_connections  # a parent's connections: never closed in a child


class PostgresStore:
    """A connection to a PostgreSQL event store, for writing and reading; thread-safe.

    `location` is a ``postgresql://`` URL (``?table=NAME`` picks the table,
    default ``events``) or a libpq ``key=value`` string with `table` passed.
    ``create=True`` creates or migrates the schema (safe with concurrent
    starters); ``create=False`` opens an existing store only. Both raise
    StoreError, naming the server and the fix, when it cannot be used.

    One connection, used under a lock; it is re-opened after a connection
    loss and in a forked child (which never touches the parent's).
    """

    def __init__(
        self,
        location: str,
        table: str | None = None,
        *,
        create: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        self.conninfo, table_name = split_location(location, table)
        self.names = Names.parse(table_name)
        self.connect_timeout = connect_timeout
        self.where = f"{describe(self.conninfo)} table {self.names.events}"
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self._closed = False
        self.schema_version = 0
        self._select = f"SELECT id, name, ts, data, context, extra, seq FROM {self.names.events}"
        conn = self._connection()
        try:
            if create:
                migrate(conn, self.names)
                self.schema_version = SCHEMA_VERSION
            else:  # a reader never changes the schema; an older one is read as it is
                self.schema_version = check_schema(conn, self.names)
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"{self.where}: cannot open: {_first_line(exc)}") from exc
        except StoreError as exc:
            self.close()
            raise StoreError(f"{self.where}: {exc}") from exc

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise RuntimeError(f"PostgresStore({self.where}) is closed")
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            _inherited.append(conn)  # closing it would end the parent's session
            conn = self._conn = None
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=max(1, round(self.connect_timeout)),
                    application_name="eventtracking",
                )
            except psycopg.OperationalError as exc:
                raise StoreError(
                    f"{self.where}: cannot connect: {_first_line(exc)}; "
                    "is the server running and the URL right?"
                ) from exc
            set_json_loads(loads, conn)
            self._conn, self._pid = conn, os.getpid()
        return conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # it is already broken; nothing to save
                self._conn.close()
            self._conn = None

    # -- writing -------------------------------------------------------------

    def write(self, events: Sequence[Mapping[str, Any]], types: Iterable[TypeVersion] = ()) -> int:
        """Store `events` (and the documentation versions they refer to) in one transaction.

        Events and versions whose id is already stored are skipped. Returns
        how many events were new. RetryableError when the connection
        failed or was lost: the batch may or may not be committed, and writing
        it again is safe. TerminalError when PostgreSQL rejected the batch.
        """
        type_rows = [self._type_row(version) for version in types]
        if not events and not type_rows:
            return 0
        with self._lock:
            try:
                conn = self._connection()
                try:
                    return self._copy(conn, self.names.events, events, type_rows=type_rows)
                except UniqueViolation:
                    diagnostics.increment("postgres.redelivered_batches")
                except psycopg.DataError:
                    # A value the fast path does not check (a \u0000 escape):
                    # write the batch again with every value checked and repaired.
                    diagnostics.increment("postgres.careful_batches")
                return self._write_staged(conn, events, type_rows)
            except (psycopg.OperationalError, psycopg.InterfaceError, StoreError) as exc:
                self._drop_connection()
                raise RetryableError(
                    f"{self.where}: connection failed while writing {len(events)} events "
                    f"({_first_line(exc)}); writing them again is safe"
                ) from exc
            except psycopg.Error as exc:
                raise TerminalError(
                    f"{self.where}: PostgreSQL rejected a batch of {len(events)} events: "
                    f"{_first_line(exc)}"
                ) from exc

    def _type_row(self, version: TypeVersion) -> tuple[Any, ...]:
        type_id, kind, name, registered, body = type_row(version)
        return type_id, kind, name, registered, body.decode()

    def _copy(
        self,
        conn: psycopg.Connection[Any],
        table: str,
        events: Sequence[Mapping[str, Any]],
        careful: bool = False,
        type_rows: Sequence[tuple[Any, ...]] = (),
    ) -> int:
        # Rows are encoded while COPY streams, so this process encodes the
        # next rows while the server parses the last ones.
        with conn.transaction(), conn.cursor() as cur:
            if type_rows:
                cur.executemany(
                    f"INSERT INTO {self.names.types} (id, kind, name, registered_at, body) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    type_rows,
                )
            with cur.copy(f"COPY {table} {COLUMNS} FROM STDIN") as copy:
                write = copy.write_row
                for row in copy_rows(events, careful):
                    write(row)
            return max(cur.rowcount, 0)

    def _write_staged(
        self,
        conn: psycopg.Connection[Any],
        events: Sequence[Mapping[str, Any]],
        type_rows: Sequence[tuple[Any, ...]],
    ) -> int:
        """Write through a temporary table, checking every value and skipping ids already
        stored (the rare path: a redelivery, or a value the fast path let through)."""
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS eventtracking_stage (id text, name text, "
                "ts timestamptz, data jsonb, context jsonb, extra jsonb) ON COMMIT DELETE ROWS"
            )
            self._copy(conn, "eventtracking_stage", events, True, type_rows)
            cur.execute(
                f"INSERT INTO {self.names.events} {COLUMNS} "
                f"SELECT * FROM eventtracking_stage ON CONFLICT (id) DO NOTHING"
            )
            return max(cur.rowcount, 0)

    # -- reading -------------------------------------------------------------

    def query(self, query: Query) -> list[dict[str, Any]]:
        """Events matching `query`, oldest first unless ``newest_first``."""
        where, params = where_clause(query)
        order = "DESC" if query.newest_first else "ASC"
        sql = f"{self._select}{where} ORDER BY ts {order}, seq {order}"
        if query.limit is not None:
            sql += " LIMIT %s"
            params.append(query.limit)
        return [event_from_row(row) for row in self._read(sql, params)]

    def count(self, query: Query) -> int:
        """How many events match `query` (its limit is ignored)."""
        where, params = where_clause(query)
        return int(self._read(f"SELECT count(*) FROM {self.names.events}{where}", params)[0][0])

    def tail(self, n: int = 10) -> list[dict[str, Any]]:
        """The last `n` events stored, oldest first."""
        rows = self._read(f"{self._select} ORDER BY seq DESC LIMIT %s", [n])
        return [event_from_row(row) for row in reversed(rows)]

    def follow(self, poll_interval: float = 0.5, n: int = 10) -> Iterator[dict[str, Any]]:
        """Yield the last `n` events, then every event committed afterwards, forever.

        The starting point is fixed when `follow` is called. An event whose
        transaction commits after a later-numbered one's is still yielded,
        late (see `postgres_follow`).
        """
        return follow(self._read, self._select, self.names.events, n, poll_interval)

    def counts_by_name(self, query: Query | None = None) -> list[tuple[str, int]]:
        """(name, count) for every event name, most frequent first."""
        where, params = where_clause(query or Query(limit=None))
        sql = f"SELECT name, count(*) FROM {self.names.events}{where} GROUP BY 1 ORDER BY 2 DESC, 1"
        return [(str(name), int(count)) for name, count in self._read(sql, params)]

    def counts_by_hour(self, query: Query | None = None) -> list[tuple[datetime, int]]:
        """(start of hour, UTC, count) for every hour that has events, oldest first."""
        where, params = where_clause(query or Query(limit=None))
        sql = (
            f"SELECT date_trunc('hour', ts, 'UTC'), count(*) FROM {self.names.events}{where} "
            "GROUP BY 1 ORDER BY 1"
        )
        return [(hour.astimezone(UTC), int(count)) for hour, count in self._read(sql, params)]

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The times of the oldest and newest stored events, or None when empty."""
        row = self._read(f"SELECT min(ts), max(ts) FROM {self.names.events}", [])[0]
        if row[0] is None:
            return None
        return row[0].astimezone(UTC), row[1].astimezone(UTC)

    # -- documentation versions and summaries for the catalogue ------------------

    def metadata(self, type_id: str) -> dict[str, Any] | None:
        """The stored documentation version with this id (`TypeVersion.to_dict()` form)."""
        if self.schema_version < 2:  # no types table before schema version 2
            return None
        rows = self._read(f"SELECT body FROM {self.names.types} WHERE id = %s", [type_id])
        return dict(rows[0][0]) if rows else None

    def types(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every stored documentation version, by name then registration time."""
        if self.schema_version < 2:
            return []
        sql, params = f"SELECT body FROM {self.names.types}", []
        if kind is not None:
            sql, params = sql + " WHERE kind = %s", [kind]
        rows = self._read(sql + " ORDER BY name, registered_at NULLS FIRST", params)
        return [dict(body) for (body,) in rows]

    def metadata_for(self, event: dict[str, Any]) -> dict[str, Any]:
        """The documentation an event refers to: ``{"type": ..., "contexts": {name: ...}}``."""
        return describe_event(event, self.metadata)

    def summaries(self) -> list[tuple[str, int, datetime, datetime]]:
        """(name, count, first seen, last seen) for every stored event name."""
        sql = f"SELECT name, count(*), min(ts), max(ts) FROM {self.names.events} GROUP BY name"
        return [
            (str(name), int(count), first.astimezone(UTC), last.astimezone(UTC))
            for name, count, first, last in self._read(sql, [])
        ]

    def field_counts(self, section: str) -> dict[str, dict[str, int]]:
        """For each event name, how many stored events have each top-level key of `section`.

        `section` is ``"data"`` or ``"context"``.
        """
        if section not in ("data", "context"):
            raise ValueError(f"section must be 'data' or 'context', not {section!r}")
        rows = self._read(
            f"SELECT name, key, count(*) FROM {self.names.events}, jsonb_object_keys("
            f"CASE jsonb_typeof({section}) WHEN 'object' THEN {section} ELSE '{{}}' END) AS key "
            "GROUP BY name, key",
            [],
        )
        out: dict[str, dict[str, int]] = {}
        for name, key, count in rows:
            out.setdefault(str(name), {})[str(key)] = int(count)
        return out

    def latest(self, name: str) -> dict[str, Any] | None:
        """The most recent stored event named `name`, or None."""
        sql = f"{self._select} WHERE name = %s ORDER BY ts DESC, seq DESC LIMIT 1"
        rows = self._read(sql, [name])
        return event_from_row(rows[0]) if rows else None

    def _read(self, sql: str, params: list[Any]) -> list[Any]:
        """Run a query; after a lost connection it is tried once more on a new one."""
        for attempt in (1, 2):
            with self._lock:
                try:
                    return self._connection().execute(sql, params).fetchall()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._drop_connection()
                    if attempt == 2:
                        raise StoreError(f"{self.where}: read failed: {_first_line(exc)}") from exc
                except psycopg.Error as exc:
                    raise StoreError(f"{self.where}: read failed: {_first_line(exc)}") from exc
        raise AssertionError("unreachable")

    @property
    def backend_pid(self) -> int | None:
        """The server process serving this store's connection, or None when not connected.

        Takes no lock, so it answers while a write is in progress.
        """
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            self._closed = True
            if self._pid == os.getpid():
                self._drop_connection()
            self._conn = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
