"""Delivery to a local HTTP sink against a hand-written floor, in the same run.

The floor: a deque plus one thread that takes up to 500 events, encodes
them with one ``orjson.dumps`` of the list, compresses (when asked) and POSTs
them with ``http.client`` over one kept-alive connection. Ours: `Tracker.emit`
with two nested contexts into `DeliveryBackend(HTTPBackend(url))`, buffered
(gzip on and off) and durable (gzip on), with a journal as configuration
builds it. Both post to the same sink, `http_sink.py`, a separate process.

Figures, every run a fresh process, floor and ours alternating:

* events/s for N events, from the first emit until the sink has them all
  (counted by the sink: nothing dropped, nothing duplicated);
* the calling thread's emit latency p50/p99 at a paced 2,000 events/s.

    .venv/bin/python bench/delivery_floors.py --events 50000 [--rounds 3]

Figures go to a table on stdout and to bench/out/delivery_floors.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from peers.workload import INNER, NAME, OUTER, URL

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BATCH = 500
GZIP_LEVEL = 1  # the same level as HTTPBackend's, so the ratio is about the rest of the path
RATE = 2000.0  # events/s for the paced latency run
THROUGHPUT_MIN = {"gzip": 0.7, "durable": 0.5}
P99_MAX_RATIO = 2.0


# -- the sink ------------------------------------------------------------------------------------


def sink_count(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    conn.request("GET", "/count")
    count = int(conn.getresponse().read().split()[0])
    conn.close()
    return count


def sink_reset(url: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    conn.request("POST", "/reset", b"")
    conn.getresponse().read()
    conn.close()


def start_sink(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "port"
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "http_sink.py"), str(port_file)])
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text():
        assert time.monotonic() < deadline and sink.poll() is None, "the sink did not start"
        time.sleep(0.02)
    return sink, f"http://127.0.0.1:{port_file.read_text()}/events"


# -- the floor (runs in a child process) ---------------------------------------------------------


class Floor:
    """A queue and one thread posting batches with http.client: what a hand-written program does."""

    def __init__(self, url: str, gzip: bool) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
        self.path = parts.path
        self.headers = {"Content-Type": "application/json"}
        if gzip:
            self.headers["Content-Encoding"] = "gzip"
        self.gzip = gzip
        self.queue: deque[dict[str, Any]] = deque()
        self.wake = threading.Event()
        self.done = False
        self.context = {**OUTER, **INNER}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def emit(self, name: str, data: dict[str, Any]) -> None:
        queue = self.queue
        queue.append(
            {"name": name, "timestamp": datetime.now(UTC), "data": data, "context": self.context}
        )
        if len(queue) >= BATCH:
            self.wake.set()

    def run(self) -> None:
        queue = self.queue
        while True:
            if len(queue) < BATCH and not self.done:
                self.wake.wait(0.2)
                self.wake.clear()
                if len(queue) < BATCH and not self.done:
                    continue
            batch = [queue.popleft() for _ in range(min(BATCH, len(queue)))]
            if not batch:
                return
            body = orjson.dumps(batch)
            if self.gzip:
                body = zlib.compress(body, GZIP_LEVEL, 31)
            self.conn.request("POST", self.path, body, self.headers)
            response = self.conn.getresponse()
            response.read()
            assert response.status == 200

    def close(self) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()


def run_floor(url: str, n: int, gzip: bool, paced: bool) -> dict[str, Any]:
    floor = Floor(url, gzip)
    return drive(floor.emit, lambda: None, floor.close, n, paced)


# -- ours (runs in a child process) --------------------------------------------------------------


def run_ours(url: str, n: int, gzip: bool, paced: bool, mode: str) -> dict[str, Any]:
    from eventtracking.backends.http import HTTPBackend
    from eventtracking.delivery import DeliveryBackend
    from eventtracking.tracker import Tracker

    journal = tempfile.mkdtemp(prefix="floors-journal-")
    delivery = DeliveryBackend(
        HTTPBackend(url, gzip=gzip), name="http", mode=mode, journal_dir=journal
    )  # type: ignore[arg-type]
    tracker = Tracker({"http": delivery})
    tracker.enter_context("outer", OUTER)
    tracker.enter_context("inner", INNER)

    def finish() -> None:
        assert tracker.flush(300), "flush timed out"

    result = drive(tracker.emit, lambda: None, finish, n, paced)
    result["dropped"] = delivery.metrics_snapshot()["dropped_total"]
    tracker.close(10)
    return result


def drive(
    emit: Callable[[str, dict[str, Any]], None],
    before: Callable[[], None],
    finish: Callable[[], None],
    n: int,
    paced: bool,
) -> dict[str, Any]:
    """Emit `n` events (flat out, or paced at RATE and timed one by one), then `finish`."""
    before()
    if not paced:
        start = time.perf_counter()
        for i in range(n):
            emit(NAME, {"url": URL % i, "n": i})
        finish()
        return {"seconds": time.perf_counter() - start}
    took = array("q", bytes(8 * n))
    clock = time.perf_counter_ns
    step = int(1e9 / RATE)
    due = clock()
    for i in range(n):
        data = {"url": URL % i, "n": i}
        due += step
        left = due - clock()
        if left > 0:
            time.sleep(left / 1e9)
        begin = clock()
        emit(NAME, data)
        took[i] = clock() - begin
    finish()
    ordered = sorted(took)
    return {
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
    }


def child(args: argparse.Namespace) -> None:
    system, variant = args.child.split(":")
    gzip = variant != "plain"
    if system == "floor":
        result = run_floor(args.url, args.events, gzip, args.paced)
    else:
        mode = "durable" if variant == "durable" else "buffered"
        result = run_ours(args.url, args.events, gzip, args.paced, mode)
    print(json.dumps(result))


# -- the run -------------------------------------------------------------------------------------


def one(url: str, label: str, n: int, paced: bool) -> dict[str, Any]:
    sink_reset(url)
    command = [sys.executable, __file__, "--child", label, "--url", url, "--events", str(n)]
    out = subprocess.run(
        command + (["--paced"] if paced else []),
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    received = sink_count(url)
    assert received == n, f"{label}: the sink received {received} events, not {n}"
    assert not result.get("dropped"), f"{label}: {result['dropped']} dropped"
    if not paced:
        result["events_per_s"] = n / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--paced-events", type=int, default=10_000, help="at 2,000 events/s")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians count")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--paced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="eventtracking-floors-"))
    sink, url = start_sink(tmp)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for k in range(args.rounds):
            order = ["floor:gzip", "ours:gzip", "floor:plain", "ours:plain", "ours:durable"]
            for label in order if k % 2 == 0 else order[::-1]:
                runs.setdefault(label, []).append(one(url, label, args.events, False))
            for label in ("floor:gzip", "ours:gzip") if k % 2 == 0 else ("ours:gzip", "floor:gzip"):
                paced = one(url, label, args.paced_events, True)
                runs.setdefault(f"{label}:paced", []).append(paced)
    finally:
        sink.terminate()
        sink.wait(10)
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    def median(label: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[label])

    def paired(label: str, floor: str, key: str) -> tuple[float, float, float]:
        """Median and range of the per-round ratios (each round ran both back to back)."""
        ratios = sorted(a[key] / b[key] for a, b in zip(runs[label], runs[floor], strict=True))
        return statistics.median(ratios), ratios[0], ratios[-1]

    rows = [
        ("floor, gzip", "floor:gzip", "floor:gzip", None),
        ("ours, gzip", "ours:gzip", "floor:gzip", THROUGHPUT_MIN["gzip"]),
        ("floor, no compression", "floor:plain", "floor:plain", None),
        ("ours, no compression", "ours:plain", "floor:plain", None),
        ("ours, durable, gzip", "ours:durable", "floor:gzip", THROUGHPUT_MIN["durable"]),
    ]
    summary: dict[str, Any] = {"events": args.events, "rounds": args.rounds, "runs": runs}
    print(
        f"\nDelivery to a local HTTP sink, {args.events} events, {args.rounds} rounds: "
        "median events/s, median of the paired ratios (range)"
    )
    for label, key, floor, target in rows:
        rate = median(key, "events_per_s")
        ratio, low, high = paired(key, floor, "events_per_s")
        verdict = ""
        if target is not None:
            verdict = f"  (>= {target}x: {'pass' if ratio >= target else 'NOT MET'})"
        print(
            f"  {label:24} {rate:>10,.0f} events/s  {ratio:.2f}x ({low:.2f}-{high:.2f}) "
            f"the floor{verdict}"
        )
        summary[label] = {"events_per_s": rate, "ratio": ratio, "range": [low, high]}
    ratio, low, high = paired("ours:gzip:paced", "floor:gzip:paced", "p99_us")
    print(f"Emit latency at a paced {RATE:,.0f} events/s, {args.paced_events} events, gzip")
    for label in ("floor:gzip:paced", "ours:gzip:paced"):
        p50, p99 = median(label, "p50_us"), median(label, "p99_us")
        print(f"  {label:24} p50 {p50:6.2f} us  p99 {p99:6.2f} us")
    verdict = "pass" if ratio <= P99_MAX_RATIO else "NOT MET"
    print(f"  p99 ratio {ratio:.2f}x ({low:.2f}-{high:.2f}) (<= {P99_MAX_RATIO}x: {verdict})")
    summary["p99_ratio"] = ratio
    OUT.mkdir(exist_ok=True)
    (OUT / "delivery_floors.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
