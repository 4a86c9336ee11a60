"""The SQLite store's tables and statements (schema version 3; see store/sqlite.py)."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 3

# Version 3 writes to et_events; `events` is a view of it that adds the event
# id as versions 1 and 2 stored it, for readers of the file (SQLite flattens the
# view: reads through it use the index, and the id is computed only when read).
# A generated column would be computed by every INSERT: 1 us an event.
_ID_SQL: Final = (
    "CASE WHEN json_type(body, '$.id') = 'text' AND json_extract(body, '$.id') <> '' "
    "THEN json_extract(body, '$.id') ELSE printf('h-%016x', key) END"
)
EVENTS: Final = f"""
CREATE TABLE et_events (
    seq  INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    ts   INTEGER NOT NULL,
    key  INTEGER NOT NULL,
    form INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX events_name_ts_id ON et_events (name, ts, key);
CREATE VIEW events AS SELECT seq, name, ts, key, form, body, {_ID_SQL} AS id FROM et_events;
"""

SCHEMA: Final = """
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
PLANNER_HINT: Final = (
    "INSERT INTO sqlite_stat1 (tbl, idx, stat) "
    "SELECT ?, 'events_name_ts_id', '1000000 10000 1 1' "
    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE idx = 'events_name_ts_id')"
)  # the parameter: the table (et_events, or events before version 3)


# Rows per INSERT statement, largest first; each size's statement, built once.
CHUNK_SIZES: Final = (256, 64, 16, 4, 1)
INSERT_ROWS: Final = {
    size: "INSERT OR IGNORE INTO events (id, name, ts, body) VALUES "
    + ",".join(["(?, ?, ?, ?)"] * size)
    for size in CHUNK_SIZES
}  # versions 1 and 2
INSERT_COMPACT: Final = {
    size: "INSERT OR IGNORE INTO et_events (key, name, ts, form, body) VALUES "
    + ",".join(["(?, ?, ?, ?, ?)"] * size)
    for size in CHUNK_SIZES
}
