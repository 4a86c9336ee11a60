"""Processes: fork (pre-fork servers) and bounded memory through a long outage."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from delivery_support import LineFileBackend, event
from eventtracking import SQLiteBackend
from eventtracking.delivery import DeliveryBackend

TESTS = Path(__file__).resolve().parent


class ParentGate(LineFileBackend):
    """Blocks in the parent until released; a forked child passes straight through."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.parent = os.getpid()
        self.release = threading.Event()
        self.entered = threading.Event()

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        if os.getpid() == self.parent:
            self.entered.set()
            self.release.wait()
        super().send_batch(events)


def run_child(body: Any) -> int:
    """Fork; run `body()` in the child and leave with its status; the child's exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        code = 1
        try:
            code = 0 if body() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_fork_child_gets_its_own_queue_and_worker(tmp_path: Path) -> None:
    lines = tmp_path / "lines"
    backend = ParentGate(str(lines))
    delivery = DeliveryBackend(backend, batch_size=1, max_delay=0.01)
    for n in range(10):
        delivery.send(event(n))
    assert backend.entered.wait(10)  # the parent's worker is stuck; its queue holds events

    def child() -> bool:
        for n in range(100, 105):
            delivery.send(event(n))
        flushed = delivery.flush(10)
        delivery.close()
        return flushed

    assert run_child(child) == 0
    backend.release.set()
    assert delivery.flush(10)
    delivery.close()
    rows = [line.split() for line in lines.read_text().splitlines()]
    by_id = Counter(event_id for _, event_id in rows)
    assert all(count == 1 for count in by_id.values()), by_id
    parent = {event_id for pid, event_id in rows if int(pid) == os.getpid()}
    child_ids = {event_id for pid, event_id in rows if int(pid) != os.getpid()}
    assert parent == {f"ev-{n:08d}" for n in range(10)}
    assert child_ids == {f"ev-{n:08d}" for n in range(100, 105)}


def test_fork_in_durable_mode_writes_a_lane_per_process(tmp_path: Path) -> None:
    store, journal = tmp_path / "e.db", tmp_path / "j"
    delivery = DeliveryBackend(
        SQLiteBackend(store), mode="durable", journal_dir=journal, fsync="interval", max_delay=0.01
    )
    for n in range(10):
        delivery.send(event(n))

    def child() -> bool:  # dies without flushing: its lane is left for a later process
        for n in range(100, 150):
            delivery.send(event(n))
        return True

    assert run_child(child) == 0
    assert delivery.flush(10)
    delivery.close()
    lanes = [p.name for p in journal.iterdir() if p.name.startswith("lane-")]
    assert len(lanes) == 1 and f"-{os.getpid()}-" not in lanes[0]  # the child's, not ours
    recovery = DeliveryBackend(SQLiteBackend(store), mode="durable", journal_dir=journal)
    assert recovery.flush(20)
    recovery.close()
    with sqlite3.connect(store) as db:
        ids = sorted(row[0] for row in db.execute("SELECT id FROM events"))
    assert ids == sorted(f"ev-{n:08d}" for n in [*range(10), *range(100, 150)])


MEMORY = """
import json, os, sys
sys.path.insert(0, {tests!r})
from eventtracking import Tracker
from eventtracking.delivery import DeliveryBackend
from eventtracking.testing import DownBackend

PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

delivery = DeliveryBackend(
    DownBackend(), name="down", journal_dir=sys.argv[1], overflow="spill",
    circuit={{"failure_threshold": 1, "reset_timeout": 3600}},
)
tracker = Tracker({{"down": delivery}})
tracker.enter_context("outer", {{"user_id": 10938, "org": "edX"}})
for i in range(20_000):  # warm up: allocator pools, the queue at its size
    tracker.emit("navigation.request", {{"url": "http://www.edx.org/some/path/%d" % i, "n": i}})
start = peak = rss()
for i in range({events}):
    tracker.emit("navigation.request", {{"url": "http://www.edx.org/some/path/%d" % i, "n": i}})
    if i % 10_000 == 0:
        peak = max(peak, rss())
peak = max(peak, rss())
delivery.close()  # stops the worker: what it held in memory goes to the journal too
stats = delivery.metrics_snapshot()
print(json.dumps({{"growth": peak - start, "stats": stats}}))
os._exit(0)
"""


def test_memory_stays_bounded_through_a_long_outage(tmp_path: Path) -> None:
    script = tmp_path / "memory.py"
    events = 200_000
    script.write_text(MEMORY.format(tests=str(TESTS), events=events))
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "j")],
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    result = json.loads(out.stdout)
    stats = result["stats"]
    assert stats["emitted"] == events + 20_000
    assert stats["dropped"] == {}  # nothing lost: what memory cannot hold is journaled
    assert stats["journaled"] == stats["emitted"]
    print(f"RSS growth over {events:,} events with the backend down: {result['growth']:,} bytes")
    assert result["growth"] < 50 * 1024 * 1024, result


AT_EXIT = """
import sys, threading
sys.path.insert(0, {tests!r})
from delivery_support import event
from eventtracking import SQLiteBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.testing import BlockingBackend

store = DeliveryBackend(SQLiteBackend(sys.argv[1]), name="store", max_delay=3600)
stuck = DeliveryBackend(BlockingBackend(), name="stuck", atexit_timeout=0.2)
for n in range(25):
    store.send(event(n))
    stuck.send(event(n))
# No flush, no close: the interpreter exits here.
"""


def test_atexit_flushes_within_a_bounded_budget(tmp_path: Path) -> None:
    script = tmp_path / "at_exit.py"
    script.write_text(AT_EXIT.format(tests=str(TESTS)))
    # A backend stuck forever must not keep the process from exiting.
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "e.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "e.db") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 25
    assert "worker still inside the backend at close" in done.stderr
