"""The console over a real store, through a real server: every endpoint, filters, tokens, replay.

Each test runs against SQLite and the real PostgreSQL (`console_support.filled`).
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from console_support import EVENTS, Filled, console_over, filled, serve
from eventtracking.console.filters import FilterError, parse_filter
from eventtracking.delivery.deadletter import DeadLetterStore
from eventtracking.store import open_store

__all__ = ["filled"]  # the fixture, shared with the other console tests

TOKEN = "s3cret-token-for-tests"


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=10, **kwargs)


def test_every_page_answers_with_what_the_store_holds(filled: Filled) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        live = get(f"{base}/")
        assert live.status_code == 200 and 'id="events"' in live.text
        catalogue = get(f"{base}/catalogue").text
        assert 'data-name="video.played" data-count="3"' in catalogue
        assert 'data-name="page.viewed" data-count="3"' in catalogue
        assert "undocumented" in catalogue and "documented</span>" in catalogue
        delivery = get(f"{base}/delivery").text
        assert "read-only: replay is off" in delivery
        assert get(f"{base}/static/console.js").text.startswith("// The live view")
        assert get(f"{base}/static/secrets.txt").status_code == 404


def test_history_is_filtered_by_name_glob_and_fields(filled: Filled) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        everything = get(f"{base}/api/events").json()["events"]
        assert len(everything) == len(EVENTS)
        videos = get(f"{base}/api/events", params={"name": "video.*"}).json()["events"]
        assert {e["name"] for e in videos} == {"video.played"} and len(videos) == 3
        user7 = get(f"{base}/api/events", params={"where": "user_id=7"}).json()["events"]
        assert len(user7) == 3
        both = get(
            f"{base}/api/events", params=[("name", "video.*"), ("where", "data.video_id=v1")]
        ).json()["events"]
        assert len(both) == 2
        documented = [e for e in videos if e["doc"]]
        assert len(documented) == 3 and documented[0]["doc"]["name"] == "video.played"
        assert all(e["doc"] is None for e in everything if e["name"] == "page.viewed")
        bad = get(f"{base}/api/events", params={"name": "video.["})
        assert bad.status_code == 400 and "opens '['" in bad.json()["error"]


def test_chart_numbers_count_each_type_in_its_bucket(filled: Filled) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        body = get(f"{base}/api/charts", params={"range": "1h", "field": "user_id"}).json()
        assert body["bucket_seconds"] == 60
        assert sum(body["series"]["video.played"]) == 3
        assert sum(body["series"]["page.viewed"]) == 2  # the third is 90 minutes old
        ten_ago = filled.now - timedelta(minutes=10)
        minute = ten_ago.replace(second=0, microsecond=0).isoformat()
        slot = body["buckets"].index(minute)
        assert body["series"]["video.played"][slot] == 2
        assert dict(body["top_types"]) == {"video.played": 3, "page.viewed": 2}
        assert dict(body["top_values"]) == {"7": 2, "8": 2, "9": 1}
        day = get(f"{base}/api/charts", params={"range": "24h"}).json()
        assert day["bucket_seconds"] == 3600 and sum(day["series"]["page.viewed"]) == 3
        page = get(f"{base}/charts", params={"range": "1h", "name": "page.*"}).text
        assert page.count('class="bar"') >= 2 and 'data-name="video.played"' not in page
        bad = get(f"{base}/api/charts", params={"range": "2y"})
        assert bad.status_code == 400 and "range" in bad.json()["error"]


def test_a_new_event_reaches_the_stream(filled: Filled) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        position = get(f"{base}/api/events").json()["position"]
        url = f"{base}/api/stream"
        with httpx.stream(
            "GET", url, params={"name": "video.*", "after": position}, timeout=10
        ) as stream:
            filled.emit("page.viewed", {"path": "/skipped"}, user_id=1)
            filled.emit("video.played", {"video_id": "live-1"}, user_id=42)
            deadline = time.monotonic() + 8
            lines = []
            for line in stream.iter_lines():
                lines.append(line)
                if "live-1" in line or time.monotonic() > deadline:
                    break
        data = [line for line in lines if line.startswith("data: {")]
        assert len(data) == 1 and "live-1" in data[0] and "/skipped" not in data[0]


def test_metrics_parse_as_prometheus_text(filled: Filled, tmp_path: Path) -> None:
    dead = DeadLetterStore(tmp_path / "dead-letters.db")
    dead.add("store", [{"name": "x.y", "data": {}}], "rejected", 3, time.time(), time.time())
    dead.close()
    with (
        console_over(filled.location, dead_letters=[tmp_path / "dead-letters.db"]) as console,
        serve(console) as base,
    ):
        reply = get(f"{base}/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }
    assert samples[("eventtracking_store_events", (("name", "video.played"),))] == 3
    assert samples[("eventtracking_store_events", (("name", "page.viewed"),))] == 3
    assert samples[("eventtracking_dead_letters", (("backend", "store"),))] == 1
    newest = samples[("eventtracking_store_newest_event_timestamp_seconds", ())]
    assert abs(newest - (filled.now - timedelta(minutes=5)).timestamp()) < 1


def test_only_the_console_own_host_names_are_answered(filled: Filled) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        assert get(f"{base}/api/events", headers={"Host": "localhost"}).status_code == 200
        rebound = get(f"{base}/api/events", headers={"Host": "evil.example:8765"})
        assert rebound.status_code == 400  # a DNS-rebinding page reads nothing


def test_a_token_is_required_on_every_request(filled: Filled) -> None:
    with console_over(filled.location) as console, serve(console, TOKEN) as base:
        for path in ("/", "/charts", "/api/events", "/api/stream", "/metrics", "/static/x"):
            assert get(f"{base}{path}").status_code == 401, path
        assert get(f"{base}/", headers={"X-Console-Token": "wrong-" + TOKEN}).status_code == 401
        ok = get(f"{base}/api/events", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert get(f"{base}/metrics", headers={"X-Console-Token": TOKEN}).status_code == 200
        first = get(f"{base}/", params={"token": TOKEN})
        assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
        assert get(f"{base}/charts", cookies=first.cookies).status_code == 200


def test_replay_is_refused_unless_allowed(filled: Filled, tmp_path: Path) -> None:
    path = tmp_path / "dead-letters.db"
    dead = DeadLetterStore(path)
    stamp = datetime.now(UTC).isoformat()
    letters = [
        {"id": f"dl-{i}", "name": "late.event", "timestamp": stamp, "data": {}, "context": {}}
        for i in (1, 2, 3)
    ]
    dead.add("store", letters, "timeout", 5, time.time(), time.time())
    dead.close()
    form = {"store": str(path), "id": "1"}
    with console_over(filled.location, dead_letters=[path]) as console, serve(console) as base:
        refused = httpx.post(f"{base}/delivery/replay", data=form, timeout=10)
        assert refused.status_code == 403 and "read-only" in refused.text
        assert 'name="id" value="1"' not in get(f"{base}/delivery").text
    target = tmp_path / "target.db"
    from eventtracking.console.factory import sink_replay

    with (
        console_over(
            filled.location, dead_letters=[path], replay_backend=sink_replay(str(target))
        ) as console,
        serve(console) as base,
    ):
        page = get(f"{base}/delivery").text
        assert 'name="id" value="1"' in page and "replay all 3 in" in page
        forged = httpx.post(f"{base}/delivery/replay", data=form, timeout=10)
        assert forged.status_code == 403  # no form secret: posted from another site
        secret = re.search(r'name="form_secret" value="([^"]+)"', page)
        assert secret is not None
        done = httpx.post(
            f"{base}/delivery/replay", data=form | {"form_secret": secret[1]}, timeout=10
        )
        assert done.status_code == 200 and "1 delivered, 0 failed" in done.text
        rest = {"store": str(path), "form_secret": secret[1]}  # no id: all the others
        done = httpx.post(f"{base}/delivery/replay", data=rest, timeout=10)
        assert done.status_code == 200 and "2 delivered, 0 failed" in done.text
    store = open_store(str(target))
    try:
        assert [e["id"] for e in store.tail(5)] == ["dl-1", "dl-2", "dl-3"]
    finally:
        store.close()
    dead = DeadLetterStore(path, create=False)
    assert dead.count() == 0
    dead.close()


@pytest.mark.parametrize(
    ("names", "where", "message"),
    [
        (["["], [], "opens '['"),
        (["a", " , "], ["user_id"], "is not KEY=VALUE"),
        ([], ["=7"], "is not KEY=VALUE"),
        ([], ['data."x"=1'], "without quotes"),
    ],
)
def test_bad_filters_are_refused_with_what_to_write(
    names: list[str], where: list[str], message: str
) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        parse_filter(names, where)


def test_the_live_predicate_agrees_with_the_store(filled: Filled) -> None:
    filled.emit("odd.types", {"flag": True, "n": 7, "s": "7", "none": None}, user_id="7")
    cases = [
        ([], ["user_id=7"]),
        (["video.*"], []),
        (["*.viewed", "video.play?d"], []),
        ([], ["data.flag=true"]),
        ([], ["data.n=7"]),
        ([], ["data.s=7"]),
        ([], ["data.none=null"]),
        ([], ["data.video_id=v1", "context.user_id=8"]),
        (["[pv]*"], []),
    ]
    store = open_store(filled.location)
    try:
        everything = store.query(parse_filter([], []).query(limit=None))
        for names, where in cases:
            selected = parse_filter(names, where)
            from_store = {e["id"] for e in store.query(selected.query(limit=None))}
            from_feed = {e["id"] for e in everything if selected.matches(e)}
            assert from_feed == from_store, (names, where)
            assert from_store or names == ["[pv]*"]
    finally:
        store.close()


def test_chart_queries_read_the_index_not_the_table(tmp_path: Path) -> None:
    from eventtracking.backends.sqlite import SQLiteBackend
    from eventtracking.console import charts
    from eventtracking.console.sql import SQLiteDialect
    from eventtracking.store.sqlite import SQLiteStore

    SQLiteBackend(tmp_path / "events.db").close()
    store = SQLiteStore(tmp_path / "events.db", create=False)
    dialect = SQLiteDialect(store)
    statements: list[tuple[str, list[Any]]] = []
    real = dialect._read

    def recording(sql: str, params: list[Any]) -> list[Any]:
        statements.append((sql, params))
        return real(sql, params)

    dialect._read = recording
    window = charts.choose_window("1h", None, None, datetime.now(UTC))
    selected = parse_filter([], ["user_id=7"])
    charts.series(dialect, selected, window)
    charts.top_values(dialect, selected, window, "context", "user_id")
    try:
        assert len(statements) == 2
        for sql, params in statements:
            plan = " ".join(row[-1] for row in store._read(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "USING" in plan and f"INDEX {store.layout.index}" in plan, plan
            assert f"SCAN {store.layout.table}" not in plan, plan
    finally:
        store.close()


def test_delivery_health_shows_what_the_workers_report(filled: Filled, tmp_path: Path) -> None:
    from eventtracking.delivery.metrics import DeliveryMetrics, metrics_file, write_metrics_file

    journal = tmp_path / "journal"
    journal.mkdir()
    metrics = DeliveryMetrics("warehouse")
    metrics.record_delivery([{"name": "a"}] * 40)
    metrics.count("retried", 6)
    metrics.count_drop("queue_full", 3)
    metrics.count_drop("disk_full", 2)
    snapshot = metrics.snapshot(
        mode="buffered", pid=os.getpid(), updated=time.time(), circuit="open", queue_depth=17
    )
    snapshot["circuit_open"] = True
    write_metrics_file(metrics_file(journal), snapshot)
    dead = DeadLetterStore(journal / "dead-letters.db")
    dead.add("warehouse", [{"name": "x"}, {"name": "y"}], "HTTP 400", 1, time.time(), time.time())
    dead.close()
    with console_over(filled.location, journal_dir=journal) as console, serve(console) as base:
        page = get(f"{base}/delivery").text
        text = get(f"{base}/metrics").text
    cards = dict(re.findall(r'data-metric="(\w+)"><b>(\d+)</b>', page))
    assert cards == {
        "queue_depth": "17",
        "delivered": "40",
        "retried": "6",
        "dropped": "5",
        "dead_letters": "2",
    }
    assert "disk_full: 2, queue_full: 3" in page and 'data-backend="warehouse"' in page
    assert page.count("data-letter=") == 2 and "HTTP 400" in page
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    who = (("backend", "warehouse"), ("pid", str(os.getpid())))
    assert samples[("eventtracking_delivery_delivered_total", who)] == 40
    assert samples[("eventtracking_delivery_retried_total", who)] == 6
    assert samples[("eventtracking_delivery_queue_depth", who)] == 17
    assert samples[("eventtracking_delivery_circuit_open", who)] == 1
    dropped = tuple(sorted((*who, ("reason", "queue_full"))))
    assert samples[("eventtracking_delivery_dropped_total", dropped)] == 3
    assert samples[("eventtracking_dead_letters", (("backend", "warehouse"),))] == 2


def test_the_live_history_reads_the_time_index_first(tmp_path: Path) -> None:
    from eventtracking.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(tmp_path / "events.db")
    now = datetime.now(UTC)
    backend.send_batch(
        [
            {"id": f"e{i}", "name": f"n{i % 3}", "timestamp": now - timedelta(seconds=i)}
            for i in range(150)
        ]
    )
    backend.close()
    with console_over(str(tmp_path / "events.db")) as console:
        statements: list[tuple[str, list[Any]]] = []
        real = console.store._read  # type: ignore[attr-defined]

        def recording(sql: str, params: list[Any]) -> list[Any]:
            statements.append((sql, params))
            return real(sql, params)

        console.store._read = recording  # type: ignore[attr-defined]
        reply = console.events("", {"limit": ["100"]})
        plans = [
            " ".join(row[-1] for row in real(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in statements
        ]
    events = json.loads(reply.body)["events"]
    assert [e["id"] for e in events] == [f"e{i}" for i in range(100)]
    assert plans and not [plan for plan in plans if "SCAN events" in plan], plans


def test_a_browser_back_from_an_earlier_console_starts_at_the_new_feed(filled: Filled) -> None:
    with console_over(filled.location) as console:
        selected, position = console.stream_start({}, "5000")
        assert position == console.feed.position == 0
        filled.emit("after.restart", {})
        deadline = time.monotonic() + 5
        text = ""
        while "after.restart" not in text and time.monotonic() < deadline:
            console.feed.wait(position, 0.2)
            chunk, position = console.stream_chunk(selected, position)
            text += chunk
        assert '"name":"after.restart"' in text
        with pytest.raises(FilterError, match="whole number"):
            console.stream_start({"after": ["x"]}, None)


def test_top_values_read_the_same_from_every_store(filled: Filled) -> None:
    for value in (True, None, 7, "7", 1.5, "x", False):
        filled.emit("typed.value", {"v": value})
    with console_over(filled.location) as console:
        body = json.loads(console.charts_json("", {"range": ["1h"], "field": ["data.v"]}).body)
    assert dict(body["top_values"]) == {"7": 2, "true": 1, "false": 1, "1.5": 1, "x": 1}


def test_a_reader_far_behind_skips_ahead_and_is_told_how_many_it_missed(tmp_path: Path) -> None:
    from eventtracking.backends.sqlite import SQLiteBackend
    from eventtracking.console.live import LiveFeed
    from eventtracking.console.stream import Describer, sse_chunk

    path = str(tmp_path / "events.db")
    backend = SQLiteBackend(path)
    feed = LiveFeed(lambda: open_store(path), capacity=3, poll_interval=0.05)
    feed.start()
    try:
        backend.send_batch([{"id": f"e{i}", "name": "n", "data": {}} for i in range(5)])
        deadline = time.monotonic() + 5
        while feed.position < 5 and time.monotonic() < deadline:
            feed.wait(feed.position, 0.2)
        items, missed = feed.after(0)
        assert [pos for pos, _ in items] == [3, 4, 5] and missed == 2
        assert [event["id"] for _, event in items] == ["e2", "e3", "e4"]
        text, position = sse_chunk(feed, Describer(lambda _: None), parse_filter([], []), 0)
        assert text.startswith("event: missed\ndata: 2\n\n") and position == 5
        assert feed.after(5) == ([], 0)
    finally:
        feed.close()
        backend.close()


def test_hostile_names_and_values_are_shown_as_text(filled: Filled) -> None:
    hostile = '<script>alert("x")</script>'
    filled.emit(hostile, {"v": hostile}, user_id=hostile)
    with console_over(filled.location) as console, serve(console) as base:
        pages = [
            get(f"{base}/catalogue").text,
            get(f"{base}/charts", params={"range": "1h", "field": "data.v"}).text,
            get(f"{base}/", params={"where": f"user_id={hostile}"}).text,
        ]
    for page in pages:
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
