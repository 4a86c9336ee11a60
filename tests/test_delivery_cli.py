"""``eventtracking deadletters``, ``replay`` and ``stats --delivery`` on real files."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from delivery_support import event, wait_for
from eventtracking.cli import cli
from eventtracking.delivery import DeadLetterStore, DeliveryBackend, RetryPolicy
from eventtracking.delivery import replay as replay_module
from eventtracking.delivery.replay import Replayer, read_events
from eventtracking.serialization import dumps
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore, row_for
from eventtracking.testing import FakeClock, RecordingBackend, RejectingBackend

REJECTS = json.dumps(
    {
        "ENGINE": "eventtracking.testing.RejectingBackend",
        "OPTIONS": {"message": "HTTP 422: schema mismatch"},
    }
)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def stored(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(row[0] for row in db.execute("SELECT id FROM events"))


@pytest.fixture
def letters(tmp_path: Path) -> Path:
    """A dead-letter store filled by a real delivery backend: 3 rejected events of 2 names."""
    backend = RejectingBackend(lambda e: e["data"]["n"] in (1, 2, 3), message="HTTP 400: bad")
    delivery = DeliveryBackend(
        backend, name="http", mode="sync", dead_letters=tmp_path / "dead-letters.db"
    )
    for n in range(5):
        delivery.send(event(n, name="video.played" if n == 3 else "page.viewed"))
    delivery.close()
    return tmp_path / "dead-letters.db"


# -- deadletters ------------------------------------------------------------------------------


def test_list_shows_each_dead_letter_with_its_reason(letters: Path) -> None:
    result = invoke("deadletters", "list", "--dead-letters", str(letters))
    assert result.exit_code == 0, result.output
    assert result.output.count("page.viewed") == 2 and "video.played" in result.output
    assert "HTTP 400" in result.output and "3 of 3 dead letters" in result.output


def test_list_filters_and_json(letters: Path) -> None:
    result = invoke(
        "deadletters", "list", "--dead-letters", str(letters.parent), "--name", "video.*", "--json"
    )
    [row] = [json.loads(line) for line in result.output.splitlines()]
    assert row["name"] == "video.played" and row["backend"] == "http" and row["attempts"] == 1
    none = invoke("deadletters", "list", "--dead-letters", str(letters), "--backend", "nope")
    assert none.exit_code == 0 and "No dead letters match" in none.output


def test_show_prints_the_event(letters: Path) -> None:
    result = invoke("deadletters", "show", "--dead-letters", str(letters), "1")
    shown = json.loads(result.output)
    assert shown["event"]["id"] == "ev-00000001" and shown["reason"].startswith("TerminalError")
    missing = invoke("deadletters", "show", "--dead-letters", str(letters), "99")
    assert missing.exit_code == 1 and "no dead letter 99" in missing.output


def test_replay_sends_and_removes_them(letters: Path, tmp_path: Path) -> None:
    dry = invoke("deadletters", "replay", "--dead-letters", str(letters), "--to", "x", "--dry-run")
    assert "would send 3 dead letter(s)" in dry.output
    target = tmp_path / "events.db"
    result = invoke(
        "deadletters", "replay", "--dead-letters", str(letters), "--to", str(target),
        "--name", "page.*",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert stored(target) == ["ev-00000001", "ev-00000002"]
    store = DeadLetterStore(letters, create=False)
    assert [letter.name for letter in store.select()] == ["video.played"]
    store.close()


def test_replay_to_a_rejecting_target_keeps_them_and_counts_the_attempt(letters: Path) -> None:
    result = invoke("deadletters", "replay", "--dead-letters", str(letters), "--to", REJECTS)
    assert result.exit_code == 1 and "sent 0 dead letter(s)" in result.output
    store = DeadLetterStore(letters, create=False)
    kept = store.select()
    store.close()
    assert len(kept) == 3 and {letter.attempts for letter in kept} == {2}
    assert all("HTTP 422" in letter.reason for letter in kept)


def test_a_missing_dead_letter_store_is_one_line(tmp_path: Path) -> None:
    result = invoke("deadletters", "list", "--dead-letters", str(tmp_path / "none.db"))
    assert result.exit_code == 1 and "no dead-letter store here" in result.output


# -- replay ---------------------------------------------------------------------------------------


def fill_store(path: Path, n: int, start: datetime, step: timedelta) -> None:
    store = SQLiteStore(path)
    rows = []
    for i in range(n):
        e = event(i, name="video.played" if i % 3 == 0 else "page.viewed")
        e["timestamp"] = start + step * i
        rows.append(row_for(e))
    store.write(rows)
    store.close()


def test_replay_from_a_store_with_filters(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fill_store(tmp_path / "src.db", 30, start, timedelta(minutes=1))
    target = tmp_path / "dst.db"
    args = ["--from", str(tmp_path / "src.db"), "--to", str(target), "--name", "video.*"]
    window = ["--since", "2026-01-01T00:05", "--until", "2026-01-01T00:20"]
    dry = invoke("replay", *args, *window, "--dry-run")
    assert "would send 5 event(s)" in dry.output and not target.exists()
    result = invoke("replay", *args, *window, "--rate", "1000")
    assert result.exit_code == 0 and "sent 5 event(s)" in result.output
    assert stored(target) == [f"ev-{n:08d}" for n in (6, 9, 12, 15, 18)]


def test_replay_copies_a_version_2_store_into_the_new_layout(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:  # the layout releases before schema version 3 made
        db.executescript(
            "CREATE TABLE et_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO et_meta VALUES ('schema_version', '2');"
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, name TEXT NOT NULL,"
            " ts INTEGER NOT NULL, body BLOB NOT NULL);"
            "CREATE UNIQUE INDEX events_name_ts_id ON events (name, ts, id);"
        )
    fill_store(old, 12, datetime(2026, 1, 1, tzinfo=UTC), timedelta(seconds=1))
    new = tmp_path / "new.db"
    for _ in range(2):  # a second copy adds nothing
        result = invoke("replay", "--from", str(old), "--to", str(new))
        assert result.exit_code == 0 and "sent 12 event(s)" in result.output
    with sqlite3.connect(new) as db:
        assert db.execute("SELECT value FROM et_meta WHERE key='schema_version'").fetchone() == (
            "3",
        )
    assert stored(new) == stored(old) == [f"ev-{n:08d}" for n in range(12)]
    assert SQLiteStore(new).query(Query(limit=None)) == SQLiteStore(old).query(Query(limit=None))


def test_replay_from_json_lines_skips_what_is_not_an_event(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    lines = [dumps(event(n)).decode() for n in range(4)]
    source.write_text("\n".join([*lines[:2], "not json", *lines[2:]]) + "\n")
    target = tmp_path / "dst.db"
    result = invoke("replay", "--from", str(source), "--to", str(target))
    assert result.exit_code == 0, result.output
    assert "1 line(s) are not JSON events" in result.output
    assert stored(target) == [f"ev-{n:08d}" for n in range(4)]


def test_replay_to_a_rejecting_target_fails_with_the_reason(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(dumps(event(1)).decode() + "\n")
    result = invoke("replay", "--from", str(source), "--to", REJECTS)
    assert result.exit_code == 1 and "1 failed: TerminalError: HTTP 422" in result.output


def test_replay_with_a_bad_target_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(dumps(event(1)).decode() + "\n")
    result = invoke("replay", "--from", str(source), "--to", '{"ENGINE": "no.such.Thing"}')
    assert result.exit_code == 1 and "--to" in result.output and "cannot import" in result.output


def test_store_pages_never_repeat_or_skip_events_sharing_a_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "PAGE", 7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fill_store(tmp_path / "src.db", 60, start, timedelta(0))  # all at one instant
    fill_store(tmp_path / "more.db", 40, start, timedelta(seconds=1))
    same = [e["id"] for e in read_events([str(tmp_path / "src.db")])]
    spread = [e["id"] for e in read_events([str(tmp_path / "more.db")])]
    assert sorted(same) == [f"ev-{n:08d}" for n in range(60)]
    assert spread == [f"ev-{n:08d}" for n in range(40)]


def test_replayer_rate_limit_on_a_fake_clock() -> None:
    clock = FakeClock()
    backend = RecordingBackend()
    replayer = Replayer(
        backend, retry=RetryPolicy(), batch_size=500, rate=100, clock=clock, sleep=clock.sleep
    )
    result = replayer.run(event(n) for n in range(250))
    assert result.sent == 250 and [len(b) for b in backend.batches] == [100, 100, 50]
    assert sum(clock.sleeps) == pytest.approx(2.0)  # 250 events at 100/s: 2 s of waiting


# -- stats --delivery ------------------------------------------------------------------------


def test_stats_delivery_reads_the_metrics_files(tmp_path: Path) -> None:
    journal = tmp_path / "journal" / "store"
    delivery = DeliveryBackend(
        RecordingBackend(), name="store", journal_dir=journal, metrics_interval=0.01
    )
    for n in range(7):
        delivery.send(event(n))
    assert delivery.flush(10)
    deadline = time.monotonic() + 20
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = invoke("stats", "--delivery", "--journal-dir", str(tmp_path / "journal"), "--json")
        report = json.loads(result.output)
        if report["workers"] and report["workers"][0]["delivered"] == 7:
            break
        time.sleep(0.01)
    [worker] = report["workers"]
    assert worker["name"] == "store" and worker["alive"] and worker["emitted"] == 7
    table = invoke("stats", "--delivery", "--journal-dir", str(tmp_path / "journal"))
    assert "store" in table.output and "journal on disk" in table.output
    delivery.close()


def test_stats_delivery_reads_the_default_root_or_the_given_directory(tmp_path: Path) -> None:
    # The root comes from $EVENTTRACKING_JOURNAL_DIR (set for every test in conftest).
    delivery = DeliveryBackend(RecordingBackend(), name="rooted", metrics_interval=0.01)
    delivery.send(event(1))
    assert delivery.flush(10)
    assert wait_for(lambda: "rooted" in invoke("stats", "--delivery", "--json").output)
    delivery.close()
    missing = invoke("stats", "--delivery", "--journal-dir", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "no such journal directory" in missing.output
