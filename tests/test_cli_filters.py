"""query's filter checks, dotted paths and --columns; stats' range, names and --by."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventtracking.cli import cli
from eventtracking.cli.filters import lookup, value_matches
from eventtracking.store.sqlite import SQLiteStore, row_for

WIDE = {"COLUMNS": "250"}
START = datetime(2026, 3, 1, tzinfo=UTC)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=WIDE)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def event(i: int, name: str, hours: float, **data: Any) -> dict[str, Any]:
    return {
        "id": f"e{i:05d}",
        "name": name,
        "timestamp": (START + timedelta(hours=hours)).isoformat(),
        "data": data,
        "context": {"user_id": i % 3, "course": {"org": "MITx" if i % 2 else "edX", "run": i}},
    }


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    """Five days of events, two names, nested data and context, some keys with dots."""
    out = []
    for i in range(2500):
        name = "edx.video.played" if i % 4 else "problem_check"
        data: dict[str, Any] = {"video": {"id": f"v{i % 5}", "pos": i % 7}, "url": f"/p/{i}"}
        if i % 10 == 0:
            data["a.b"] = "dotted"
        out.append(event(i, name, i * 120 / 2500 * 1.0, **data))  # 120 hours
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, events: list[dict[str, Any]]) -> str:
    path = tmp_path_factory.mktemp("filters") / "events.db"
    db = SQLiteStore(path)
    db.write([row_for(e) for e in events])
    db.close()
    return str(path)


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "["], "never closed"),
        (["--name", "edx.[vp"], "never closed"),
        (["--name", ""], "empty name"),
        (["--name", "  "], "empty name"),
        (["--data", "a..b=1"], "empty part"),
        (["--data", ".a=1"], "empty part"),
        (["--context", "user.=1"], "empty part"),
        (["--data", 'a"b=1'], "cannot contain"),
        (["--context", "=1"], "not KEY=VALUE"),
        (["--columns", "user_id"], "not a column"),
        (["--columns", "ctx.user_id,,data.url"], "not a column"),
        (["--columns", "meta.x"], "not a column"),
    ],
)
def test_bad_filters_are_one_line_errors_with_status_2(
    store: str, args: list[str], message: str
) -> None:
    result = invoke("query", "--store", store, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "No events match" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1


def test_a_closed_set_is_a_good_glob(store: str, events: list[dict[str, Any]]) -> None:
    found = json_lines(
        invoke("query", "--store", store, "--name", "[ep]*", "--limit", "0", "--json")
    )
    assert len(found) == len(events)


@pytest.mark.parametrize("newest", [False, True])
def test_dotted_data_paths_match_nested_fields(
    store: str, events: list[dict[str, Any]], newest: bool
) -> None:
    args = ["query", "--store", store, "--data", "video.id=v3", "--data", "video.pos=2", "--json"]
    expected = [e for e in events if e["data"]["video"] == {"id": "v3", "pos": 2}]
    assert len(expected) > 30
    everything = json_lines(invoke(*args, "--limit", "0"))
    assert [e["id"] for e in everything] == [e["id"] for e in expected]
    some = json_lines(invoke(*args, "--limit", "5", *(["--newest"] if newest else [])))
    wanted = expected[::-1][:5] if newest else expected[:5]
    assert [e["id"] for e in some] == [e["id"] for e in wanted]


def test_dotted_paths_combine_with_store_filters_and_count(
    store: str, events: list[dict[str, Any]]
) -> None:
    expected = [
        e
        for e in events
        if e["name"] == "problem_check"
        and e["context"]["course"]["org"] == "edX"
        and e["context"]["user_id"] == 1
    ]
    args = ["query", "--store", store, "--name", "problem_check", "--context", "course.org=edX"]
    args += ["--context", "user_id=1"]
    assert [e["id"] for e in json_lines(invoke(*args, "--limit", "0", "--json"))] == [
        e["id"] for e in expected
    ]
    table = invoke(*args, "--limit", "3")
    assert f"3 of {len(expected)} matching events" in table.stdout


def test_a_key_holding_a_dot_matches_too(store: str, events: list[dict[str, Any]]) -> None:
    found = json_lines(
        invoke("query", "--store", store, "--data", "a.b=dotted", "--limit", "0", "--json")
    )
    assert len(found) == sum(1 for e in events if "a.b" in e["data"]) > 0


def test_nested_numbers_and_missing_paths(store: str) -> None:
    assert json_lines(invoke("query", "--store", store, "--data", "video.pos=6", "--json"))
    result = invoke("query", "--store", store, "--data", "video.nothing=1")
    assert result.exit_code == 0 and "No events match." in result.output


def test_lookup_and_value_rules() -> None:
    assert lookup({"a": {"b": {"c": 1}}}, "a.b.c") == 1
    assert lookup({"a.b": {"c": 2}}, "a.b.c") == 2
    assert value_matches(7, "7") and value_matches(7.5, "7.5") and value_matches("7", "7")
    assert not value_matches(True, "1") and value_matches(True, "true")
    assert value_matches(None, "null") and not value_matches("null", "null")


def test_columns_pick_context_and_data_keys(store: str, events: list[dict[str, Any]]) -> None:
    result = invoke(
        "query",
        "--store",
        store,
        "--columns",
        "ctx.user_id,data.url,ctx.course.org",
        "--limit",
        "3",
    )
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "ctx.user_id" in line)
    assert "data.url" in header and "ctx.course.org" in header and "data " not in header
    for e in events[:3]:
        row = next(line for line in result.stdout.splitlines() if f" {e['data']['url']} " in line)
        assert e["context"]["course"]["org"] in row
    projected = json_lines(
        invoke("query", "--store", store, "--columns", "ctx.user_id,data.video.id", "--json")
    )
    assert projected[1] == {
        "timestamp": events[1]["timestamp"],
        "name": events[1]["name"],
        "ctx.user_id": 1,
        "data.video.id": "v1",
    }


# -- stats --------------------------------------------------------------------------


def stats(*args: str) -> dict[str, Any]:
    result = invoke("stats", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stats_since_until_and_name(store: str, events: list[dict[str, Any]]) -> None:
    since, until = START + timedelta(hours=30), START + timedelta(hours=50)
    chosen = [
        e
        for e in events
        if since <= datetime.fromisoformat(e["timestamp"]) < until and e["name"] == "problem_check"
    ]
    got = stats("--store", store, "--since", since.isoformat(), "--until", until.isoformat(),
                "--name", "problem_*")  # fmt: skip
    assert got["total"] == len(chosen)
    assert got["by_name"] == {"problem_check": len(chosen)}
    assert got["by"] == "hour"
    assert len(got["chart"]) == 20 and sum(got["chart"].values()) == len(chosen)
    assert got["first"] == chosen[0]["timestamp"] and got["last"] == chosen[-1]["timestamp"]


def test_stats_by_day_covers_the_whole_range(store: str, events: list[dict[str, Any]]) -> None:
    days = Counter(datetime.fromisoformat(e["timestamp"]).strftime("%Y-%m-%d") for e in events)
    got = stats("--store", store)
    assert got["by"] == "day"  # 120 hours: more than the 48 charted per hour by default
    assert got["chart"] == dict(sorted(days.items()))
    hours = stats("--store", store, "--by", "hour")
    assert len(hours["chart"]) == 120 and sum(hours["chart"].values()) == len(events)
    text = invoke("stats", "--store", store, "--by", "hour").stdout
    assert "per hour (UTC)" in text
    assert "2026-03-01 00:00" in text and "2026-03-05 23:00" in text  # no longer the last 48 only


def test_stats_table_by_day(store: str) -> None:
    result = invoke("stats", "--store", store, "--by", "day", "--name", "edx.video.*")
    assert result.exit_code == 0, result.output
    assert "per day (UTC)" in result.stdout and "2026-03-03" in result.stdout
    assert "matching events" in result.stdout and "problem_check" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "week"], "'week' is not one of"),
        (["--name", "["], "never closed"),
        (["--since", "2026-03-02", "--until", "2026-03-01"], "must be before"),
        (["--since", "yesterday"], "is not a time"),
    ],
)
def test_bad_stats_options(store: str, args: list[str], message: str) -> None:
    result = invoke("stats", "--store", store, *args)
    assert result.exit_code == 2 and message in result.output


def test_stats_empty_range_is_zero(store: str, tmp_path: Path) -> None:
    got = stats("--store", store, "--since", "2030-01-01", "--until", "2030-01-02")
    assert got["total"] == 0 and sum(got["chart"].values()) == 0
