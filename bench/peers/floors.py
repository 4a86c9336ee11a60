"""Hand-written floors: what a plain Python loop costs for the same work as ours.

    python bench/peers/floors.py limit|serialize-once|sqlite-limit OUT [N]

- ``limit``: build each event dict (name, timestamp, context, data), encode it
  with orjson, write the line to one file through a 1 MB buffer.
- ``serialize-once``: the same, but each line written to ten files (OUT.0 to
  OUT.9): one encoding, ten buffered writes.
- ``sqlite-limit``: the same events into a SQLite file in WAL mode
  (synchronous=NORMAL), as rows (name, time, JSON body) with an integer key,
  1,000 rows per ``executemany`` and per commit.

Needs orjson (our virtual environment has it). Prints ``NAME US us/event``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson
from workload import INNER, NAME, OUTER, URL, arguments, count_lines, measure, report

FILES = 10  # the serialize-once floor's sinks


def limit(out: Path, n: int) -> float:
    sink = open(out, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by measure
    context = {**OUTER, **INNER}

    def run() -> None:
        write, dumps, now = sink.write, orjson.dumps, datetime.now
        for i in range(n):
            event = {"name": NAME, "timestamp": now(UTC), "context": context}
            event["data"] = {"url": URL % i, "n": i}
            write(dumps(event, option=orjson.OPT_APPEND_NEWLINE))

    us = measure(run, sink.close, n)
    assert count_lines(out) == n
    return us


def serialize_once(out: Path, n: int) -> float:
    paths = [out.with_name(f"{out.name}.{k}") for k in range(FILES)]
    sinks = [open(path, "wb", buffering=1 << 20) for path in paths]  # noqa: SIM115
    context = {**OUTER, **INNER}

    def run() -> None:
        writes, dumps, now = [sink.write for sink in sinks], orjson.dumps, datetime.now
        for i in range(n):
            event = {"name": NAME, "timestamp": now(UTC), "context": context}
            event["data"] = {"url": URL % i, "n": i}
            line = dumps(event, option=orjson.OPT_APPEND_NEWLINE)
            for write in writes:
                write(line)

    def close() -> None:
        for sink in sinks:
            sink.close()

    us = measure(run, close, n)
    assert all(count_lines(path) == n for path in paths)
    return us


def sqlite_limit(out: Path, n: int) -> float:
    for stale in (out, out.with_name(out.name + "-wal"), out.with_name(out.name + "-shm")):
        stale.unlink(missing_ok=True)
    db = sqlite3.connect(out, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE events (k INTEGER PRIMARY KEY, name TEXT, ts TEXT, body BLOB)")
    context = {**OUTER, **INNER}
    insert = "INSERT INTO events (name, ts, body) VALUES (?, ?, ?)"

    def write(rows: list[tuple[str, str, bytes]]) -> None:
        db.execute("BEGIN")
        db.executemany(insert, rows)
        db.execute("COMMIT")

    def run() -> None:
        rows: list[tuple[str, str, bytes]] = []
        dumps, now = orjson.dumps, datetime.now
        for i in range(n):
            stamp = now(UTC)
            event = {"name": NAME, "timestamp": stamp, "context": context}
            event["data"] = {"url": URL % i, "n": i}
            rows.append((NAME, stamp.isoformat(), dumps(event)))
            if len(rows) == 1000:
                write(rows)
                rows = []
        if rows:
            write(rows)

    us = measure(run, db.close, n)
    check = sqlite3.connect(out)
    assert check.execute("SELECT COUNT(*) FROM events").fetchone()[0] == n
    check.close()
    return us


FLOORS = {"limit": limit, "serialize-once": serialize_once, "sqlite-limit": sqlite_limit}

if __name__ == "__main__":
    floor, out, n = arguments(f"floors.py {'|'.join(FLOORS)} OUT [N]")
    report(floor, FLOORS[floor](out, n))
