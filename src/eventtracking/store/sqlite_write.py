"""Batched, idempotent inserts into the SQLite store, for each of its layouts.

Called by `SQLiteStore` inside its write transaction, with its lock held.
Several rows go in one INSERT statement: SQLite does the same work, but the
per-row round trips of executemany cost about a third of a batch. Statements
come in a few fixed sizes, built once, so all of them stay prepared.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..serialization import dumps, loads
from .rows import content_id, event_time, own_id

# Rows per INSERT statement, largest first.
CHUNK_SIZES: Final = (256, 64, 16, 4, 1)

_TEXT_ROWS: Final = {
    size: "INSERT OR IGNORE INTO events (id, name, ts, body) VALUES "
    + ",".join(["(?, ?, ?, ?)"] * size)
    for size in CHUNK_SIZES
}
_NAMED_ROWS: Final = {
    size: "INSERT OR IGNORE INTO et_events (name_id, ts, slot, body) VALUES "
    + ",".join(["(?, ?, 0, ?)"] * size)
    for size in CHUNK_SIZES
}
_AT: Final = "SELECT body FROM et_events WHERE name_id = ? AND ts = ? AND slot = ?"
_AT_SLOT: Final = "INSERT INTO et_events (name_id, ts, slot, body) VALUES (?, ?, ?, ?)"

Row = tuple[str | None, str, int, bytes]


def chunk_sizes(db: sqlite3.Connection, params_per_row: int) -> tuple[int, ...]:
    """The statement sizes this connection's parameter limit allows."""
    limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return tuple(size for size in CHUNK_SIZES if size * params_per_row <= limit)


def insert_text_rows(db: sqlite3.Connection, rows: Sequence[Row], sizes: tuple[int, ...]) -> int:
    """Insert (id, name, ts, body) rows into a version 1 or 2 store; how many were new.

    A row without an id gets `content_id` of its body.
    """
    if any(row[0] is None for row in rows):
        rows = [(row[0] or content_id(row[3]), *row[1:]) for row in rows]
    flat = list(itertools.chain.from_iterable(rows))
    return _chunked(db, flat, 4, _TEXT_ROWS, sizes, None)


class NameIds:
    """The integers a version 3 store gives event names, cached for one connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.ids: dict[str, int] = dict(db.execute("SELECT name, id FROM et_names"))
        self._names: dict[int, str] = {}
        self._added: list[str] = []

    def id_for(self, name: str) -> int:
        """The integer for `name`, added to ``et_names`` (in the open transaction) if new."""
        self._db.execute("INSERT OR IGNORE INTO et_names (name) VALUES (?)", (name,))
        (number,) = self._db.execute("SELECT id FROM et_names WHERE name = ?", (name,)).fetchone()
        self.ids[name] = number
        self._added.append(name)
        return int(number)

    def committed(self) -> None:
        """The transaction that added names committed: keep them."""
        self._added.clear()

    def rolled_back(self) -> None:
        """The transaction rolled back: forget the names it added."""
        for name in self._added:
            self.ids.pop(name, None)
        self._added.clear()

    def name_of(self, number: int) -> str:
        """The name for an integer read from the store (re-read when another writer added it)."""
        name = self._names.get(number)
        if name is None:
            self._names = {i: n for n, i in self._db.execute("SELECT name, id FROM et_names")}
            name = self._names.get(number, f"<unknown name {number}>")
        return name


def insert_named_events(
    db: sqlite3.Connection, names: NameIds, events: Sequence[dict[str, Any]], sizes: tuple[int, ...]
) -> int:
    """Insert events into a version 3 store; how many were new."""
    ids = names.ids
    flat: list[Any] = []
    add = flat.extend
    for event in events:
        name = event.get("name")
        if type(name) is not str:
            name = str(name)
        number = ids.get(name)
        if number is None:
            number = names.id_for(name)
        add((number, event_time(event), dumps(event)))
    return _chunked(db, flat, 3, _NAMED_ROWS, sizes, lambda i: own_id(events[i]))


def insert_named_rows(
    db: sqlite3.Connection, names: NameIds, rows: Sequence[Row], sizes: tuple[int, ...]
) -> int:
    """Insert (id or None, name, ts, body) rows into a version 3 store; how many were new."""
    ids = names.ids
    flat: list[Any] = []
    for _, name, ts, body in rows:
        number = ids.get(name)
        if number is None:
            number = names.id_for(name)
        flat.extend((number, ts, body))
    return _chunked(db, flat, 3, _NAMED_ROWS, sizes, lambda i: _given_id(rows[i]))


def _given_id(row: Row) -> str | None:
    # `row_for` gives an event without an id its content id: that one is no id.
    event_id, _, _, body = row
    if event_id is not None and event_id.startswith("h-") and event_id == content_id(body):
        return None
    return event_id


def _chunked(
    db: sqlite3.Connection,
    flat: list[Any],
    width: int,
    statements: dict[int, str],
    sizes: tuple[int, ...],
    id_of: Callable[[int], str | None] | None,
) -> int:
    # `flat` holds `width` parameters per row. With `id_of` (version 3), a
    # statement that skipped rows has its rows settled one by one.
    added = 0
    start, left = 0, len(flat) // width
    for size in sizes:
        while left >= size:
            params = flat[start * width : (start + size) * width]
            new = db.execute(statements[size], params).rowcount
            if new < size and id_of is not None:
                new += sum(
                    _settle(db, params[k * 3 : k * 3 + 3], id_of(start + k)) for k in range(size)
                )
            added += new
            start, left = start + size, left - size
    return added


def _settle(db: sqlite3.Connection, row: list[Any], event_id: str | None) -> int:
    """Store one row whose (name, time, slot 0) may be taken; 1 if it was stored now.

    A stored row with the same name and time is the same event when it has
    the same bytes or, for an event with an id, the same id. A different event
    that happened in the same microsecond goes to the first free slot of a
    sequence fixed by its id (else its bytes): slot 0, then a slot derived
    from a digest, then the ones after it. Slots are never freed, so a copy
    that arrives later walks the same sequence and meets the stored one first,
    and each step is one index lookup however many events share that time.
    """
    number, ts, body = row
    slot = 0
    while True:
        found = db.execute(_AT, (number, ts, slot)).fetchone()
        if found is None:
            db.execute(_AT_SLOT, (number, ts, slot, body))
            return 1
        stored = found[0]
        if stored == body or (event_id is not None and _id_in(stored) == event_id):
            return 0
        slot = slot + 1 if slot else _first_probe(event_id, body)


def _first_probe(event_id: str | None, body: bytes) -> int:
    """The slot after 0 in an event's sequence: 1 to 2**62, from its id or else its bytes."""
    key = event_id.encode() if event_id is not None else body
    return (int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()) >> 2) + 1


def _id_in(body: bytes) -> Any:
    try:
        event = loads(body)
    except ValueError:
        return None
    return event.get("id") if isinstance(event, dict) else None
