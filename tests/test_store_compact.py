"""The compact SQLite layout (schema version 3): events read back member for member.

Name, time and a UUID id live in columns only; reading rebuilds the JSON in
SQLite. Every shape of event must come back exactly as `dumps` encoded it,
writes stay idempotent across the compact and the `row_for` paths, and
stores of the older layouts keep working.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.event import new_event_id
from eventtracking.exceptions import StoreError
from eventtracking.serialization import dumps, loads
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore, row_for
from eventtracking.store.sqlite_rows import ID, NAME, TIME, compact_row, event_json, key_for
from eventtracking.tracker import Tracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
stamps = st.one_of(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),  # naive
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(timezone(timedelta(hours=5, minutes=30))),
    ),
    st.just("2024-01-02T03:04:05Z"),
)
ids = st.one_of(
    st.none(),
    st.builds(new_event_id),
    st.just("8D6B5C8C-1B6A-4C3E-9C39-2D0F2C6E1A77"),  # upper case: kept in the body
    st.text(max_size=12),
    st.integers(0, 10),
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {}
    event_id = draw(ids)
    if event_id is not None:
        event["id"] = event_id
    event["name"] = draw(st.one_of(st.text(min_size=1, max_size=12), st.just("a.b")))
    event["timestamp"] = draw(stamps)
    event["data"] = draw(st.dictionaries(st.text(max_size=4), json_values, max_size=3))
    event["context"] = draw(st.dictionaries(st.text(max_size=4), json_values, max_size=3))
    if draw(st.booleans()):  # members in another order than the tracker's
        event = dict(reversed(list(event.items())))
    return event


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(events(), min_size=1, max_size=6))
def test_every_event_reads_back_as_it_was_encoded(
    tmp_path_factory: pytest.TempPathFactory, batch: list[dict[str, Any]]
) -> None:
    store = SQLiteStore(tmp_path_factory.mktemp("s") / "e.db")
    try:
        # Distinct ids keep distinct events apart: the same id is the same event.
        for i, event in enumerate(batch):
            if isinstance(event.get("id"), int):
                event["id"] += 100 * i
            elif isinstance(event.get("id"), str) and event["id"].isupper():
                event["id"] = event["id"][:-1] + str(i)
            elif isinstance(event.get("id"), str) and len(event["id"]) != 36:
                event["id"] += f"#{i}"
        store.write_events(batch)
        got = store.tail(len(batch))
        expected = [loads(dumps(event)) for event in batch]
        assert len(got) == len(set(dumps(e) for e in batch))
        for event in expected:
            assert event in got
        # The rebuilt JSON is byte for byte the encoding (member order included).
        db = sqlite3.connect(store.path)
        rows = db.execute("SELECT form, name, ts, body FROM events").fetchall()
        texts = {event_json(*row) for row in rows}
        db.close()
        assert texts == {dumps(event) for event in batch}
    finally:
        store.close()


def test_a_tracker_event_stores_neither_name_nor_time_in_its_body(tmp_path: Path) -> None:
    for envelope in ("openedx", "full"):
        event = {"name": "a.b", "timestamp": T0, "data": {"n": 1}, "context": {"u": 2}}
        if envelope == "full":
            event = {"id": new_event_id(), **event}
        key, name, ts, form, body = compact_row(event)
        assert ts == 1_767_225_600_000_000
        assert (name, form & (NAME | TIME)) == ("a.b", NAME | TIME)
        kept = b'"data":{"n":1},"context":{"u":2}}'
        assert (
            body
            == (b'{"id":"' + event["id"].encode() + b'",' if envelope == "full" else b"{") + kept
        )
        assert -(2**63) <= key < 2**63
        assert bool(form & ID) == (envelope == "full")
        assert event_json(form, name, ts, body) == dumps(event)


def test_writes_are_idempotent_across_compact_and_row_for_rows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.db")
    with_id = {"id": new_event_id(), "name": "a", "timestamp": T0, "data": {}, "context": {}}
    without = {"name": "b", "timestamp": T0, "data": {"x": 1}, "context": {}}
    other_id = {"id": "order-17", "name": "c", "timestamp": T0, "data": {}, "context": {}}
    events = [with_id, without, other_id]
    assert store.write_events(events) == 3
    assert store.write_events(events) == 0
    assert store.write([row_for(event) for event in events]) == 0  # the consumer's path
    assert store.count(Query(limit=None)) == 3
    # The `id` column reads an event's own id as versions 1 and 2 stored it.
    db = sqlite3.connect(store.path)
    stored = dict(db.execute("SELECT name, id FROM events").fetchall())
    db.close()
    store.close()
    assert (stored["a"], stored["c"]) == (with_id["id"], "order-17")
    assert stored["b"].startswith("h-")


def test_keys_of_ids() -> None:
    event_id = new_event_id()
    raw = bytes.fromhex(event_id.replace("-", ""))
    halves = int.from_bytes(raw[:8], signed=True), int.from_bytes(raw[8:], signed=True)
    assert key_for(event_id) == halves[0] ^ halves[1]
    assert key_for("h-" + "01" * 8 + "cd" * 8) == 0x0101010101010101
    assert -(2**63) <= key_for("anything") < 2**63
    assert key_for("anything") != key_for("anything else")


V2_SCHEMA = """
CREATE TABLE et_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO et_meta VALUES ('schema_version', '2');
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL,
    name TEXT NOT NULL,
    ts   INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX events_name_ts_id ON events (name, ts, id);
"""


def test_a_version_2_store_keeps_its_layout_for_reading_and_writing(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path)
    db.executescript(V2_SCHEMA)
    old = {"id": "x1", "name": "a", "timestamp": T0, "data": {"n": 1}, "context": {}}
    db.execute("INSERT INTO events (id, name, ts, body) VALUES (?, ?, ?, ?)", row_for(old))
    db.commit()
    db.close()
    tracker = Tracker({"db": SQLiteBackend(path)})
    tracker.emit("b", {"n": 2})
    tracker.close()
    store = SQLiteStore(path, create=False)
    assert not store.compact
    assert [e["data"]["n"] for e in store.query(Query())] == [1, 2]
    store.close()
    db = sqlite3.connect(path)
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    version = db.execute("SELECT value FROM et_meta WHERE key='schema_version'").fetchone()
    db.close()
    assert "form" not in columns
    assert version == ("2",)


def test_a_store_from_a_newer_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE et_meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"newer eventtracking.*upgrade"):
        SQLiteStore(path, create=False)
