"""The `eventtracking` command: demo, query, tail and stats on real stores, and every error."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventtracking.cli import cli, main
from eventtracking.cli.times import parse_time
from eventtracking.store.sqlite import SQLiteStore, row_for

N_EVENTS = 300
README_URLS = [f"http://www.edx.org/some/path/{i}" for i in (1, 2, 3)]
WIDE = {"COLUMNS": "250"}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env={**WIDE, **(env or {})})
    # Whatever happens, the command ends through click, never with a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def events_of(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def when(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store filled by one `eventtracking demo` run (read-only for the tests)."""
    path = str(tmp_path_factory.mktemp("cli") / "events.db")
    result = CliRunner().invoke(
        cli, ["demo", "--store", path, "--events", str(N_EVENTS), "--seed", "4"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def everything(store: str) -> list[dict[str, Any]]:
    return events_of(invoke("query", "--store", store, "--limit", "0", "--json"))


# -- demo -------------------------------------------------------------------------


def test_demo_prints_the_readme_events_and_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    result = invoke("demo", "--store", str(path), "--events", "120", "--seed", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    readme = [line for line in lines if "www.edx.org/some/path" in line]
    assert len(readme) == 3
    assert '{"user_id": 10938}' in readme[0] and "path/1" in readme[0]
    assert '{"user_id": 11111, "session_id": "2987lkjdyoioey"}' in readme[1]
    assert "path/2" in readme[1]
    assert '{"user_id": 10938}' in readme[2] and "path/3" in readme[2]
    assert str(path.resolve()) in result.stdout
    total = next(line for line in lines if "total" in line)
    assert [word for word in total.split() if word.isdigit()] == ["123", "123"]  # run, store
    assert "time range (UTC)" in result.stdout
    assert "eventtracking query" in result.stdout and "--name 'edx.video.*'" in result.stdout


def test_demo_twice_on_one_store_adds_events(tmp_path: Path) -> None:
    path = str(tmp_path / "again.db")
    for _ in range(2):
        assert invoke("demo", "--store", path, "--events", "50", "--seed", "7").exit_code == 0
    stats = json.loads(invoke("stats", "--store", path, "--json").stdout)
    assert stats["total"] == 2 * 53
    readme = events_of(invoke("query", "--store", path, "--context", "user_id=10938", "--json"))
    assert len(readme) == 4
    assert len({event["id"] for event in readme}) == 4


def test_demo_uses_the_environment_and_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_store = tmp_path / "from-env.db"
    result = invoke("demo", "--events", "20", env={"EVENTTRACKING_STORE": str(env_store)})
    assert result.exit_code == 0, result.output
    assert env_store.is_file()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTTRACKING_STORE", raising=False)
    result = invoke("demo", "--events", "20")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "events.db").is_file()


def test_demo_refuses_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes\n" * 100)
    result = invoke("demo", "--store", str(path), "--events", "10")
    assert result.exit_code == 1
    assert "not a readable event store" in result.stderr
    assert path.read_text() == "these are my notes\n" * 100
    # A store whose directory cannot be created (its parent is a file).
    result = invoke("demo", "--store", str(path / "events.db"), "--events", "10")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path / 'events.db'}: cannot create")


# -- query ------------------------------------------------------------------------


def test_the_store_holds_the_readme_events(store: str, everything: list[dict[str, Any]]) -> None:
    assert len(everything) == N_EVENTS + 3
    readme = [event for event in everything if event["data"].get("url") in README_URLS]
    readme.sort(key=lambda event: event["data"]["url"])
    assert [event["context"] for event in readme] == [
        {"user_id": 10938},
        {"user_id": 11111, "session_id": "2987lkjdyoioey"},
        {"user_id": 10938},
    ]


def test_query_json_prints_events_as_stored(store: str) -> None:
    with sqlite3.connect(store) as db:
        stored = [json.loads(body) for (body,) in db.execute("SELECT body FROM events")]
    db.close()
    printed = events_of(invoke("query", "--store", store, "--limit", "0", "--json"))
    assert sorted(printed, key=lambda e: e["id"]) == sorted(stored, key=lambda e: e["id"])


def test_query_default_order_and_limit(everything: list[dict[str, Any]], store: str) -> None:
    assert [when(e) for e in everything] == sorted(when(e) for e in everything)
    first = events_of(invoke("query", "--store", store, "--json"))
    assert [e["id"] for e in first] == [e["id"] for e in everything[:20]]
    newest = events_of(invoke("query", "--store", store, "--newest", "--limit", "5", "--json"))
    assert [when(e) for e in newest] == sorted((when(e) for e in everything), reverse=True)[:5]


def test_query_context_matches_the_integer_user_id(store: str) -> None:
    found = events_of(invoke("query", "--store", store, "--context", "user_id=10938", "--json"))
    assert [e["data"]["url"] for e in found] == [README_URLS[0], README_URLS[2]]
    assert all(e["context"]["user_id"] == 10938 for e in found)
    assert all(isinstance(e["context"]["user_id"], int) for e in found)
    inner = events_of(
        invoke("query", "--store", store, "--context", "session_id=2987lkjdyoioey", "--json")
    )
    assert [(e["context"]["user_id"], e["data"]["url"]) for e in inner] == [(11111, README_URLS[1])]


def test_query_filters_by_name_glob(everything: list[dict[str, Any]], store: str) -> None:
    args = ["query", "--store", store, "--limit", "0", "--json"]
    videos = events_of(invoke(*args, "--name", "edx.video.*"))
    expected = [e["id"] for e in everything if e["name"].startswith("edx.video.")]
    assert expected and [e["id"] for e in videos] == expected
    several = events_of(invoke(*args, "--name", "problem_check", "--name", "showanswer"))
    assert {e["name"] for e in several} == {"problem_check", "showanswer"}
    assert len(several) == sum(e["name"] in ("problem_check", "showanswer") for e in everything)


def test_query_filters_combine(everything: list[dict[str, Any]], store: str) -> None:
    course = "course-v1:edX+DemoX+Demo_Course"
    found = events_of(
        invoke(
            *("query", "--store", store, "--limit", "0", "--json", "--name", "problem_check"),
            *("--data", "success=correct", "--context", f"course_id={course}"),
        )
    )
    expected = [
        e["id"]
        for e in everything
        if e["name"] == "problem_check"
        and e["data"]["success"] == "correct"
        and e["context"].get("course_id") == course
    ]
    assert expected and [e["id"] for e in found] == expected


def test_query_data_matches_numbers(everything: list[dict[str, Any]], store: str) -> None:
    found = events_of(
        invoke("query", "--store", store, "--limit", "0", "--json", "--data", "attempts=2")
    )
    assert found and all(e["data"]["attempts"] == 2 for e in found)
    assert len(found) == sum(e["data"].get("attempts") == 2 for e in everything)


def test_query_time_filters_split_the_store(everything: list[dict[str, Any]], store: str) -> None:
    middle = when(everything[len(everything) // 2])
    iso = middle.strftime("%Y-%m-%dT%H:%M:%S.%f")  # naive: UTC
    args = ["query", "--store", store, "--limit", "0", "--json"]
    after = events_of(invoke(*args, "--since", iso))
    before = events_of(invoke(*args, "--until", iso))
    assert after and before
    assert all(when(e) >= middle for e in after)
    assert all(when(e) < middle for e in before)
    assert len(after) + len(before) == len(everything)
    start = when(everything[10])
    both = events_of(invoke(*args, "--since", start.isoformat(), "--until", iso))
    assert [e["id"] for e in both] == [e["id"] for e in everything if start <= when(e) < middle]


def test_query_relative_times(everything: list[dict[str, Any]], store: str) -> None:
    args = ["query", "--store", store, "--limit", "0", "--json"]
    recent = events_of(invoke(*args, "--since", "90m"))
    older = events_of(invoke(*args, "--until", "12h"))
    now = datetime.now(UTC)
    assert all(when(e) >= now - timedelta(minutes=91) for e in recent)
    assert all(when(e) < now - timedelta(hours=12) for e in older)
    # The README events are from just now; half the simulated day is older than 12h.
    assert {e["data"].get("url") for e in recent} >= set(README_URLS)
    assert 0 < len(older) < len(everything)
    assert events_of(invoke(*args, "--since", "now")) == []
    assert len(events_of(invoke(*args, "--since", "2d", "--until", "now"))) == len(everything)


def test_query_table(store: str) -> None:
    result = invoke("query", "--store", store, "--context", "user_id=10938")
    assert result.exit_code == 0
    assert result.stdout.count("navigation.request") == 2
    assert "user_id=10938" in result.stdout
    assert "url=http://www.edx.org/some/path/1" in result.stdout
    assert "2 of 2 matching events" in result.stdout
    limited = invoke("query", "--store", store, "--limit", "3")
    assert f"3 of {N_EVENTS + 3} matching events (--limit 0 shows all)" in limited.stdout


def test_query_without_matches(store: str) -> None:
    result = invoke("query", "--store", store, "--name", "no.such.event")
    assert result.exit_code == 0
    assert "No events match" in result.stderr
    assert invoke("query", "--store", store, "--name", "nope", "--json").stdout == ""


def test_event_text_is_printed_literally(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    writer = SQLiteStore(path)
    odd = {"id": "1", "name": "[bold]odd[/]", "timestamp": "2026-11-25T10:00:00", "data": {}}
    odd["context"] = {"user_id": "[/]"}
    writer.write([row_for(odd)])
    writer.close()
    for command in ("query", "tail", "stats"):
        result = invoke(command, "--store", str(path))
        assert result.exit_code == 0, result.output
        assert "[bold]odd[/]" in result.stdout
    # A naive stored timestamp is UTC.
    assert "2026-11-25 10:00:00" in invoke("tail", "--store", str(path)).stdout
    assert "user_id=[/]" in invoke("query", "--store", str(path)).stdout


# -- tail -------------------------------------------------------------------------


def test_tail_shows_the_last_events_stored(everything: list[dict[str, Any]], store: str) -> None:
    # The README events were stored first; the workload followed in time order.
    readme_ids = {e["id"] for e in everything if e["data"].get("url") in README_URLS}
    workload = [e for e in everything if e["id"] not in readme_ids]
    tailed = events_of(invoke("tail", "--store", store, "-n", "4", "--json"))
    assert [e["id"] for e in tailed] == [e["id"] for e in workload[-4:]]
    text = invoke("tail", "--store", store, "--lines", "4")
    lines = text.stdout.splitlines()
    assert len(lines) == 4
    for line, event in zip(lines, tailed, strict=True):
        assert event["name"] in line
        assert f"user_id={event['context']['user_id']}" in line


def test_tail_follow_prints_new_events_until_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "live.db"
    writer = SQLiteStore(path)
    old = [
        {"id": f"old-{i}", "name": f"old.{i}", "timestamp": "2026-11-25T10:00:00"} for i in range(3)
    ]
    writer.write([row_for(event) for event in old])
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            new = [{"id": f"new-{i}", "name": f"new.{i}", "data": {"i": i}} for i in range(2)]
            writer.write([row_for(event) for event in new])
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", nap)
    result = invoke("tail", "--store", str(path), "-n", "2", "-f", "--json", "--interval", "0.25")
    writer.close()
    assert result.exit_code == 0, result.output
    assert [e["name"] for e in events_of(result)] == ["old.1", "old.2", "new.0", "new.1"]
    assert naps == [0.25, 0.25]


def test_tail_follow_zero_lines_prints_only_new_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "live.db"
    writer = SQLiteStore(path)
    writer.write([row_for({"id": f"old-{i}", "name": f"old.{i}"}) for i in range(5)])
    naps = 0

    def nap(seconds: float) -> None:
        nonlocal naps
        naps += 1
        if naps > 1:
            raise KeyboardInterrupt
        writer.write([row_for({"id": "new", "name": "new.event"})])

    monkeypatch.setattr(time, "sleep", nap)
    result = invoke("tail", "--store", str(path), "-n", "0", "-f", "--json")
    writer.close()
    assert [e["name"] for e in events_of(result)] == ["new.event"]


def test_tail_follow_text_and_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "empty.db"
    SQLiteStore(path).close()
    assert invoke("tail", "--store", str(path)).stdout == ""

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupt)
    result = invoke("tail", "--store", str(path), "--follow")
    assert result.exit_code == 0
    assert result.stdout == ""


# -- stats ------------------------------------------------------------------------


def test_stats_json(everything: list[dict[str, Any]], store: str) -> None:
    stats = json.loads(invoke("stats", "--store", store, "--json").stdout)
    assert stats["total"] == N_EVENTS + 3
    assert stats["by_name"] == dict(Counter(e["name"] for e in everything))
    assert list(stats["by_name"].values()) == sorted(stats["by_name"].values(), reverse=True)
    hours = Counter(when(e).strftime("%Y-%m-%dT%H:00") for e in everything)
    assert stats["by_hour"] == dict(sorted(hours.items()))
    assert datetime.fromisoformat(stats["first"]) == min(when(e) for e in everything)
    assert datetime.fromisoformat(stats["last"]) == max(when(e) for e in everything)


def test_stats_tables(everything: list[dict[str, Any]], store: str) -> None:
    result = invoke("stats", "--store", store)
    assert result.exit_code == 0
    assert f"{N_EVENTS + 3} events in {store}" in result.stdout
    assert "per name" in result.stdout and "per hour (UTC)" in result.stdout
    for name, count in Counter(e["name"] for e in everything).items():
        row = next(line for line in result.stdout.splitlines() if f" {name} " in line)
        assert str(count) in row
    newest = max(when(e) for e in everything)
    assert newest.strftime("%Y-%m-%d %H:00") in result.stdout


def test_stats_on_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    SQLiteStore(path).close()
    stats = json.loads(invoke("stats", "--store", str(path), "--json").stdout)
    assert stats == {
        "store": str(path),
        "total": 0,
        "first": None,
        "last": None,
        "by_name": {},
        "by_hour": {},
        "by": "hour",
        "chart": {},
    }
    assert "0 events in" in invoke("stats", "--store", str(path)).stdout


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["query"], ["tail"], ["tail", "-f"], ["stats"]])
def test_a_missing_store_is_a_one_line_error(tmp_path: Path, command: list[str]) -> None:
    result = invoke(*command, "--store", str(tmp_path / "missing.db"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'missing.db'}: no such event store (run `eventtracking demo`?)"
    ]


def test_a_file_that_is_not_a_store_is_a_one_line_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 500)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE things (x)")
    db.close()
    for path, problem in ((text, "not a readable event store"), (other, "no events table")):
        for command in ("query", "tail", "stats"):
            result = invoke(command, "--store", str(path))
            assert result.exit_code == 1
            assert len(result.stderr.strip().splitlines()) == 1
            assert problem in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "user_id"], "'user_id' is not KEY=VALUE"),
        (["--data", "=5"], "'=5' is not KEY=VALUE"),
        (["--since", "yesterday"], "'yesterday' is not a time"),
        (["--until", "2026-13-45"], "'2026-13-45' is not a time"),
        (["--since", "5 fortnights"], "is not a time"),
        (["--since", "1h", "--until", "2h"], "must be before --until"),
        (["--since", "2026-11-25", "--until", "2026-11-25"], "must be before --until"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_bad_options_are_usage_errors(store: str, args: list[str], message: str) -> None:
    result = invoke("query", "--store", store, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_bad_tail_and_demo_options(tmp_path: Path) -> None:
    assert invoke("tail", "--interval", "0").exit_code == 2
    assert invoke("tail", "-n", "-3").exit_code == 2
    assert invoke("demo", "--store", str(tmp_path / "x.db"), "--events", "-5").exit_code == 2
    assert not (tmp_path / "x.db").exists()


# -- times, entry points ------------------------------------------------------------


def test_parse_time() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_time("now", now) == now
    assert parse_time("90m", now) == now - timedelta(minutes=90)
    assert parse_time("2h", now) == now - timedelta(hours=2)
    assert parse_time("3d", now) == now - timedelta(days=3)
    assert parse_time(" 1W ", now) == now - timedelta(weeks=1)
    assert parse_time("30s", now) == now - timedelta(seconds=30)
    assert parse_time("2026-11-25T10:00", now) == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_time("2026-11-25", now) == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_time("2026-11-25T10:00+02:00", now) == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_time("2026-11-25T10:00:00Z", now) == datetime(2026, 11, 25, 10, tzinfo=UTC)
    for bad in ("", "soon", "-2h", "2 hours", "99999999999d", "2026-02-30"):
        with pytest.raises(ValueError, match="is not a time"):
            parse_time(bad, now)


def test_main_is_the_entry_point(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stats", "--store", store, "--json"])
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)["total"] == N_EVENTS + 3
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "--store", store, "--since", "never"])
    assert exit_info.value.code == 2


def test_python_dash_m(store: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventtracking",
            "query",
            "--store",
            store,
            "--json",
            "--limit",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len([json.loads(line) for line in done.stdout.splitlines()]) == 2
    help_text = subprocess.run(
        [sys.executable, "-m", "eventtracking", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("demo", "query", "tail", "stats"):
        assert command in help_text
