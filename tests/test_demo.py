"""The demo workload: the README example, the simulated LMS and `DemoRun` on a real store."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from eventtracking import StoreError, ThreadLocalContextLocator, Tracker
from eventtracking.cli.demo import (
    COURSES,
    HOST,
    DemoRun,
    SimulatedClock,
    run_readme_example,
    simulate,
)
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.testing import InMemoryBackend

END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OPEN_EDX_FIELDS = {"user_id", "username", "session", "ip", "agent", "accept_language", "host"}
OPEN_EDX_FIELDS |= {"path", "referer"}


def run_workload(
    events: int, seed: int, end: datetime = END
) -> tuple[list[dict[str, Any]], Counter[str], Tracker]:
    backend = InMemoryBackend()
    clock = SimulatedClock()
    tracker = Tracker({"mem": backend}, processors=[clock], envelope="full")
    counts = simulate(tracker, clock, events, seed, end=end)
    return backend.events, counts, tracker


def comparable(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["name"], e["timestamp"], e["data"], e["context"]) for e in events]


def test_readme_example_gives_the_readme_contexts() -> None:
    backend = InMemoryBackend()
    tracker = Tracker({"mem": backend})
    run_readme_example(tracker)
    assert [(e["name"], e["context"], e["data"]) for e in backend.events] == [
        ("navigation.request", {"user_id": 10938}, {"url": "http://www.edx.org/some/path/1"}),
        (
            "navigation.request",
            {"user_id": 11111, "session_id": "2987lkjdyoioey"},
            {"url": "http://www.edx.org/some/path/2"},
        ),
        ("navigation.request", {"user_id": 10938}, {"url": "http://www.edx.org/some/path/3"}),
    ]
    # As in the README, the outer context stays entered.
    assert tracker.resolve_context() == {"user_id": 10938}


def test_simulate_emits_exactly_the_requested_events_in_time_order() -> None:
    events, counts, tracker = run_workload(700, seed=3)
    assert len(events) == 700
    assert sum(counts.values()) == 700
    assert counts == Counter(e["name"] for e in events)
    times = [e["timestamp"] for e in events]
    assert times == sorted(times)
    assert all(END - timedelta(hours=24) <= t < END for t in times)
    # Every context the workload entered is left again.
    assert tracker.resolve_context() == {}


def test_simulate_is_realistic() -> None:
    events, counts, _ = run_workload(2000, seed=11)
    assert {"navigation.request", "edx.video.played", "edx.video.paused", "problem_check"} <= set(
        counts
    )
    assert len(counts) >= 7
    assert len({e["context"]["user_id"] for e in events}) >= 5
    assert len({e["context"]["session"] for e in events}) >= 20
    courses = dict(COURSES)
    for event in events:
        context = event["context"]
        assert set(context) >= OPEN_EDX_FIELDS
        assert context["user_id"] not in (10938, 11111)
        if "course_id" in context:
            # The nested page context sits inside the request context.
            assert context["org_id"] == courses[context["course_id"]]
            assert context["path"].startswith(f"/courses/{context['course_id']}/")
        if event["name"] == "navigation.request":
            assert event["data"]["url"] == f"https://{HOST}{context['path']}"
        if event["name"] == "problem_check":
            data = event["data"]
            assert data["success"] == (
                "correct" if data["grade"] == data["max_grade"] else "incorrect"
            )
    # Busy afternoons and quiet nights: the hours are not all alike.
    per_hour = Counter(e["timestamp"].hour for e in events)
    assert max(per_hour.values()) > 3 * min(per_hour.get(h, 0) for h in range(24))


def test_overlapping_sessions_never_mix_contexts() -> None:
    events, _, _ = run_workload(3000, seed=5)
    owner: dict[str, tuple[Any, ...]] = {}
    for event in events:
        context = event["context"]
        who = (context["user_id"], context["username"], context["ip"], context["agent"])
        assert owner.setdefault(context["session"], who) == who
    # Sessions really do overlap: the stream switches between them.
    sessions = [e["context"]["session"] for e in events]
    switches = sum(1 for a, b in pairwise(sessions) if a != b)
    assert switches > len(set(sessions))


def test_simulate_is_deterministic_with_the_seed() -> None:
    first, _, _ = run_workload(400, seed=42)
    second, _, _ = run_workload(400, seed=42)
    other, _, _ = run_workload(400, seed=43)
    assert comparable(first) == comparable(second)
    assert [e["id"] for e in first] != [e["id"] for e in second]
    assert comparable(first) != comparable(other)


def test_simulate_treats_a_naive_end_as_utc() -> None:
    aware, _, _ = run_workload(50, seed=1)
    naive, _, _ = run_workload(50, seed=1, end=END.replace(tzinfo=None))
    assert comparable(aware) == comparable(naive)


def test_simulate_reports_progress() -> None:
    clock = SimulatedClock()
    tracker = Tracker({"mem": InMemoryBackend()}, processors=[clock])
    steps: list[int] = []
    simulate(tracker, clock, 450, seed=2, end=END, progress=steps.append)
    assert sum(steps) == 450
    assert all(step > 0 for step in steps)


def test_simulate_with_zero_events_emits_nothing() -> None:
    events, counts, _ = run_workload(0, seed=1)
    assert events == []
    assert counts == Counter()


def test_simulate_rejects_bad_arguments() -> None:
    clock = SimulatedClock()
    tracker = Tracker({"mem": InMemoryBackend()}, processors=[clock])
    with pytest.raises(ValueError, match="events"):
        simulate(tracker, clock, -1, seed=1)
    threaded = Tracker({"mem": InMemoryBackend()}, ThreadLocalContextLocator(), [clock])
    with pytest.raises(ValueError, match="DefaultContextLocator"):
        simulate(threaded, clock, 10, seed=1)


def test_simulated_clock_rewrites_timestamps_only_when_set() -> None:
    clock = SimulatedClock()
    event: dict[str, Any] = {"name": "a", "timestamp": END}
    assert clock(dict(event))["timestamp"] == END
    clock.now = END - timedelta(hours=3)
    assert clock(dict(event))["timestamp"] == END - timedelta(hours=3)


def test_demo_run_writes_everything_to_the_store(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "demo.db"
    with DemoRun(path) as run:
        readme = run.readme_example()
        counts = run.simulate(250, seed=9)
    assert [e["context"] for e in readme] == [
        {"user_id": 10938},
        {"user_id": 11111, "session_id": "2987lkjdyoioey"},
        {"user_id": 10938},
    ]
    store = SQLiteStore(path, create=False)
    try:
        assert store.count(Query(limit=None)) == 253
        assert dict(store.counts_by_name()) == counts + Counter({"navigation.request": 3})
        stored = store.query(Query(context=(("user_id", "10938"),), limit=None))
        assert [e["id"] for e in stored] == [readme[0]["id"], readme[2]["id"]]
    finally:
        store.close()

    # A second run on the same store adds its events (new ids).
    with DemoRun(path) as run:
        run.readme_example()
        run.simulate(100, seed=9)
    store = SQLiteStore(path, create=False)
    try:
        assert store.count(Query(limit=None)) == 253 + 103
    finally:
        store.close()


def test_demo_run_refuses_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some notes\n" * 50)
    with pytest.raises(StoreError, match="not a readable event store"):
        DemoRun(path)
