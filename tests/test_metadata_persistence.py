"""Documentation versions are stored next to the events that refer to them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eventtracking.backends.jsonl import JSONLinesBackend, read_jsonl
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.tracker import Tracker


def documented(tracker: Tracker) -> tuple[str, str, str]:
    v1 = tracker.register("edx.video.played", "Started a video.", {"video_id": "The video."})
    ctx = tracker.register_context("request", "Per request.", {"user_id": "The learner."})
    tracker.enter_context("request", {"user_id": 7})
    tracker.emit("edx.video.played", {"video_id": "a"})
    tracker.emit("edx.video.played", {"video_id": "b"})
    v2 = tracker.register(
        "edx.video.played", "Started a video.", {"video_id": "The video.", "speed": "Speed."}
    )
    tracker.emit("edx.video.played", {"video_id": "c", "speed": 1})
    return v1.id, v2.id, ctx.id


def test_sqlite_store_keeps_each_version_once_and_answers_for_any_event(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with Tracker({"db": SQLiteBackend(path, batch_size=1)}, envelope="full") as tracker:
        v1, v2, ctx = documented(tracker)
    rows = sqlite3.connect(path).execute("SELECT id, kind, name FROM et_types ORDER BY id")
    assert sorted(rows.fetchall()) == sorted(
        [
            (v1, "event", "edx.video.played"),
            (v2, "event", "edx.video.played"),
            (ctx, "context", "request"),
        ]
    )
    store = SQLiteStore(path, create=False)
    events = store.query(Query(limit=None))
    first, last = events[0], events[-1]
    assert first["meta"] == {"type": v1, "contexts": {"request": ctx}}
    described = store.metadata_for(first)
    assert described["type"]["fields"] == {"video_id": {"description": "The video."}}
    assert described["contexts"]["request"]["description"] == "Per request."
    assert store.metadata_for(last)["type"]["id"] == v2
    assert [t["id"] for t in store.types("event")] == [v1, v2]


def test_a_version_is_written_with_the_first_event_even_across_batches(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    backend = DeliveryBackend(SQLiteBackend(path), mode="inline", max_delay=60)
    tracker = Tracker({"db": backend}, envelope="full")
    version = tracker.register("e", "doc", {})
    tracker.emit("e")
    backend.flush(5.0)
    reader = SQLiteStore(path, create=False)
    assert reader.metadata(version.id) is not None
    assert reader.count(Query()) == 1
    tracker.emit("e")
    tracker.close()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM et_types").fetchone() == (1,)


def test_jsonl_files_describe_themselves_even_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with Tracker({"f": JSONLinesBackend(path, rotate_bytes=600)}, envelope="full") as tracker:
        documented(tracker)
    files = sorted(tmp_path.iterdir())
    assert len(files) >= 2
    seen_events = 0
    for file in files:
        events, metadata = read_jsonl(file)
        seen_events += len(events)
        for event in events:  # every event's documentation is in its own file
            assert event["meta"]["type"] in metadata
            for context_id in event["meta"]["contexts"].values():
                assert context_id in metadata
    assert seen_events == 3
    lines = [line for file in files for line in file.read_text().splitlines()]
    assert sum('"metadata"' in line for line in lines) >= 3


def test_jsonl_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with Tracker({"f": JSONLinesBackend(path)}, envelope="full") as tracker:
        tracker.emit("a")
    with open(path, "ab") as handle:
        handle.write(b'{"name": "torn", "da')
    events, metadata = read_jsonl(path)
    assert [e["name"] for e in events] == ["a"] and metadata == {}
