"""The PostgreSQL store and backend, against a real server (a table of its own per test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventtracking import diagnostics
from eventtracking.cli import cli
from eventtracking.config import tracker_from_config
from eventtracking.delivery import DeliveryBackend
from eventtracking.exceptions import ImproperlyConfigured, RetryableError, StoreError
from eventtracking.store import Query, open_store
from eventtracking.store.rows import row_for
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.tracker import Tracker
from services import drop_table, pg_table, postgres_dsn, require_driver, table_url, unique

pytestmark = pytest.mark.services
require_driver("psycopg", "postgres")

import psycopg  # noqa: E402

from eventtracking.backends.postgres import PostgresBackend  # noqa: E402
from eventtracking.store.postgres import PostgresStore  # noqa: E402
from eventtracking.store.postgres_schema import MIGRATIONS, Migration, Names, migrate  # noqa: E402

T0 = datetime(2026, 2, 1, 8, tzinfo=UTC)


def ev(i: int, name: str = "a.b", hours: float = 0, **context: Any) -> dict[str, Any]:
    return {
        "id": f"id-{i:06d}",
        "name": name,
        "timestamp": T0 + timedelta(hours=hours),
        "data": {"i": i},
        "context": context,
    }


@pytest.fixture
def table() -> Iterator[tuple[str, str]]:
    """(dsn, table): a fresh table name, dropped afterwards."""
    with pg_table() as names:
        yield names


def sql(dsn: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


# -- schema and migrations ----------------------------------------------------------------


def test_schema_has_typed_columns_indexes_and_a_version(table: tuple[str, str]) -> None:
    dsn, name = table
    PostgresStore(dsn, name).close()
    columns = dict(
        sql(
            dsn,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            name,
        )
    )
    assert columns["id"] == "text" and columns["name"] == "text"
    assert columns["ts"] == "timestamp with time zone"
    assert columns["data"] == columns["context"] == "jsonb"
    indexes = {
        row[0] for row in sql(dsn, "SELECT indexdef FROM pg_indexes WHERE tablename = %s", name)
    }
    assert any("(name, ts)" in index for index in indexes)
    assert any(index.endswith("(ts)") for index in indexes)
    assert any("UNIQUE" in index and "(id)" in index for index in indexes)
    assert sql(dsn, f'SELECT version FROM "{name}_migrations" ORDER BY 1') == [(1,), (2,)]
    assert sql(dsn, "SELECT to_regclass(%s) IS NOT NULL", f'"{name}_types"') == [(True,)]


def test_concurrent_starters_create_the_schema_once(table: tuple[str, str]) -> None:
    dsn, name = table
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            PostgresStore(dsn, name).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sql(dsn, f'SELECT version FROM "{name}_migrations" ORDER BY 1') == [(1,), (2,)]


def test_an_upgrade_runs_once_with_concurrent_starters(table: tuple[str, str]) -> None:
    dsn, name = table
    with psycopg.connect(dsn, autocommit=True) as conn:  # a table made by release 1
        assert migrate(conn, Names.parse(name), MIGRATIONS[:1]) == [1]
        conn.execute(f'INSERT INTO "{name}" (id, name, ts) VALUES (%s, %s, now())', ("old", "a"))
    barrier = threading.Barrier(6)
    applied: list[list[int]] = []

    def start() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            barrier.wait()
            applied.append(migrate(conn, Names.parse(name)))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(applied) == [[]] * 5 + [[2]]
    assert sql(dsn, f'SELECT version FROM "{name}_migrations" ORDER BY 1') == [(1,), (2,)]
    assert [e["id"] for e in PostgresStore(dsn, name).tail()] == ["old"]


def test_a_store_is_a_context_manager_that_closes(table: tuple[str, str]) -> None:
    dsn, name = table
    with PostgresStore(dsn, name) as store:
        store.write([ev(1)])
        assert store.count(Query()) == 1
    with pytest.raises(RuntimeError, match="closed"):
        store.count(Query())


def test_a_reader_reads_an_older_schema_without_changing_it(table: tuple[str, str]) -> None:
    dsn, name = table
    with psycopg.connect(dsn, autocommit=True) as conn:  # a table made by release 1
        migrate(conn, Names.parse(name), MIGRATIONS[:1])
    reader = PostgresStore(table_url(dsn, name), create=False)
    assert reader.schema_version == 1
    assert reader.types() == [] and reader.metadata("x") is None
    assert reader.count(Query()) == 0
    assert sql(dsn, f'SELECT version FROM "{name}_migrations"') == [(1,)]


def test_a_newer_schema_is_refused(table: tuple[str, str]) -> None:
    dsn, name = table
    PostgresStore(dsn, name).close()
    later = Migration(3, "a later release", ("ALTER TABLE {t.events} ADD COLUMN note text",))
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert migrate(conn, Names.parse(name), (*MIGRATIONS, later)) == [3]
    with pytest.raises(StoreError, match="version 3, newer than this eventtracking"):
        PostgresStore(dsn, name)
    with pytest.raises(StoreError, match="upgrade eventtracking"):
        open_store(table_url(dsn, name))


def test_a_table_not_made_by_eventtracking_is_refused(table: tuple[str, str]) -> None:
    dsn, name = table
    sql(dsn, f'CREATE TABLE "{name}" (x int)')
    with pytest.raises(StoreError, match="not created by eventtracking"):
        PostgresStore(dsn, name)
    assert sql(dsn, f'SELECT count(*) FROM "{name}"') == [(0,)]


def test_a_schema_qualified_table_is_created_in_its_schema() -> None:
    dsn = postgres_dsn()
    schema = unique("et_schema")
    try:
        backend = PostgresBackend(dsn, f"{schema}.events")
        backend.send_batch([ev(1)])
        backend.close()
        assert sql(dsn, f'SELECT count(*) FROM "{schema}".events') == [(1,)]
        assert open_store(f"{dsn}?table={schema}.events").count(Query()) == 1
    finally:
        sql(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_bad_names_and_locations_say_what_to_fix() -> None:
    dsn = postgres_dsn()
    with pytest.raises(ValueError, match="letters, digits and _"):
        PostgresStore(dsn, "events; DROP TABLE x")
    with pytest.raises(ValueError, match="names table 'a' but table='b'"):
        PostgresStore(f"{dsn}?table=a", "b")
    with pytest.raises(StoreError, match=r"cannot connect.*is the server running"):
        PostgresStore("postgresql://root@127.0.0.1:1/test", connect_timeout=2)
    with pytest.raises(StoreError, match="no event table"):
        open_store(f"{dsn}?table={unique('missing')}")


# -- writing ------------------------------------------------------------------------------


def test_events_round_trip_through_a_tracker_with_awkward_text(table: tuple[str, str]) -> None:
    dsn, name = table
    awkward = {
        "tab": "a\tb",
        "lines": "one\ntwo\r\n",
        "backslash": "C:\\path\\u0000 not a nul",
        "quote": 'say "hi"',
        "unicode": "naïve café ✓ 😀",
        "nul": "before\x00after",
        "deep": {"list": [1, 2.5, None, True, {"k": "v"}]},
    }
    with Tracker({"pg": PostgresBackend(dsn, name, batch_size=10)}, envelope="full") as tracker:
        tracker.enter_context("request", {"user_id": 7, "path": "/x\ty"})
        tracker.emit("edx.test\tname", awkward)
        tracker.emit("edx.plain", {"n": 1})
    store = PostgresStore(table_url(dsn, name), create=False)
    first, second = store.query(Query(limit=None))
    assert first["name"] == "edx.test\tname"
    assert first["context"] == {"user_id": 7, "path": "/x\ty"}
    expected = dict(awkward, nul="before\ufffdafter")  # jsonb cannot hold NUL
    assert first["data"] == expected
    assert second["data"] == {"n": 1}
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None
    assert list(first) == ["id", "name", "timestamp", "data", "context"]
    assert diagnostics.snapshot()["postgres.nul_replaced"] == 1


def test_other_top_level_keys_and_bad_timestamps_are_kept(table: tuple[str, str]) -> None:
    dsn, name = table
    store = PostgresStore(dsn, name)
    odd = ev(1) | {"meta": {"type": "t-1"}, "timestamp": "yesterday-ish"}
    before = datetime.now(UTC)
    store.write([odd, ev(2)])
    (row,) = sql(dsn, f'SELECT ts FROM "{name}" WHERE id = %s', "id-000001")
    assert row[0] >= before - timedelta(seconds=1)  # indexed under its arrival time
    back = store.query(Query(data=(("i", "1"),)))[0]
    assert back["meta"] == {"type": "t-1"} and back["timestamp"] == "yesterday-ish"
    assert diagnostics.snapshot()["store.bad_timestamp"] == 1


def test_timestamps_as_text_are_stored_as_times_and_bad_ones_at_arrival(
    table: tuple[str, str],
) -> None:
    dsn, name = table
    store = PostgresStore(dsn, name)
    as_text = [
        ev(1) | {"timestamp": "2026-02-01T08:00:00.250000+00:00"},  # what the encoder writes
        ev(2) | {"timestamp": "2026-02-01T09:30:00+01:00"},
        ev(3) | {"timestamp": "2026-02-01T08:00:00"},  # naive = UTC
        ev(4) | {"timestamp": "2026-02-31T08:00:00+00:00"},  # no such day
    ]
    before = datetime.now(UTC)
    store.write(as_text)
    times = dict(sql(dsn, f'SELECT id, ts FROM "{name}"'))
    assert times["id-000001"] == T0 + timedelta(microseconds=250_000)
    assert times["id-000002"] == T0 + timedelta(minutes=30)
    assert times["id-000003"] == T0
    assert times["id-000004"] >= before - timedelta(seconds=1)
    (bad,) = store.query(Query(data=(("i", "4"),)))
    assert bad["timestamp"] == "2026-02-31T08:00:00+00:00"
    assert diagnostics.snapshot()["postgres.careful_batches"] == 1


def test_odd_values_are_repaired_and_the_batch_kept(table: tuple[str, str]) -> None:
    dsn, name = table
    store = PostgresStore(dsn, name)
    lone_surrogate = ev(2) | {"data": {"text": "a\ud800b"}}  # not valid Unicode
    odd_value = ev(3) | {"data": {"when": object()}}  # repaired as a marked repr
    assert store.write([ev(1), lone_surrogate, odd_value, ev(4)]) == 4
    stored = {e["id"]: e for e in store.query(Query(limit=None))}
    assert sorted(stored) == ["id-000001", "id-000002", "id-000003", "id-000004"]
    assert stored["id-000002"]["data"]["text"] == "a\ufffdb"
    assert stored["id-000003"]["data"]["when"].startswith("<unserializable object")
    assert diagnostics.snapshot()["serialization.repaired"] >= 2


def test_rewrites_are_idempotent_and_count_only_new_rows(table: tuple[str, str]) -> None:
    dsn, name = table
    store = PostgresStore(dsn, name)
    assert store.write([ev(1), ev(2)]) == 2
    assert store.write([ev(1), ev(2), ev(3)]) == 1  # through the staging table
    assert store.write([ev(4), ev(4)]) == 1  # a duplicate inside one batch
    no_id = {k: v for k, v in ev(5).items() if k != "id"}
    assert store.write([no_id]) == 1
    assert store.write([dict(no_id)]) == 0
    ids = [row[0] for row in sql(dsn, f'SELECT id FROM "{name}" ORDER BY seq')]
    assert ids == ["id-000001", "id-000002", "id-000003", "id-000004", row_for(no_id)[0]]
    assert diagnostics.snapshot()["postgres.redelivered_batches"] == 3


def test_a_connection_killed_mid_batch_loses_and_duplicates_nothing(
    table: tuple[str, str],
) -> None:
    """pg_terminate_backend while a COPY runs: the worker retries the batch on a new connection."""
    dsn, name = table
    backend = PostgresBackend(dsn, name, batch_size=2000)
    delivery = DeliveryBackend(
        backend,
        max_delay=60,
        retry={"max_attempts": 10, "initial_backoff": 0.01, "max_backoff": 0.1},
        circuit={"failure_threshold": 10},
    )
    kills: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set() and len(kills) < 4:
                pid = backend.store.backend_pid
                row = conn.execute(
                    "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
                if row and row[0] == "active" and row[1].startswith("COPY"):
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    kills.append(pid)
                    time.sleep(0.1)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        n = 40_000
        for i in range(n):
            delivery.send(ev(i, hours=i / 3600))
        assert delivery.flush(60.0) is True
    finally:
        stop.set()
        thread.join(30)
    delivery.close()
    assert kills, "no COPY was caught in flight; the test proved nothing"
    assert sql(dsn, f'SELECT count(*), count(DISTINCT id) FROM "{name}"') == [(n, n)]
    assert delivery.metrics_snapshot()["failures"] >= len(kills)


def test_an_unreachable_server_is_a_retryable_error_and_writing_again_is_safe(
    table: tuple[str, str],
) -> None:
    dsn, name = table
    backend = PostgresBackend(dsn, name, batch_size=5)
    good = backend.store.conninfo
    backend.store.conninfo = "postgresql://root@127.0.0.1:1/test"  # nothing listens there
    sql(dsn, "SELECT pg_terminate_backend(%s)", backend.store.backend_pid)
    with pytest.raises(RetryableError, match="writing them again is safe"):
        backend.send_batch([ev(i) for i in range(5)])
    assert backend.flush(0.0) is True  # a plain writer keeps nothing
    backend.store.conninfo = good
    backend.send_batch([ev(i) for i in range(8)])
    backend.close()
    assert sql(dsn, f'SELECT count(*), count(DISTINCT id) FROM "{name}"') == [(8, 8)]


def test_behind_the_worker_an_outage_spills_to_the_journal_and_loses_nothing(
    table: tuple[str, str], tmp_path: Path
) -> None:
    dsn, name = table
    backend = PostgresBackend(dsn, name)
    good = backend.store.conninfo
    backend.store.conninfo = "postgresql://root@127.0.0.1:1/test"
    sql(dsn, "SELECT pg_terminate_backend(%s)", backend.store.backend_pid)
    delivery = DeliveryBackend(
        backend,
        journal_dir=tmp_path / "journal",
        batch_size=2,
        queue_size=4,
        max_delay=0,
        retry={"max_attempts": None, "initial_backoff": 0.01, "max_backoff": 0.05},
        circuit={"failure_threshold": 1, "reset_timeout": 0.05},
    )
    for i in range(50):
        delivery.send(ev(i))  # never raises, never waits for the server
    assert delivery.flush(0.1) is False
    stats = delivery.metrics_snapshot()
    assert stats["journaled"] > 0 and stats["dropped"] == {}
    backend.store.conninfo = good
    assert delivery.flush(20.0) is True
    delivery.close()
    assert sql(dsn, f'SELECT count(*), count(DISTINCT id) FROM "{name}"') == [(50, 50)]


def test_a_forked_child_uses_its_own_connection(table: tuple[str, str]) -> None:
    dsn, name = table
    backend = PostgresBackend(dsn, name)
    backend.send(ev(1))
    pid = os.fork()
    if pid == 0:  # the child: send one event of its own, then leave without cleanup
        code = 0
        try:
            backend.send(ev(2))
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    backend.send(ev(3))  # the parent's connection survived the child
    backend.close()
    ids = [row[0] for row in sql(dsn, f'SELECT id FROM "{name}" ORDER BY id')]
    assert ids == ["id-000001", "id-000002", "id-000003"]


def test_configuration_builds_the_backend_and_checks_its_options(table: tuple[str, str]) -> None:
    dsn, name = table
    engine = "eventtracking.backends.postgres.PostgresBackend"
    config = {"backends": {"pg": {"ENGINE": engine, "OPTIONS": {"dsn": dsn, "table": name}}}}
    with tracker_from_config(config) as tracker:
        assert isinstance(tracker.get_backend("pg"), DeliveryBackend)  # by default
        tracker.emit("configured", {})
    assert sql(dsn, f'SELECT name FROM "{name}"') == [("configured",)]
    config["backends"]["pg"]["DELIVERY"] = False
    with tracker_from_config(config) as tracker:
        assert isinstance(tracker.get_backend("pg"), PostgresBackend)
        tracker.emit("direct", {})
    assert sql(dsn, f'SELECT count(*) FROM "{name}" WHERE name = %s', "direct") == [(1,)]
    del config["backends"]["pg"]["DELIVERY"]
    config["backends"]["pg"]["OPTIONS"]["batch_size"] = "many"
    with pytest.raises(ImproperlyConfigured, match="batch_size: expected int"):
        tracker_from_config(config)


def test_without_the_driver_the_error_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from eventtracking.exceptions import MissingExtraError, StoreError\n"
        "try:\n"
        "    import eventtracking.backends.postgres\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
        "from eventtracking.store import open_store\n"
        "try:\n"
        "    open_store('postgresql://localhost/x')\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert (
        out
        == ["psycopg is not installed; install it with: pip install 'event-tracking[postgres]'"] * 2
    )


# -- reading: the same answers as the SQLite store ----------------------------------------


def sample_events() -> list[dict[str, Any]]:
    names = ("video.play", "video.pause", "nav.request", "problem_check")
    events = [
        ev(i, names[i % 4], hours=i / 2, user_id=i % 3, course=f"c-{i % 2}", flag=i % 5 == 0)
        for i in range(60)
    ]
    events.append(ev(100, "video.play", hours=3.25, user_id="abc", n=2.5, none=None))
    events.append(ev(101, "video_play", hours=4, user_id="1_000"))
    return events


@pytest.fixture
def both(table: tuple[str, str], tmp_path: Path) -> Iterator[tuple[SQLiteStore, PostgresStore]]:
    dsn, name = table
    events = sample_events()
    lite = SQLiteStore(tmp_path / "same.db")
    lite.write([row_for(e) for e in events])
    pg = PostgresStore(dsn, name)
    pg.write(events[:30])
    pg.write(events[30:])
    yield lite, pg
    lite.close()
    pg.close()


QUERIES = [
    Query(limit=None),
    Query(limit=5),
    Query(limit=5, newest_first=True),
    Query(names=("video.play",), limit=None),
    Query(names=("video.*",), limit=None),
    Query(names=("video?p*",), limit=None),
    Query(names=("video_play",), limit=None),  # _ is not a wildcard
    Query(names=("[np]*",), limit=None),
    Query(names=("[^v]*",), limit=None),
    Query(names=("nav.request", "problem_*"), limit=None),
    Query(since=T0 + timedelta(hours=5), until=T0 + timedelta(hours=9), limit=None),
    Query(context=(("user_id", "2"),), limit=None),
    Query(context=(("user_id", "abc"),), limit=None),
    Query(context=(("user_id", "1_000"),), limit=None),
    Query(context=(("flag", "true"),), limit=None),
    Query(context=(("flag", "false"), ("course", "c-1")), limit=None),
    Query(context=(("none", "null"),), limit=None),
    Query(context=(("n", "2.5"),), limit=None),
    Query(data=(("i", "7"),), limit=None),
    Query(names=("video.*",), context=(("user_id", "1"),), limit=3, newest_first=True),
]


@pytest.mark.parametrize("query", QUERIES, ids=[repr(q)[6:60] for q in QUERIES])
def test_queries_answer_like_the_sqlite_store(
    both: tuple[SQLiteStore, PostgresStore], query: Query
) -> None:
    lite, pg = both
    expected = [(e["id"], e["data"]) for e in lite.query(query)]
    assert [(e["id"], e["data"]) for e in pg.query(query)] == expected
    assert pg.count(query) == lite.count(query)


def test_summaries_answer_like_the_sqlite_store(both: tuple[SQLiteStore, PostgresStore]) -> None:
    lite, pg = both
    assert pg.counts_by_name() == lite.counts_by_name()
    assert pg.counts_by_hour() == lite.counts_by_hour()
    video = Query(names=("video.*",), limit=None)
    assert pg.counts_by_hour(video) == lite.counts_by_hour(video)
    assert pg.time_range() == lite.time_range()
    assert [e["id"] for e in pg.tail(4)] == [e["id"] for e in lite.tail(4)]
    assert pg.query(Query(limit=1)) == [
        e | {"timestamp": datetime.fromisoformat(e["timestamp"]).isoformat()}
        for e in lite.query(Query(limit=1))
    ]


def test_follow_yields_history_then_new_events(table: tuple[str, str]) -> None:
    dsn, name = table
    store = PostgresStore(dsn, name)
    assert store.time_range() is None
    store.write([ev(i) for i in range(5)])
    follow = store.follow(poll_interval=0.01, n=2)
    store.write([ev(5)])
    assert [next(follow)["data"]["i"] for _ in range(3)] == [3, 4, 5]
    late = PostgresStore(dsn, name).follow(poll_interval=0.01, n=0)
    store.write([ev(6)])
    assert next(late)["data"]["i"] == 6


def next_within(events: Iterator[dict[str, Any]], seconds: float = 10.0) -> dict[str, Any]:
    """next(events), or a test failure after `seconds` (follow blocks when it has nothing)."""
    box: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: box.append(next(events)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, f"follow yielded nothing within {seconds} s"
    return box[0]


def test_follow_yields_an_event_whose_transaction_commits_late(table: tuple[str, str]) -> None:
    # Seqs are drawn at insert, not at commit: the row that drew the lower seq
    # commits last, and must still be yielded (once), not skipped.
    from psycopg.types.json import Jsonb

    dsn, name = table
    store = PostgresStore(dsn, name)
    store.write([ev(1)])
    follow = store.follow(poll_interval=0.01, n=0)
    slow = psycopg.connect(dsn)  # its transaction stays open until commit()
    try:
        slow.execute(
            f"INSERT INTO {store.names.events} (id, name, ts, data, context, extra) "
            "VALUES ('id-late', 'a.b', %s, %s, %s, %s)",
            [T0, Jsonb({"i": 2}), Jsonb({}), Jsonb({})],
        )
        store.write([ev(3)])  # a later seq, committed first
        assert next_within(follow)["data"]["i"] == 3
        slow.commit()
    finally:
        slow.close()
    assert next_within(follow)["data"]["i"] == 2
    store.write([ev(4)])
    assert next_within(follow)["data"]["i"] == 4  # nothing is yielded twice


def test_a_read_after_the_connection_was_killed_reconnects(table: tuple[str, str]) -> None:
    dsn, name = table
    store = PostgresStore(dsn, name)
    store.write([ev(1)])
    sql(dsn, "SELECT pg_terminate_backend(%s)", store.backend_pid)
    assert store.count(Query()) == 1


# -- the command line on a PostgreSQL store ----------------------------------------------


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    assert "Traceback" not in result.output
    return result


def test_query_tail_and_stats_work_on_a_postgresql_url(table: tuple[str, str]) -> None:
    dsn, name = table
    PostgresStore(dsn, name).write(sample_events())
    url = table_url(dsn, name)
    result = run("query", "--store", url, "--name", "video.*", "--context", "user_id=2", "--json")
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert found and all(e["name"].startswith("video.") for e in found)
    assert all(e["context"]["user_id"] == 2 for e in found)
    table_view = run("query", "--store", url, "--limit", "3")
    assert table_view.exit_code == 0 and "3 of 62 matching events" in table_view.output
    tail = run("tail", "--store", url, "-n", "2", "--json")
    assert [json.loads(line)["id"] for line in tail.stdout.splitlines()] == [
        "id-000100",
        "id-000101",
    ]
    stats = run("stats", "--store", url, "--json")
    summary = json.loads(stats.stdout)
    assert summary["total"] == 62 and summary["by_name"]["video.play"] == 16
    assert sum(summary["by_hour"].values()) == 62
    assert run("stats", "--store", url).exit_code == 0


def test_the_command_line_explains_a_missing_table(table: tuple[str, str]) -> None:
    dsn, name = table
    result = run("query", "--store", table_url(dsn, name))
    assert result.exit_code == 1
    assert "no event table" in result.output and "?table=NAME" in result.output
    drop_table(dsn, name)


# -- documentation versions and the catalogue ----------------------------------------------


def test_documentation_versions_are_stored_once_next_to_the_events(table: tuple[str, str]) -> None:
    dsn, name = table
    with Tracker({"pg": PostgresBackend(dsn, name, batch_size=1)}, envelope="full") as tracker:
        v1 = tracker.register("edx.video.played", "Started a video.", {"video_id": "The video."})
        ctx = tracker.register_context("request", "Per request.", {"user_id": "The learner."})
        tracker.enter_context("request", {"user_id": 7})
        tracker.emit("edx.video.played", {"video_id": "a"})
        tracker.emit("edx.video.played", {"video_id": "b"})
        v2 = tracker.register(
            "edx.video.played", "Started a video.", {"video_id": "The video.", "speed": "x"}
        )
        tracker.emit("edx.video.played", {"video_id": "c", "speed": 1})
    rows = sql(dsn, f'SELECT id, kind FROM "{name}_types" ORDER BY id')
    assert sorted(rows) == sorted([(v1.id, "event"), (v2.id, "event"), (ctx.id, "context")])
    store = PostgresStore(table_url(dsn, name), create=False)
    first, *_, last = store.query(Query(limit=None))
    assert first["meta"] == {"type": v1.id, "contexts": {"request": ctx.id}}
    described = store.metadata_for(first)
    assert described["type"]["fields"] == {"video_id": {"description": "The video."}}
    assert described["contexts"]["request"]["description"] == "Per request."
    assert store.metadata_for(last)["type"]["id"] == v2.id
    assert [t["id"] for t in store.types("event")] == [v1.id, v2.id]


def test_catalogue_summaries_answer_like_the_sqlite_store(
    both: tuple[SQLiteStore, PostgresStore],
) -> None:
    lite, pg = both
    assert sorted(pg.summaries()) == sorted(lite.summaries())
    for section in ("data", "context"):
        assert pg.field_counts(section) == lite.field_counts(section)
    assert pg.latest("video.play")["id"] == lite.latest("video.play")["id"]  # type: ignore[index]
    assert pg.latest("nothing") is None


def test_the_catalog_command_reads_a_postgresql_store(table: tuple[str, str]) -> None:
    dsn, name = table
    with Tracker({"pg": PostgresBackend(dsn, name)}, envelope="full") as tracker:
        tracker.register("edx.video.played", "Started a video.", {"video_id": "The video."})
        tracker.emit("edx.video.played", {"video_id": "a", "speed": 2})
    result = run("catalog", "--store", table_url(dsn, name))
    assert result.exit_code == 0, result.output
    assert "edx.video.played" in result.output and "Started a video." in result.output
    assert "speed" in result.output  # stored but undocumented: drift


def test_the_follow_floor_waits_for_open_transactions_then_gives_up() -> None:
    from eventtracking.store import postgres_follow as pf

    now = [0.0]
    state = pf._State(floor=10, top=20, seen={15, 20}, clock=lambda: now[0])
    state.mark(xmax=100)  # transactions up to xid 99 existed when seq 20 was seen
    now[0] = pf.GRACE + 0.1
    state.advance(xmin=50)  # xid 50 still runs: seqs up to 20 may still appear
    assert state.floor == 10
    state.advance(xmin=100)  # all of them finished
    assert state.floor == 20 and state.seen == set()
    state.top = 30
    state.mark(xmax=200)
    before = diagnostics.snapshot().get("store.follow_gave_up", 0)
    now[0] += pf.PATIENCE + 1
    state.advance(xmin=150)  # still held back, but past patience: move on, and count it
    assert state.floor == 30
    assert diagnostics.snapshot()["store.follow_gave_up"] == before + 1
