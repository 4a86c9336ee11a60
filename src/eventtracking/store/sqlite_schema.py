"""The SQLite store's tables and statements (schema version 3; see store/sqlite.py)."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 3

# The event id as versions 1 and 2 stored it, for readers of the table: a virtual
# column, computed when read, never stored (sqlite_rows: the layout).
_ID_SQL: Final = (
    "CASE WHEN json_type(body, '$.id') = 'text' AND json_extract(body, '$.id') <> '' "
    "THEN json_extract(body, '$.id') ELSE 'h-' || lower(hex(key)) END"
)
EVENTS: Final = f"""
CREATE TABLE events (
    seq   INTEGER PRIMARY KEY,
    name  TEXT NOT NULL,
    ts    INTEGER NOT NULL,
    key   BLOB NOT NULL,
    form  INTEGER NOT NULL,
    body  BLOB NOT NULL,
    id    TEXT GENERATED ALWAYS AS ({_ID_SQL}) VIRTUAL
);
CREATE UNIQUE INDEX events_name_ts_id ON events (name, ts, key);
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
    "SELECT 'events', 'events_name_ts_id', '1000000 10000 1 1' "
    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE idx = 'events_name_ts_id')"
)


# Rows per INSERT statement, largest first; each size's statement, built once.
CHUNK_SIZES: Final = (256, 64, 16, 4, 1)
INSERT_ROWS: Final = {
    size: "INSERT OR IGNORE INTO events (id, name, ts, body) VALUES "
    + ",".join(["(?, ?, ?, ?)"] * size)
    for size in CHUNK_SIZES
}  # versions 1 and 2
INSERT_COMPACT: Final = {
    size: "INSERT OR IGNORE INTO events (key, name, ts, form, body) VALUES "
    + ",".join(["(?, ?, ?, ?, ?)"] * size)
    for size in CHUNK_SIZES
}
