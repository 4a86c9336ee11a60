"""Durable mode end to end: restart recovery, the journal's bytes delivered, disk budget,
and SIGKILL at random points."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from delivery_support import event
from eventtracking import SQLiteBackend, Tracker, serialization
from eventtracking.delivery import DeliveryBackend
from eventtracking.delivery.segments import read_segment
from eventtracking.exceptions import TerminalError
from eventtracking.testing import DownBackend, RecordingBackend

TESTS = Path(__file__).resolve().parent


def stored_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT id FROM events")]


@pytest.mark.parametrize("fsync", ["always", "interval"])
def test_durable_delivery_into_the_sqlite_store(tmp_path: Path, fsync: str) -> None:
    delivery = DeliveryBackend(
        SQLiteBackend(tmp_path / "e.db"),
        name="store",
        mode="durable",
        journal_dir=tmp_path / "j",
        fsync=fsync,  # type: ignore[arg-type]
        max_delay=0.01,
    )
    tracker = Tracker({"store": delivery})
    for n in range(200):
        tracker.emit("a.b", {"n": n})
    tracker.close()
    assert len(set(stored_ids(tmp_path / "e.db"))) == 200
    stats = delivery.metrics_snapshot()
    assert stats["journaled"] == stats["delivered"] == 200
    assert [p.name for p in (tmp_path / "j").iterdir()] == ["dead-letters.db"]


def test_in_process_durable_delivery_hands_over_the_emitted_events(tmp_path: Path) -> None:
    backend = RecordingBackend()
    delivery = DeliveryBackend(backend, mode="durable", journal_dir=tmp_path / "j", max_delay=0.01)
    sent = [event(n) for n in range(50)]
    for e in sent:
        delivery.send(e)
    assert delivery.flush(20)
    delivery.close()
    assert [e["id"] for e in backend.events] == [e["id"] for e in sent]
    assert all(got is original for got, original in zip(backend.events, sent, strict=True))


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "durable", "fsync": "interval"},
        {"mode": "buffered", "overflow": "spill", "queue_size": 10},  # emit spills: queue full
    ],
    ids=["durable", "spill"],
)
def test_a_down_backend_keeps_no_events_in_the_journal_cache(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    # While the circuit is open nothing is read: events live in the journal
    # (and the queue) only, not also in the cache; once the backend is back
    # the cache serves again.
    backend = DownBackend()
    delivery = DeliveryBackend(
        backend,
        journal_dir=tmp_path / "j",
        max_delay=0.01,
        circuit={"failure_threshold": 1, "reset_timeout": 0.2},
        **options,
    )
    writer = delivery.journal.writer  # type: ignore[union-attr]
    delivery.send(event(0))
    assert wait_for(lambda: delivery.breaker.state == "open" and not writer.caching)
    down = [event(n) for n in range(1, 500)]
    for e in down:
        delivery.send(e)
    assert len(writer.cache) == 0
    backend.recover()
    assert delivery.flush(20)
    assert writer.caching
    up = [event(n) for n in range(500, 520)]
    for e in up:
        delivery.send(e)
    assert delivery.flush(20)
    delivery.close()
    got = {e["id"]: e for e in backend.events}  # spilling reorders: the journal goes first
    assert len(backend.events) == len(got) == 520
    assert sorted(got) == sorted(e["id"] for e in [event(0), *down, *up])
    assert all(got[e["id"]] is e for e in up)  # the very objects: memory, not the file


def test_what_a_down_backend_left_is_delivered_by_the_next_process(tmp_path: Path) -> None:
    down = DeliveryBackend(
        DownBackend(), mode="durable", journal_dir=tmp_path / "j", fsync="interval"
    )
    for n in range(300):
        down.send(event(n))
    down.close()
    assert down.metrics_snapshot()["journaled"] == 300
    backend = RecordingBackend()
    later = DeliveryBackend(backend, mode="durable", journal_dir=tmp_path / "j", max_delay=0.01)
    assert later.flush(20)
    later.close()
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(300)]
    assert backend.events[0]["timestamp"].tzinfo is not None  # a datetime again


# -- the journal's bytes are the ones delivered --------------------------------------------


class ArrayBackend(RecordingBackend):
    """Writes each batch as `serialization.dumps_array` (an HTTP body): records it.

    It declares that it leaves events unchanged; `reject` names an event id
    whose batches it refuses with a TerminalError.
    """

    leaves_events_unchanged = True

    def __init__(self, reject: str | None = None) -> None:
        super().__init__()
        self.reject = reject
        self.bodies: list[bytes] = []

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        if any(e["id"] == self.reject for e in events):
            raise TerminalError(f"rejected {self.reject}")
        self.bodies.append(serialization.dumps_array(events))
        super().send_batch(events)


class StampingBackend(ArrayBackend):
    """Adds a key to each event before writing it: it does not declare the promise."""

    leaves_events_unchanged = False

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            e["stamped"] = True
        super().send_batch(events)


def array(bodies: list[bytes]) -> bytes:
    return b"[" + b",".join(bodies) + b"]"


def held(backend: Any, journal: Path) -> DeliveryBackend:
    """Durable delivery that waits for a flush (or a full batch) before it delivers."""
    return DeliveryBackend(
        backend, mode="durable", journal_dir=journal, max_delay=60.0, batch_size=1000
    )


def send_then_change(delivery: DeliveryBackend, sent: list[dict[str, Any]]) -> None:
    """Send `sent`, change each event afterwards, then deliver and close.

    The journal holds what was emitted, and that is what goes out: a
    re-encoding (the old way) would send the changed ``n`` of -1.
    """
    for e in sent:
        delivery.send(e)
    for e in sent:
        e["data"]["n"] = -1
    assert delivery.flush(20)
    delivery.close()


def test_in_process_delivery_sends_the_bytes_journaled_at_emit(tmp_path: Path) -> None:
    backend = ArrayBackend()
    delivery = held(backend, tmp_path / "j")
    sent = [event(n) for n in range(20)]
    emitted = [serialization.dumps(e) for e in sent]  # each one's journal record
    send_then_change(delivery, sent)
    assert backend.bodies == [array(emitted)]
    assert all(got is e for got, e in zip(backend.events, sent, strict=True))  # from the cache


def test_a_batch_read_back_from_journal_files_sends_their_payloads(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    down = DeliveryBackend(DownBackend(), mode="durable", journal_dir=journal, fsync="interval")
    for n in range(30):
        # "Z": decoding makes the timestamp a datetime, which would encode as +00:00.
        down.send(event(n) | {"timestamp": "2026-01-01T00:00:00Z"})
    down.close()
    payloads = [
        payload
        for path in sorted(journal.glob("*/*.seg"))
        for payload in read_segment(path, 0, max_records=1000).payloads
    ]
    assert len(payloads) == 30 and b'"2026-01-01T00:00:00Z"' in payloads[0]
    backend = ArrayBackend()
    later = DeliveryBackend(backend, mode="durable", journal_dir=journal, max_delay=0.01)
    assert later.flush(20)
    later.close()
    assert backend.bodies == [array(payloads)]
    assert backend.events[0]["timestamp"].tzinfo is not None  # still decoded for the backend


def test_a_backend_that_may_change_events_encodes_them_afresh(tmp_path: Path) -> None:
    backend = StampingBackend()
    delivery = held(backend, tmp_path / "j")
    for n in range(5):
        delivery.send(event(n))
    assert delivery.flush(20)
    delivery.close()
    [body] = backend.bodies
    assert [e["stamped"] for e in serialization.loads(body)] == [True] * 5  # its change is seen


def test_bisection_delivers_the_journal_bytes_of_each_half(tmp_path: Path) -> None:
    backend = ArrayBackend(reject="ev-00000005")
    delivery = held(backend, tmp_path / "j")
    sent = [event(n) for n in range(8)]
    emitted = {e["id"]: serialization.dumps(e) for e in sent}
    send_then_change(delivery, sent)
    assert len(backend.batches) > 1  # the batch was split
    for batch, body in zip(backend.batches, backend.bodies, strict=True):
        assert body == array([emitted[e["id"]] for e in batch])
    assert sorted(backend.ids()) == sorted(set(emitted) - {"ev-00000005"})
    assert delivery.metrics_snapshot()["dead_lettered"] == 1


@pytest.mark.parametrize(
    ("overflow", "reason"), [("drop_newest", "disk_full"), ("block", "block_timeout")]
)
def test_a_spent_disk_budget_applies_the_overflow_policy(
    tmp_path: Path, overflow: str, reason: str
) -> None:
    delivery = DeliveryBackend(
        DownBackend(),
        mode="durable",
        journal_dir=tmp_path / "j",
        fsync="interval",
        segment_bytes=1000,
        disk_budget=2000,
        overflow=overflow,  # type: ignore[arg-type]
        block_timeout=0.01,
    )
    for n in range(100):
        delivery.send(event(n))
    stats = delivery.metrics_snapshot()
    assert stats["journaled"] + stats["dropped"][reason] == 100
    assert stats["dropped"][reason] > 50
    delivery.close()


# -- SIGKILL ------------------------------------------------------------------------------------

PRODUCER = """
import os, sys
sys.path.insert(0, {tests!r})
from delivery_support import GatedBackend
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.delivery import DeliveryBackend

store, journal, side, gate, fsync, run = sys.argv[1:7]
delivery = DeliveryBackend(
    GatedBackend(SQLiteBackend(store), gate, delay=0.002),
    name="store", mode="durable", journal_dir=journal, fsync=fsync,
    batch_size=50, max_delay=0.005, metrics_interval=0.05,
    retry={{"initial_backoff": 0.002, "max_backoff": 0.02}},
    circuit={{"failure_threshold": 3, "reset_timeout": 0.02}},
)
fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
print("ready", flush=True)
i = 0
while True:
    event_id = f"{{run}}-{{i}}"
    delivery.send({{"id": event_id, "name": "kill.test", "timestamp": "2026-01-01T00:00:00+00:00",
                   "data": {{"i": i}}, "context": {{}}}})
    os.write(fd, (event_id + "\\n").encode())  # only once emit has returned
    i += 1
"""


def test_every_event_whose_emit_returned_survives_sigkill(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER.format(tests=str(TESTS)))
    store, journal, side, gate = (tmp_path / n for n in ("e.db", "j", "side.txt", "up"))
    for run in range(6):
        if run == 2:
            gate.touch()  # runs 0-1: the store is unavailable; later runs: slow
        fsync = "always" if run % 2 else "interval"
        args = [str(a) for a in (store, journal, side, gate, fsync, run)]
        producer = subprocess.Popen(
            [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True
        )
        assert producer.stdout is not None
        assert producer.stdout.readline().strip() == "ready", f"seed {seed}"
        time.sleep(rng.uniform(0.05, 0.5))
        producer.send_signal(signal.SIGKILL)
        producer.wait(30)
        assert producer.returncode == -signal.SIGKILL
        producer.stdout.close()
    emitted = {line for line in side.read_text().split("\n") if line}
    before = set(stored_ids(store))
    print(f"seed {seed}: {len(emitted)} acknowledged, {len(emitted - before)} not yet stored")
    assert len({e.split("-")[0] for e in emitted}) == 6, f"every run emitted (seed {seed})"
    recovery = DeliveryBackend(
        SQLiteBackend(store), name="store", mode="durable", journal_dir=journal, max_delay=0.01
    )
    assert recovery.flush(60), f"seed {seed}"
    recovery.close()
    ids = stored_ids(store)
    assert len(ids) == len(set(ids))
    missing = emitted - set(ids)
    assert not missing, f"{len(missing)} of {len(emitted)} acknowledged events lost (seed {seed})"
    assert len([p for p in journal.iterdir() if p.name.startswith("lane-")]) == 0


def test_a_fresh_durable_journal_is_idle_so_flush_returns_true(tmp_path: Path) -> None:
    # Its cursor starts before the segment header: that header is not an event.
    from eventtracking.delivery import DeliveryBackend
    from eventtracking.testing import InMemoryBackend

    backend = DeliveryBackend(InMemoryBackend(), mode="durable", journal_dir=tmp_path)
    try:
        assert backend.flush(5.0) is True
    finally:
        backend.close()
