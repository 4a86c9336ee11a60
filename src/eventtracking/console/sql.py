"""The few aggregations the console needs that the `EventStore` API does not offer.

Each store keeps its events differently (SQLite: a JSON body and integer
microseconds; PostgreSQL: jsonb columns and a timestamptz), so a `Dialect`
writes the same three questions for each. Filters go through the store's own
WHERE builder, so they mean exactly what they mean in ``eventtracking query``,
and every query is bounded by time, so it reads the (name, ts) / ts indexes
instead of the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from ..store import EventStore, Query
from ..store.rows import from_micros


class Dialect(Protocol):
    """How one kind of store answers the console's aggregations."""

    def buckets(self, query: Query, seconds: int) -> list[tuple[str, datetime, int]]:
        """(name, bucket start, count) for the events matching `query`."""
        ...

    def top_values(self, query: Query, section: str, key: str, limit: int) -> list[tuple[str, int]]:
        """The most frequent values of ``section.key`` among the events matching `query`."""
        ...


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class SQLiteDialect:
    """Aggregations on a `SQLiteStore` through its own reader and WHERE builder."""

    def __init__(self, store: Any) -> None:
        self._read: Callable[[str, list[Any]], list[Any]] = store._read
        self._where: Callable[[Query], tuple[str, list[Any]]] = store._where
        self._label: Callable[[Any], str] = store.label
        self._table: str = store.layout.table
        self._name: str = store.layout.name

    def buckets(self, query: Query, seconds: int) -> list[tuple[str, datetime, int]]:
        where, params = self._where(query)
        width = seconds * 1_000_000
        name = self._name
        rows = self._read(
            f"SELECT {name}, ts / ? AS b, COUNT(*) FROM {self._table}{where} GROUP BY {name}, b",
            [width, *params],
        )
        return [(self._label(v), from_micros(int(b) * width), int(n)) for v, b, n in rows]

    def top_values(self, query: Query, section: str, key: str, limit: int) -> list[tuple[str, int]]:
        where, params = self._where(query)
        path = f'$.{section}."{key}"'
        glue = " AND " if where else " WHERE "
        # As PostgreSQL's ->> gives them: text, true/false spelled out, JSON null left out.
        rows = self._read(
            "SELECT CASE json_type(body, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            "ELSE CAST(json_extract(body, ?) AS TEXT) END AS v, COUNT(*) "
            f"FROM {self._table}{where}{glue}json_type(body, ?) != 'null' "
            "GROUP BY v ORDER BY 2 DESC, 1 LIMIT ?",
            [path, path, *params, path, limit],
        )
        return [(_text(value), int(count)) for value, count in rows]


class PostgresDialect:
    """Aggregations on a `PostgresStore` through its own reader and WHERE builder."""

    def __init__(self, store: Any) -> None:
        from ..store.postgres_query import where_clause

        self._read: Callable[[str, list[Any]], list[Any]] = store._read
        self._where = where_clause
        self._table: str = store.names.events

    def buckets(self, query: Query, seconds: int) -> list[tuple[str, datetime, int]]:
        where, params = self._where(query)
        rows = self._read(
            f"SELECT name, floor(extract(epoch FROM ts) / %s)::bigint AS b, count(*) "
            f"FROM {self._table}{where} GROUP BY 1, 2",
            [seconds, *params],
        )
        stamp = datetime.fromtimestamp
        return [(str(name), stamp(int(b) * seconds, UTC), int(n)) for name, b, n in rows]

    def top_values(self, query: Query, section: str, key: str, limit: int) -> list[tuple[str, int]]:
        where, params = self._where(query)
        glue = " AND " if where else " WHERE "
        rows = self._read(
            f"SELECT {section} ->> %s AS v, count(*) FROM {self._table}{where}{glue}"
            f"{section} ->> %s IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s",
            [key, *params, key, limit],
        )
        return [(_text(value), int(count)) for value, count in rows]


def dialect_for(store: EventStore) -> Dialect:
    """The dialect of `store`; TypeError for a store the console does not know."""
    from ..store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteDialect(store)
    if type(store).__name__ == "PostgresStore":  # importing it needs the postgres extra
        return PostgresDialect(store)
    raise TypeError(f"the console reads SQLite and PostgreSQL stores, not {type(store).__name__}")
