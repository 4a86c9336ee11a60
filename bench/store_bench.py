"""The SQLite store: query speed on a large store, and its size against JSON lines.

Builds (once, cached under bench/out/) a store of N realistic events spread
over 30 days: ten Open edX event names, 20,000 learner sessions with eight
context keys each, data {url, n, position}. Then:

- query/count: one name and one hour in the middle of the 30 days (median of 7);
- size: the store's bytes per event against the same events written as JSON
  lines (`dumps_line`), both measured on disk after the build.

    .venv/bin/python bench/store_bench.py --events 5000000    (make bench-store)

``--baseline OLD.db`` also times the same query on a store of the same events
in another layout (one an older release built), alternating run by run, so the
two medians come from the same minutes of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from eventtracking.event import new_event_id
from eventtracking.serialization import dumps_line
from eventtracking.store import Query
from eventtracking.store.sqlite import SCHEMA_VERSION, SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
QUERY_START = datetime(2024, 3, 1, tzinfo=UTC)
QUERY_SPAN = timedelta(days=30)
QUERY_NAME = "navigation.request"
NAMES = (  # (name, relative frequency); QUERY_NAME is the most frequent, 30%
    ("navigation.request", 30), ("edx.ui.lms.link_clicked", 12), ("edx.video.played", 15),
    ("edx.video.paused", 10), ("problem_check", 10), ("page_close", 7),
    ("edx.grades.problem.submitted", 6), ("edx.forum.thread.created", 4),
    ("edx.course.enrollment.activated", 3), ("edx.bi.user.account.authenticated", 3),
)  # fmt: skip
EVENTS_VERSION = 2  # bump when the generated events change, to rebuild cached stores
SIZE_MAX_RATIO = 1.1
QUERY_MAX_MS = 5.7  # the 5.0.0 store on 5,000,000 events (issue 15)


def generated(n: int) -> Callable[[int], dict[str, Any]]:
    """Event number i of the N, the same for every build (seeded)."""
    rng = random.Random(42)
    courses = [
        f"course-v1:{org}+CS{k}+2024" for org in ("edX", "MITx", "HarvardX") for k in range(8)
    ]
    sessions = [
        {
            "user_id": rng.randint(1, 200_000),
            "username": f"learner{rng.randint(1, 10**6)}",
            "org": course.split(":")[1].split("+")[0],
            "course_id": course,
            "session_id": f"{rng.getrandbits(128):032x}",
            "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0",
            "host": "courses.example.org",
        }
        for course in rng.choices(courses, k=20_000)
    ]
    names = rng.choices([name for name, _ in NAMES], weights=[w for _, w in NAMES], k=n)
    step = QUERY_SPAN / n

    def event(i: int) -> dict[str, Any]:
        session = rng.choice(sessions)
        context = {**session, "path": f"/courses/{session['course_id']}/courseware/{i % 97}"}
        return {
            "id": new_event_id(),
            "name": names[i],
            "timestamp": QUERY_START + step * i,
            "data": {"url": f"http://www.edx.org/some/path/{i}", "n": i, "position": i % 600},
            "context": context,
        }

    return event


def build(path: Path, lines: Path, n: int, console: Console) -> None:
    """Write the N events to a new store at `path` and as JSON lines to `lines`."""
    event = generated(n)
    partial = path.with_name(path.name + ".partial")
    for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        stale.unlink(missing_ok=True)
    store = SQLiteStore(partial)
    start = time.perf_counter()
    with open(lines, "wb", buffering=1 << 20) as handle:
        for first in range(0, n, 10_000):
            batch = [event(i) for i in range(first, min(n, first + 10_000))]
            handle.write(b"".join(dumps_line(e) for e in batch))
            store.write_events(batch)
    store.close()
    partial.replace(path)  # a build cut short never passes for a cached store
    console.print(f"Built {path} ({n:,} events) in {time.perf_counter() - start:.1f} s")


def timed_runs(runs: dict[str, Callable[[], Any]], rounds: int = 7) -> dict[str, Any]:
    """Median milliseconds of each of `runs`, run in turn `rounds` times after a warm-up."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    results: dict[str, Any] = {}
    for run in runs.values():
        run()
    for _ in range(rounds):
        for label, run in runs.items():
            start = time.perf_counter()
            results[label] = run()
            times[label].append((time.perf_counter() - start) * 1e3)
    return {
        label: {"median_ms": statistics.median(t), "runs_ms": t, "rows": results[label]}
        for label, t in times.items()
    }


def bench_query(n: int, console: Console, baseline: Path | None = None) -> dict[str, Any]:
    """Query and count one name and one hour of an N-event store; its size against JSON lines."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"query-{n}-e{EVENTS_VERSION}-s{SCHEMA_VERSION}.db"
    lines = path.with_suffix(".jsonl")
    if path.is_file() and lines.is_file():
        console.print(f"Using cached store {path}")
    else:
        build(path, lines, n, console)
    since = QUERY_START + QUERY_SPAN / 2
    query = Query(names=(QUERY_NAME,), since=since, until=since + timedelta(hours=1), limit=None)
    store = SQLiteStore(path, create=False)
    old = SQLiteStore(baseline, create=False) if baseline is not None else None
    try:
        total = store.count(Query(limit=None))
        assert total == n, f"{path}: {total} events, expected {n}; delete it to rebuild"
        result: dict[str, Any] = {"store": str(path), "events": n, "query": repr(query)}
        runs: dict[str, Callable[[], Any]] = {
            "query": lambda: len(store.query(query)),
            "count": lambda: store.count(query),
        }
        if old is not None:
            runs["baseline query"] = lambda: len(old.query(query))
            result["baseline"] = str(baseline)
        result.update(timed_runs(runs))
    finally:
        store.close()
        if old is not None:
            old.close()
    store_bytes, line_bytes = path.stat().st_size, lines.stat().st_size
    result["size"] = {
        "store_bytes_per_event": store_bytes / n,
        "jsonl_bytes_per_event": line_bytes / n,
        "ratio": store_bytes / line_bytes,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--baseline", type=Path, help="the same events in an older store")
    args = parser.parse_args()
    console = Console()
    result = bench_query(args.events, console, args.baseline)
    size = result["size"]
    for label in ("query", "count", "baseline query"):
        if label not in result:
            continue
        figure = result[label]
        console.print(
            f"store.{label}: {figure['median_ms']:.2f} ms for {figure['rows']:,} rows "
            f"({QUERY_NAME!r}, one hour of {args.events:,} events)"
            + (f"; target <= {QUERY_MAX_MS} ms" if label == "query" else "")
        )
    if "baseline query" in result:
        ratio = result["query"]["median_ms"] / result["baseline query"]["median_ms"]
        console.print(f"query against the baseline store: {ratio:.2f}x its time")
    console.print(
        f"size: {size['store_bytes_per_event']:.0f} B/event in SQLite, "
        f"{size['jsonl_bytes_per_event']:.0f} B/event as JSON lines: {size['ratio']:.3f}x "
        f"(target <= {SIZE_MAX_RATIO}x)"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"store-{args.events}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
