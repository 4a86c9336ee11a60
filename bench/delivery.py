"""Benchmark the delivery worker on the shared workload (see ../shared/bench/peers.py).

Workload: two nested contexts (outer: user_id, org, course_id; inner:
session_id, path), then N events 'navigation.request' with {url, n}, through
the public API (`Tracker.emit`) into a `DeliveryBackend` wrapping the SQLite
store. Figures:

* emit latency p50/p99 on the calling thread, backend healthy and backend down
  (buffered mode, journal + spill; target: p99 <= 20 us while down);
* throughput, including the final close (so deferred work cannot hide), in
  inline (the default for the store), buffered and durable modes (target:
  durable <= 2x buffered);
* resident memory growth over 1,000,000 events with the backend down
  (target: < 50 MB), measured in a fresh process;
* with the defaults of configuration (see `outage`): a burst of 1,000,000
  emits into a slow sink (target: 0 dropped; emit p99 and delivered
  events/s), and PostgreSQL, Redis and HTTP sinks that go away (target: emit
  p99 < 20 us; flush and close within their timeout plus a small margin).

    .venv/bin/python bench/delivery.py --events 200000 [--repeat 3]

Figures go to a table on stdout and to bench/out/delivery.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import outage
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.delivery.paths import ENV as JOURNAL_ENV
from eventtracking.exceptions import RetryableError
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.tracker import Tracker
from peers.workload import INNER, NAME, OUTER, URL

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"

P99_DOWN_MAX_US = 20.0
DURABLE_MAX_RATIO = 2.0
RSS_MAX_MB = 50.0
BURST = 1000  # healthy-backend latency: emits per burst, each followed by a flush


class DownBackend:
    """A backend that is down: every send fails with a retryable error."""

    def send(self, event: dict[str, Any]) -> None:
        raise RetryableError("connection refused")

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        raise RetryableError("connection refused")


def fresh(tmp: Path, label: str) -> tuple[Path, Path]:
    """An empty store path and journal directory for one run."""
    base = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=tmp))
    return base / "events.db", base / "journal"


def percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


# -- emit latency ----------------------------------------------------------------------------------


def emit_latency(tracker: Tracker, n: int, burst: int | None = None) -> dict[str, float]:
    """p50/p99/p99.9/max in microseconds of each `emit` call, timed on the calling thread.

    With `burst`, the tracker is flushed (untimed) after every `burst` emits,
    so the backend keeps up: a web process emits in bursts, not a tight loop.
    """
    took = array("q", bytes(8 * n))
    clock = time.perf_counter_ns
    emit = tracker.emit
    tracker.enter_context("outer", OUTER)
    with tracker.context("inner", INNER):
        for i in range(n):
            data = {"url": URL % i, "n": i}
            start = clock()
            emit(NAME, data)
            took[i] = clock() - start
            if burst and i % burst == burst - 1:
                tracker.flush(60)
    ordered = sorted(took)
    return {
        "p50_us": percentile(ordered, 0.50),
        "p99_us": percentile(ordered, 0.99),
        "p999_us": percentile(ordered, 0.999),
        "max_us": ordered[-1] / 1000,
    }


def latency_healthy(n: int, tmp: Path) -> dict[str, float]:
    store, _ = fresh(tmp, "healthy")
    tracker = Tracker({"store": DeliveryBackend(SQLiteBackend(store), name="store")})
    delivery = tracker.get_backend("store")
    result = emit_latency(tracker, n, burst=BURST)
    result["dropped"] = delivery.metrics_snapshot()["dropped_total"]
    tracker.close(60)
    return result


def latency_down(n: int, tmp: Path) -> dict[str, float]:
    _, journal = fresh(tmp, "down")
    delivery = DeliveryBackend(DownBackend(), name="down", journal_dir=journal, overflow="spill")
    tracker = Tracker({"down": delivery})
    result = emit_latency(tracker, n)
    stats = delivery.metrics_snapshot()
    tracker.close(0)
    result["journaled"] = stats["journaled"]
    result["dropped"] = stats["dropped_total"]
    return result


# -- throughput -----------------------------------------------------------------------------------


def workload(tracker: Tracker, first: int, count: int) -> None:
    tracker.enter_context("outer", OUTER)
    with tracker.context("inner", INNER):
        for i in range(first, first + count):
            tracker.emit(NAME, {"url": URL % i, "n": i})


def throughput(n: int, tmp: Path, label: str, threads: int = 1, **options: Any) -> dict[str, float]:
    """Microseconds per event for N emits plus close (every event stored), and fsyncs."""
    store, journal = fresh(tmp, label)
    backend = DeliveryBackend(SQLiteBackend(store), name=label, journal_dir=journal, **options)
    tracker = Tracker({"store": backend})
    gc.collect()
    start = time.perf_counter()
    if threads == 1:
        workload(tracker, 0, n)
    else:
        share = n // threads
        workers = [
            threading.Thread(target=workload, args=(tracker, t * share, share))
            for t in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        n = share * threads
    tracker.close(300)
    us = (time.perf_counter() - start) / n * 1e6
    reader = SQLiteStore(store, create=False)
    try:
        rows = reader.count(Query(limit=None))
    finally:
        reader.close()
    assert rows == n, f"{label}: {rows} events stored, expected {n}"
    syncs = backend.journal.syncs if isinstance(backend, DeliveryBackend) and backend.journal else 0
    return {"us": us, "events": n, "fsyncs_per_event": syncs / n}


# -- memory (in a fresh process) -------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(n: int, journal: str) -> None:
    """Run N events with the backend down; print growth of resident memory as JSON."""
    delivery = DeliveryBackend(DownBackend(), name="down", journal_dir=journal, overflow="spill")
    tracker = Tracker({"down": delivery})
    workload(tracker, 0, 20_000)  # warm up: allocator pools, a full queue, the journal open
    start = peak = rss_bytes()
    tracker.enter_context("outer", OUTER)
    with tracker.context("inner", INNER):
        for i in range(n):
            tracker.emit(NAME, {"url": URL % i, "n": i})
            if i % 10_000 == 0:
                peak = max(peak, rss_bytes())
    peak = max(peak, rss_bytes())
    stats = delivery.metrics_snapshot()
    print(json.dumps({"start": start, "peak": peak, "growth": peak - start, "stats": stats}))
    sys.stdout.flush()
    os._exit(0)  # the journal of a million events stays for no one: tmp is removed


def memory(n: int, tmp: Path) -> dict[str, Any]:
    _, journal = fresh(tmp, "memory")
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n), "--journal", str(journal)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- report ----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--always-events", type=int, default=5_000, help="for fsync=always")
    parser.add_argument("--memory-events", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=16, help="for the group-commit run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--burst-events", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=1.0, help="for flush/close, outages")
    parser.add_argument("--dsn", default=os.environ.get("EVENTTRACKING_TEST_POSTGRES"))
    parser.add_argument("--redis", default=os.environ.get("EVENTTRACKING_TEST_REDIS"))
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.journal)
        return
    console = Console()
    load = os.getloadavg()[0]
    console.print(f"load average {load:.2f}" + (" [yellow](busy: noisy)[/]" if load > 0.5 else ""))
    runs: dict[str, list[dict[str, Any]]] = {}

    def record(label: str, run: Callable[[], dict[str, Any]]) -> None:
        runs.setdefault(label, []).append(run())

    n, few = args.events, args.always_events
    with tempfile.TemporaryDirectory(prefix="eventtracking-delivery-bench-") as name:
        tmp = Path(name)
        for round_ in range(args.repeat):  # round-robin: a noisy moment hits all alike
            console.print(f"round {round_ + 1} of {args.repeat}")
            record("latency: healthy", lambda: latency_healthy(n, tmp))
            record("latency: down", lambda: latency_down(n, tmp))
            record("inline (default)", lambda: throughput(n, tmp, "inline", mode="inline"))
            record(
                "buffered",
                lambda: throughput(
                    n, tmp, "buffered", mode="buffered", overflow="block", block_timeout=60
                ),
            )
            record(
                "durable, fsync=interval",
                lambda: throughput(n, tmp, "interval", mode="durable", fsync="interval"),
            )
            record(
                "durable, fsync=always, 1 thread",
                lambda: throughput(few, tmp, "always", mode="durable", fsync="always"),
            )
            record(
                f"durable, fsync=always, {args.threads} threads",
                lambda: throughput(
                    n // 4, tmp, "group", args.threads, mode="durable", fsync="always"
                ),
            )
        console.print(f"memory: {args.memory_events:,} events with the backend down")
        mem = memory(args.memory_events, tmp)
        os.environ.setdefault(JOURNAL_ENV, str(tmp / "default-journal"))
        console.print(f"burst: {args.burst_events:,} emits into a slow sink (configured defaults)")
        burst = outage.burst(args.burst_events)
        console.print(f"outages: {n:,} emits into each sink that went away")
        dsn, redis_url = services(args)
        gone = outage.outages(n, dsn, redis_url, args.timeout)
    results = report(console, args, runs, mem)
    results["burst"] = burst
    results["outages"] = gone
    report_defaults(console, args, burst, gone)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "delivery.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    console.print(f"Wrote {OUT / 'delivery.json'}")


def services(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The PostgreSQL DSN and Redis URL to use, each None when it does not answer."""
    dsn = args.dsn or "postgresql://root@127.0.0.1:5432/test"
    url = args.redis or "redis://127.0.0.1:6379/0"
    try:
        import psycopg

        psycopg.connect(dsn, connect_timeout=2).close()
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc}")
        dsn = None
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        print(f"Redis skipped: {exc}")
        url = None
    return dsn, url


def report_defaults(
    console: Console, args: argparse.Namespace, burst: dict[str, Any], gone: list[dict[str, Any]]
) -> None:
    """The tables of the configured defaults: the burst, then the outages."""
    table = Table(title=f"burst of {burst['events']:,} emits into a slow sink (100,000 events/s)")
    for column in ("emit p50 us", "p99 us", "max us", "dropped", "journaled", "delivered/s"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{burst['p50_us']:.2f}",
        f"{burst['p99_us']:.2f}",
        f"{burst['max_us']:.0f}",
        f"{burst['dropped']:,}",
        f"{burst['journaled']:,}",
        f"{burst['delivered_per_s']:,.0f}",
    )
    console.print(table)
    console.print(
        f"burst: {burst['delivered']:,} delivered, {burst['dropped']:,} dropped (target 0): "
        f"{verdict(burst['dropped'] == 0 and burst['delivered'] == burst['events'])}"
    )
    table = Table(title=f"sinks that went away ({args.events:,} emits; timeout {args.timeout} s)")
    for column in ("sink", "p50 us", "p99 us", "max us", "flush s", "close s", "dropped", "p99"):
        table.add_column(column, justify="left" if column == "sink" else "right")
    for row in gone:
        table.add_row(
            row["sink"],
            f"{row['p50_us']:.2f}",
            f"{row['p99_us']:.2f}",
            f"{row['max_us']:.0f}",
            f"{row['flush_s']:.3f}",
            f"{row['close_s']:.3f}",
            f"{row['dropped']:,}",
            verdict(row["p99_us"] < outage.P99_MAX_US),
        )
    console.print(table)


def report(
    console: Console, args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], mem: Any
) -> dict[str, Any]:
    lat = {k: runs[k] for k in ("latency: healthy", "latency: down")}
    median = {
        label: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for label, rs in lat.items()
    }
    table = Table(title=f"emit latency on the calling thread ({args.events:,} events; median)")
    for column in (
        "backend",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "dropped",
        "target",
        "result",
    ):
        table.add_column(column, justify="left" if column in ("backend", "target") else "right")
    for label, m in median.items():
        down = label.endswith("down")
        label = label if down else f"{label} (bursts of {BURST:,})"
        target = f"p99 <= {P99_DOWN_MAX_US} us" if down else ""
        result = verdict(m["p99_us"] <= P99_DOWN_MAX_US) if down else ""
        table.add_row(
            label.split(": ")[1],
            *(f"{m[k]:.2f}" for k in ("p50_us", "p99_us", "p999_us", "max_us")),
            f"{m['dropped']:,.0f}",
            target,
            result,
        )
    console.print(table)

    best = {label: min(rs, key=lambda r: r["us"]) for label, rs in runs.items() if "us" in rs[0]}
    buffered = best["buffered"]["us"]
    table = Table(title=f"throughput into the SQLite store, close included (best of {args.repeat})")
    for column in ("mode", "events", "us/event", "events/s", "vs buffered", "fsyncs/event"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    ratios = {}
    for label, r in best.items():
        ratios[label] = r["us"] / buffered
        table.add_row(
            label,
            f"{r['events']:,}",
            f"{r['us']:.2f}",
            f"{1e6 / r['us']:,.0f}",
            f"{ratios[label]:.2f}x",
            f"{r['fsyncs_per_event']:.3f}" if r["fsyncs_per_event"] else "",
        )
    console.print(table)
    interval = ratios["durable, fsync=interval"]
    always = ratios["durable, fsync=always, 1 thread"]
    console.print(
        f"durable (fsync=interval) / buffered = {interval:.2f}x "
        f"(target <= {DURABLE_MAX_RATIO}x): {verdict(interval <= DURABLE_MAX_RATIO)}"
    )
    console.print(
        f"durable (fsync=always, one thread) / buffered = {always:.2f}x: every emit waits "
        "for its own fsync; concurrent emitters share fsyncs (group commit, row above)"
    )
    growth_mb = mem["growth"] / 1e6
    console.print(
        f"resident memory growth over {args.memory_events:,} events with the backend down: "
        f"{growth_mb:.1f} MB (target < {RSS_MAX_MB} MB): {verdict(growth_mb < RSS_MAX_MB)}; "
        f"journaled {mem['stats']['journaled']:,}, dropped {mem['stats']['dropped_total']:,}"
    )
    return {
        "events": args.events,
        "repeat": args.repeat,
        "latency_median": median,
        "latency_runs": lat,
        "throughput_best": best,
        "throughput_runs": {k: v for k, v in runs.items() if "us" in v[0]},
        "ratios_vs_buffered": ratios,
        "memory": mem | {"growth_mb": growth_mb, "events": args.memory_events},
        "targets": {
            "p99_down_us": [median["latency: down"]["p99_us"], P99_DOWN_MAX_US],
            "durable_interval_ratio": [interval, DURABLE_MAX_RATIO],
            "rss_growth_mb": [growth_mb, RSS_MAX_MB],
        },
        "when": datetime.now(UTC).isoformat(),
        "python": sys.version.split()[0],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_average": os.getloadavg(),
    }


if __name__ == "__main__":
    main()
