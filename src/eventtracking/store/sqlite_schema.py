"""The SQLite store's layouts: what a new store is made of, and how an old one is read.

Version 3 (new stores). Each event is one row of ``et_events``: the name as a
small integer (``et_names`` maps it to its text), the time in integer
microseconds (UTC), a `slot` and the whole event as JSON, byte for byte what
JSON lines would hold. One unique index on (name, time, slot) serves the
queries and makes writes idempotent: a re-delivered copy of an event lands on
the same (name, time, slot 0) and is skipped. Two different events with the
same name and microsecond are told apart when that happens (a slower path,
`store.sqlite_write`): by their ids when they have them, else by their
bytes; the later one takes another slot, found in a few index lookups. Slot
0 takes no bytes in SQLite's record format, so the key costs only the name
number and the time.

Readers who open the file with SQL get the view ``events(seq, id, name, ts,
body)``, the columns of versions 1 and 2; ``id`` is the event's own id, or
NULL for an event that has none (version 2 stored a digest of its JSON).

Versions 1 and 2 (stores made by earlier releases) keep their layout and are
written and read the same way: a table ``events`` with a text id, the name, the
time and the body; version 2 has one unique index on (name, ts, id), version
1 a unique id and a (name, ts) index.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = 3

EVENTS_V3: Final = """
CREATE TABLE et_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE et_events (
    seq     INTEGER PRIMARY KEY,
    name_id INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    slot    INTEGER NOT NULL,
    body    BLOB NOT NULL
);
CREATE UNIQUE INDEX et_events_name_ts_slot ON et_events (name_id, ts, slot);
CREATE VIEW events (seq, id, name, ts, body) AS
    SELECT e.seq, json_extract(e.body, '$.id'), n.name, e.ts, e.body
    FROM et_events AS e JOIN et_names AS n ON n.id = e.name_id;
"""

COMMON: Final = """
CREATE TABLE IF NOT EXISTS et_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS et_types (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    registered_at TEXT,
    body          BLOB NOT NULL
);
"""

TABLE_EXISTS: Final = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"


@dataclass(frozen=True)
class Layout:
    """Where one store keeps its events, as the SQL that reads them needs it.

    `table` holds one row per event; `name` is its name column (text, or the
    integer of `et_names` when `named` is true); `index` is the index that
    serves (name, time) queries.
    """

    table: str
    name: str
    index: str
    named: bool

    def names_where(self, conditions: str) -> str:
        """A condition on the name column, given `conditions` on a text ``name``."""
        if not self.named:
            return f"({conditions})"
        return f"name_id IN (SELECT id FROM et_names WHERE {conditions})"

    def name_is(self) -> str:
        """The condition for one exact name (one parameter): an equality on the name
        column, so that the index also gives the time order."""
        if not self.named:
            return "name = ?"
        return "name_id = (SELECT id FROM et_names WHERE name = ?)"


NAMED: Final = Layout("et_events", "name_id", "et_events_name_ts_slot", named=True)
TEXT: Final = Layout("events", "name", "events_name_ts_id", named=False)


def layout_of(db: sqlite3.Connection) -> Layout:
    """The layout of an existing store (version 3 if it has ``et_events``)."""
    if db.execute(TABLE_EXISTS, ("et_events",)).fetchone() is not None:
        return NAMED
    return TEXT


# There is no separate index on ts: each index costs every insert, and a
# time-only query can skip-scan the (name, ts, ...) index because there are
# few names. SQLite plans a skip-scan only when its statistics say names
# repeat, so a new store gets this hint (as if ANALYZE had seen ~100 names); a
# real ANALYZE replaces it.
def planner_hint(layout: Layout) -> str:
    """The sqlite_stat1 row that lets time-only queries skip-scan `layout`'s index."""
    return (
        "INSERT INTO sqlite_stat1 (tbl, idx, stat) "
        f"SELECT '{layout.table}', '{layout.index}', '1000000 10000 1 1' "
        f"WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE idx = '{layout.index}')"
    )


def create(db: sqlite3.Connection, new: bool) -> Layout:
    """Set up a store on `db` (a new file when `new`); the layout it has."""
    if new:
        # Larger pages make batched inserts cheaper; must precede WAL.
        db.execute("PRAGMA page_size=16384")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    has_events = db.execute(TABLE_EXISTS, ("events",)).fetchone() is not None
    if not has_events and db.execute(TABLE_EXISTS, ("et_events",)).fetchone() is None:
        db.executescript(EVENTS_V3)
    db.executescript(COMMON)
    layout = layout_of(db)
    # An existing store keeps the version it recorded; one that recorded none is 2 or 3.
    version = SCHEMA_VERSION if layout.named else 2
    db.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1
    db.execute(planner_hint(layout))
    db.execute("ANALYZE sqlite_schema")  # makes this connection read it
    db.execute(
        "INSERT OR IGNORE INTO et_meta (key, value) VALUES ('schema_version', ?)", (str(version),)
    )
    return layout
