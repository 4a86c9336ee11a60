"""The embedded SQLite store: a plain writer, its in-caller delivery, and the read API."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.exceptions import StoreError
from eventtracking.serialization import dumps, loads
from eventtracking.store import Query, open_store
from eventtracking.store.sqlite import SQLiteStore, from_micros, row_for, to_micros
from eventtracking.tracker import Tracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(i: int, name: str = "a.b", hours: float = 0, **context: Any) -> dict[str, Any]:
    return {
        "id": f"id-{i:06d}",
        "name": name,
        "timestamp": T0 + timedelta(hours=hours),
        "data": {"i": i},
        "context": context,
    }


def test_store_file_uses_wal_and_indexes(tmp_path: Path) -> None:
    SQLiteBackend(tmp_path / "e.db").close()
    db = sqlite3.connect(tmp_path / "e.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM et_meta WHERE key='schema_version'").fetchone() == ("3",)
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    # One index: (name, ts, slot) serves the queries and keeps writes idempotent.
    assert {name for name in indexes if not name.startswith("sqlite_autoindex_et")} == {
        "et_events_name_ts_slot"
    }
    # A time-only query must use that index (skip-scan), never scan the table.
    plan = db.execute("EXPLAIN QUERY PLAN SELECT body FROM et_events WHERE ts >= 1 AND ts < 9")
    assert "et_events_name_ts_slot" in str(plan.fetchall())
    plan = db.execute("EXPLAIN QUERY PLAN SELECT body FROM et_events WHERE name_id = 1 AND ts >= 1")
    assert "et_events_name_ts_slot" in str(plan.fetchall())


def test_sql_readers_see_the_columns_of_earlier_versions(tmp_path: Path) -> None:
    with_id, without_id = ev(1, "x.y"), ev(2, "x.z")
    del without_id["id"]
    store = SQLiteStore(tmp_path / "e.db")
    store.write_events([with_id, without_id])
    store.close()
    db = sqlite3.connect(tmp_path / "e.db")
    rows = db.execute("SELECT seq, id, name, ts, json(body) FROM events ORDER BY seq").fetchall()
    assert [row[1:4] for row in rows] == [
        ("id-000001", "x.y", to_micros(T0)),
        (None, "x.z", to_micros(T0)),  # an event without an id has none here
    ]
    assert [json.loads(row[4])["data"] for row in rows] == [{"i": 1}, {"i": 2}]
    plan = db.execute("EXPLAIN QUERY PLAN SELECT body FROM events WHERE name = 'x.y'")
    assert "et_events_name_ts_slot" in str(plan.fetchall())


def test_distinct_events_with_the_same_name_and_time_are_all_kept(tmp_path: Path) -> None:
    # All six share (name, time): the first takes slot 0 and each other one a
    # slot of its own, whether they arrive in one batch or later, with ids or without.
    store = SQLiteStore(tmp_path / "e.db")
    plain = [{"name": "a.b", "timestamp": T0, "data": {"i": i}} for i in range(3)]
    assert store.write_events(plain[:2]) == 2
    assert store.write_events(plain) == 1
    assert store.write_events(list(reversed(plain))) == 0  # copies: nothing new
    with_ids = [ev(i) for i in range(10, 13)]
    assert store.write_events(with_ids) == 3
    changed = {**with_ids[0], "data": {"i": "re-encoded"}}  # same id, same name and time
    assert store.write_events([changed, with_ids[1]]) == 0
    assert store.write([row_for(e) for e in plain + with_ids]) == 0  # rows, with content ids
    assert sorted(str(e["data"]["i"]) for e in store.query(Query())) == [
        "0", "1", "10", "11", "12", "2",
    ]  # fmt: skip
    slots = sqlite3.connect(tmp_path / "e.db").execute("SELECT slot FROM et_events ORDER BY seq")
    assert [s > 0 for (s,) in slots] == [False, True, True, True, True, True]
    store.close()


def test_many_events_with_one_name_and_time_are_each_kept_once(tmp_path: Path) -> None:
    # Coarse timestamps (tests, imports) put thousands of events on one key.
    events = [{"name": "a.b", "timestamp": T0, "data": {"i": i}} for i in range(3000)]
    backend = SQLiteBackend(tmp_path / "e.db", batch_size=500)
    backend.send_batch(events)
    backend.send_batch(events[::-1])
    backend.close()
    store = SQLiteStore(tmp_path / "e.db")
    assert sorted(e["data"]["i"] for e in store.query(Query(limit=None))) == list(range(3000))
    store.close()


def test_a_failed_write_forgets_the_names_it_added(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.db")
    good, _, ts, body = row_for(ev(1, "new.name"))
    with pytest.raises(sqlite3.IntegrityError):  # a row without a body is refused
        store.write([(good, "new.name", ts, body), (None, "new.name", ts + 1, None)])  # type: ignore[list-item]
    store.write_events([ev(2, "new.name")])
    assert [e["data"]["i"] for e in store.query(Query(names=("new.name",)))] == [2]
    assert store.summaries()[0][:2] == ("new.name", 1)
    store.close()


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


def test_a_version_2_store_keeps_its_layout_and_content_ids(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path)
    db.executescript(V2_SCHEMA)
    db.close()
    no_id = ev(3)
    del no_id["id"]
    backend = SQLiteBackend(path)
    for _ in range(2):
        backend.send_batch([ev(1), ev(2), no_id])
    backend.close()
    store = SQLiteStore(path)
    store.write([row_for(no_id), (None, "a.b", to_micros(T0), row_for(no_id)[3])])
    assert [e["data"]["i"] for e in store.query(Query(names=("a.*",)))] == [1, 2, 3]
    assert store.counts_by_name() == [("a.b", 3)]
    store.close()
    db = sqlite3.connect(path)
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'et_events'").fetchall()
    ids = [i for (i,) in db.execute("SELECT id FROM events ORDER BY seq")]
    assert ids == ["id-000001", "id-000002", row_for(no_id)[0]]
    assert db.execute("SELECT value FROM et_meta WHERE key='schema_version'").fetchone() == ("2",)


V1_SCHEMA = """
CREATE TABLE et_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO et_meta VALUES ('schema_version', '1');
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    ts   INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX events_name_ts ON events (name, ts);
"""


def test_a_version_1_store_keeps_its_layout_and_stays_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()
    backend = SQLiteBackend(path)
    for _ in range(2):
        backend.send_batch([ev(1), ev(2)])
    backend.close()
    db = sqlite3.connect(path)
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "events_name_ts_id" not in indexes  # no third index added to an old store
    assert db.execute("SELECT value FROM et_meta WHERE key='schema_version'").fetchone() == ("1",)
    store = SQLiteStore(path, create=False)
    assert [e["data"]["i"] for e in store.query(Query())] == [1, 2]
    store.close()


def test_the_plain_writer_writes_each_call_at_once(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "e.db", batch_size=2)
    reader = SQLiteStore(tmp_path / "e.db")
    backend.send(ev(1))
    assert reader.count(Query()) == 1
    backend.send_batch([ev(2), ev(3), ev(4)])  # two transactions: 2 + 1
    assert reader.count(Query()) == 4
    assert backend.flush(0.0) is True
    backend.close()


def inline(path: Path, **options: Any) -> DeliveryBackend:
    """The store as configuration builds it: the delivery worker's in-caller mode."""
    return DeliveryBackend(SQLiteBackend(path), mode="inline", **options)


def test_in_caller_delivery_batches_until_full_or_flushed(tmp_path: Path) -> None:
    backend = inline(tmp_path / "e.db", batch_size=3, max_delay=60)
    reader = SQLiteStore(tmp_path / "e.db")
    backend.send(ev(1))
    backend.send(ev(2))
    assert reader.count(Query()) == 0
    backend.send(ev(3))  # written by this thread before send returns
    assert reader.count(Query()) == 3
    backend.send(ev(4))
    assert backend.flush(5.0) is True
    assert reader.count(Query()) == 4
    backend.close()


def test_a_partial_batch_is_written_after_max_delay(tmp_path: Path) -> None:
    backend = inline(tmp_path / "e.db", batch_size=1000, max_delay=0.05)
    reader = SQLiteStore(tmp_path / "e.db")
    backend.send(ev(1))
    deadline = time.monotonic() + 10
    while reader.count(Query()) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reader.count(Query()) == 1
    backend.close()


def test_writes_are_idempotent_on_event_id(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "e.db")
    backend.send_batch([ev(1), ev(2)])
    backend.send_batch([ev(1), ev(2), ev(3)])
    backend.send(ev(3))
    backend.close()
    assert SQLiteStore(tmp_path / "e.db").count(Query()) == 3


def test_events_without_ids_get_content_ids(tmp_path: Path) -> None:
    event = ev(1)
    del event["id"]
    event_id, name, ts, _ = row_for(event)
    assert event_id.startswith("h-") and name == "a.b" and ts == to_micros(T0)
    assert row_for(dict(event))[0] == event_id  # the same content, the same id


def test_round_trip_through_a_tracker(tmp_path: Path) -> None:
    with Tracker({"db": SQLiteBackend(tmp_path / "e.db")}) as t:
        t.enter_context("req", {"user_id": 7})
        t.emit("x.y", {"n": 1})
    (stored,) = open_store(str(tmp_path / "e.db")).query(Query())
    assert stored["name"] == "x.y" and stored["context"] == {"user_id": 7}
    assert datetime.fromisoformat(stored["timestamp"]).tzinfo is not None


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "q.db")
    events = [
        ev(i, "video.play" if i % 2 else "nav.request", hours=i, user_id=i % 3) for i in range(48)
    ]
    events.append(ev(100, "video.pause", hours=5, user_id="abc"))
    s.write([row_for(e) for e in events])
    return s


def test_query_by_exact_name_glob_and_time(store: SQLiteStore) -> None:
    assert store.count(Query(names=("nav.request",))) == 24
    assert store.count(Query(names=("video.*",))) == 25
    since, until = T0 + timedelta(hours=10), T0 + timedelta(hours=20)
    found = store.query(Query(names=("video.play",), since=since, until=until, limit=None))
    assert [e["data"]["i"] for e in found] == [11, 13, 15, 17, 19]


def test_query_by_context_field_matches_numbers_written_as_text(store: SQLiteStore) -> None:
    numeric = store.query(Query(context=(("user_id", "2"),), limit=None))
    assert numeric and all(e["context"]["user_id"] == 2 for e in numeric)
    assert [e["data"]["i"] for e in store.query(Query(context=(("user_id", "abc"),)))] == [100]
    assert store.count(Query(data=(("i", "7"),))) == 1


def test_limit_order_and_newest_first(store: SQLiteStore) -> None:
    oldest = store.query(Query(limit=2))
    newest = store.query(Query(limit=2, newest_first=True))
    assert [e["data"]["i"] for e in oldest] == [0, 1]
    assert [e["data"]["i"] for e in newest] == [47, 46]


def test_counts_by_name_and_hour_and_time_range(store: SQLiteStore) -> None:
    assert store.counts_by_name() == [("nav.request", 24), ("video.play", 24), ("video.pause", 1)]
    hours = store.counts_by_hour()
    assert hours[0] == (T0, 1) and (T0 + timedelta(hours=5), 2) in hours
    assert sum(count for _, count in hours) == 49
    assert store.time_range() == (T0, T0 + timedelta(hours=47))


def test_tail_and_follow_in_insertion_order(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "t.db")
    s.write([row_for(ev(i)) for i in range(5)])
    assert [e["data"]["i"] for e in s.tail(3)] == [2, 3, 4]
    follow = s.follow(poll_interval=0.01, n=2)
    assert [next(follow)["data"]["i"] for _ in range(2)] == [3, 4]
    s.write([row_for(ev(9))])
    assert next(follow)["data"]["i"] == 9


def test_opening_a_missing_or_foreign_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such event store"):
        open_store(str(tmp_path / "missing.db"))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a readable event store"):
        open_store(str(junk))
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="no events table"):
        open_store(str(other))


def test_query_rejects_naive_bounds_and_bad_limits() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Query(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="limit"):
        Query(limit=-1)


def test_micros_conversions() -> None:
    assert from_micros(to_micros(T0)) == T0
    assert to_micros("2026-01-01T00:00:00Z") == to_micros(T0)
    assert to_micros(datetime(2026, 1, 1)) == to_micros(T0)


def test_bad_options_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SQLiteBackend(tmp_path / "x.db", batch_size=0)
    with pytest.raises(ValueError, match="max_delay"):
        inline(tmp_path / "x.db", max_delay=-1)


def test_send_after_close_raises_and_close_is_idempotent(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "e.db")
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.send(ev(1))


def test_a_failed_write_raises_in_the_plain_writer(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "e.db")
    locker = sqlite3.connect(tmp_path / "e.db", timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    backend.store._db.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(sqlite3.OperationalError):
        backend.send(ev(1))
    locker.rollback()
    backend.send(ev(1))
    backend.close()
    assert SQLiteStore(tmp_path / "e.db").count(Query()) == 1


def test_a_batch_that_fails_in_the_caller_is_retried_by_the_worker(tmp_path: Path) -> None:
    backend = inline(tmp_path / "e.db", batch_size=2, max_delay=60, retry={"initial_backoff": 0})
    locker = sqlite3.connect(tmp_path / "e.db", timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    writer = backend.backend
    assert isinstance(writer, SQLiteBackend)
    writer.store._db.execute("PRAGMA busy_timeout = 50")
    for i in range(5):
        backend.send(ev(i))  # the first full batch fails in this thread: never raised
    assert backend.metrics_snapshot()["delivered"] == 0
    locker.rollback()
    assert backend.flush(10.0) is True
    backend.close()
    assert SQLiteStore(tmp_path / "e.db").count(Query()) == 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "e.db")
    backend.send(ev(1))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            backend.send(ev(3))  # the inherited writer works in the child
            backend.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    backend.send(ev(2))  # and the parent's connection is untouched
    backend.close()
    ids = sorted(e["id"] for e in SQLiteStore(tmp_path / "e.db").query(Query()))
    assert ids == ["id-000001", "id-000002", "id-000003"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_never_writes_the_parents_pending_batch(tmp_path: Path) -> None:
    backend = inline(tmp_path / "e.db", batch_size=100, max_delay=60)
    backend.send(ev(1))  # pending in the parent
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            backend.send(ev(3))  # the child's own
            code = 0 if backend.flush(10.0) else 2
            backend.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    backend.send(ev(2))
    assert backend.flush(10.0) is True
    backend.close()
    ids = sorted(e["id"] for e in SQLiteStore(tmp_path / "e.db").query(Query()))
    assert ids == ["id-000001", "id-000002", "id-000003"]


def test_follow_with_zero_history_starts_at_the_end(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "f.db")
    s.write([row_for(ev(i)) for i in range(3)])
    follow = s.follow(poll_interval=0.01, n=0)
    s.write([row_for(ev(7))])
    assert next(follow)["data"]["i"] == 7


def test_reading_never_changes_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(StoreError):
        open_store(str(empty))
    assert empty.read_bytes() == b""
    foreign = tmp_path / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE mine (x)")
    db.commit()
    db.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not an event store"):
        SQLiteStore(foreign, create=True)  # writing into someone else's database is refused
    assert foreign.read_bytes() == before
    with pytest.raises(StoreError, match="is a directory"):
        open_store(str(tmp_path))


def test_filters_for_booleans_null_and_strict_numbers(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "b.db")
    s.write(
        [
            row_for(ev(1, flag=True, n=1000)),
            row_for(ev(2, flag=False, n="1_000")),
            row_for(ev(3, flag=None, n=2.5)),
        ]
    )

    def ids(**context: str) -> list[int]:
        query = Query(context=tuple(context.items()), limit=None)
        return [e["data"]["i"] for e in s.query(query)]

    assert ids(flag="true") == [1]
    assert ids(flag="false") == [2]
    assert ids(flag="null") == [3]
    assert ids(n="1000") == [1]
    assert ids(n="1_000") == [2]  # a string that Python would read as 1000 stays a string
    assert ids(n="2.5") == [3]
    with pytest.raises(ValueError, match="must not contain"):
        s.query(Query(context=(('a"b', "1"),)))


def test_unreadable_timestamp_is_indexed_at_arrival_and_counted() -> None:
    from eventtracking import diagnostics

    event = ev(1)
    event["timestamp"] = "yesterday-ish"
    before = time.time_ns() // 1000
    _, _, ts, body = row_for(event)
    assert ts >= before
    assert b"yesterday-ish" in body
    assert diagnostics.snapshot()["store.bad_timestamp"] == 1


def test_from_micros_is_exact() -> None:
    micros = 1_780_000_000_123_457
    assert to_micros(from_micros(micros)) == micros


@pytest.mark.parametrize("count", [1, 5, 255, 256, 257, 1000, 1337])
def test_write_counts_new_rows_in_any_batch_size(tmp_path: Path, count: int) -> None:
    # Rows go in several multi-row statements; the count and order must not care.
    store = SQLiteStore(tmp_path / "e.db")
    rows = [row_for(ev(i)) for i in range(count)]
    assert store.write(rows) == count
    half = [*rows[: count // 2], row_for(ev(count))]
    assert store.write(half) == 1  # only the last one is new
    assert [e["data"]["i"] for e in store.tail(count + 1)] == list(range(count + 1))
    store.close()


def _kept(events: list[dict[str, Any]]) -> list[bytes]:
    """What the store must hold after `events` arrive in this order: the reference model."""
    kept: list[dict[str, Any]] = []
    for event in events:
        same = [
            k for k in kept if k["name"] == event["name"] and k["timestamp"] == event["timestamp"]
        ]
        if not any(
            dumps(k) == dumps(event) or ("id" in event and k.get("id") == event["id"]) for k in same
        ):
            kept.append(event)
    return sorted(dumps(k) for k in kept)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["a", "b"]), "data": st.integers(0, 2)},
            optional={"id": st.sampled_from(["x", "y"])},
        ),
        max_size=30,
    ),
    st.lists(st.integers(1, 7), min_size=1, max_size=8),
)
def test_any_arrival_order_keeps_each_event_once(
    tmp_path_factory: pytest.TempPathFactory, drawn: list[dict[str, Any]], cuts: list[int]
) -> None:
    # Few names, times, ids and values: collisions on (name, time, slot 0) are
    # the rule, and every event arrives twice, in batches of any size.
    events = [{**e, "timestamp": T0 + timedelta(microseconds=e["data"] % 2)} for e in drawn]
    arrivals = events + events[::-1]
    store = SQLiteStore(tmp_path_factory.mktemp("h") / "e.db")
    start, k = 0, 0
    while start < len(arrivals):
        size = cuts[k % len(cuts)]
        store.write_events(arrivals[start : start + size])
        start, k = start + size, k + 1

    stored = sorted(dumps(e) for e in store.query(Query(limit=None)))
    store.close()
    assert stored == sorted(_kept_as_read(_kept(arrivals)))


def _kept_as_read(bodies: list[bytes]) -> list[bytes]:
    # The store gives events back decoded: timestamps come back as ISO text.
    return [dumps(loads(body)) for body in bodies]


def test_a_store_is_a_context_manager_that_closes(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "e.db") as store:
        store.write_events([ev(1)])
        assert store.count(Query()) == 1
    with pytest.raises(StoreError, match="closed"):
        store.count(Query())
