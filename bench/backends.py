"""Benchmark the PostgreSQL and Redis backends against hand-written loops, in one run.

Workload (the shape of ../shared/bench/peers.py): two nested contexts (outer:
user_id, org, course_id; inner: session_id, path), then N events
'navigation.request' with {url, n}, emitted once through a Tracker and kept,
so that every contender below handles the very same event dicts.

- PostgreSQL ingest: the writer, `PostgresBackend.send_batch` of 5,000
  events at a time (what the delivery worker hands it), then `close()`,
  against a hand-written psycopg loop: one COPY (``write_row`` with
  orjson-encoded data and context) into a table with the same schema and
  indexes, in one transaction. Target: at most 1.5x. Also shown, without a
  target: the backend as configuration builds it (behind the delivery
  worker, buffered, with its journal), `send` for each event, then
  `close(timeout)`: a tight loop that outruns the server, so the emitting
  thread and the worker share the GIL and what exceeds the queue goes
  through the journal.
- Redis publish: the same two ways, against a hand-written loop: orjson per
  event, pipelined raw XADD commands, 500 per round trip (the backend's
  default batch). Target for the writer: at most 1.5x.
- End to end: publish N events, then drain them into PostgreSQL with one,
  then two ``eventtracking consume`` processes; the clock runs from the
  moment the (already started, paused) consumers resume until the group has
  no lag and nothing pending, i.e. every event is committed and acked.

    .venv/bin/python bench/backends.py --events 200000 [--repeat 3]

Prints a table and writes bench/out/backends.json. A service that does not
answer is reported and its figures skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from eventtracking.delivery.configure import NO_SETTING, deliver
from eventtracking.delivery.paths import ENV
from eventtracking.testing import InMemoryBackend
from eventtracking.tracker import Tracker
from peers.workload import INNER, OUTER, URL

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"

MAX_RATIO = 1.5
DELIVERED = "emit through the default delivery, "
console = Console()


def workload(n: int) -> list[dict[str, Any]]:
    """The shared workload's events, emitted through the public API, with ids.

    With ids (``envelope="full"``), so that the hand-written loops, which
    store ``event["id"]``, and ours handle the very same dicts.
    """
    kept = InMemoryBackend()
    tracker = Tracker({"kept": kept}, envelope="full")
    tracker.enter_context("outer", OUTER)
    with tracker.context("inner", INNER):
        for i in range(n):
            tracker.emit("navigation.request", {"url": URL % i, "n": i})
    tracker.close()
    return kept.events


def clock(run: Callable[[], None]) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


# -- PostgreSQL ---------------------------------------------------------------------------


def pg_fresh(dsn: str) -> str:
    """A new, empty events table with the store's schema (created outside the clock)."""
    from eventtracking.store.postgres import PostgresStore

    table = f"bench_{uuid.uuid4().hex[:10]}"
    PostgresStore(dsn, table).close()
    return table


def pg_drop(dsn: str, table: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_types", "{table}_migrations"')


def pg_count(dsn: str, table: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(f'SELECT count(*), count(DISTINCT id) FROM "{table}"').fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def pg_ours(dsn: str, events: list[dict[str, Any]], delivered: bool) -> float:
    from eventtracking.backends.postgres import PostgresBackend

    table = pg_fresh(dsn)
    try:
        writer = PostgresBackend(dsn, table)
        backend = deliver(writer, NO_SETTING, "pg")  # as configured

        def run() -> None:
            if delivered:
                for event in events:
                    backend.send(event)
                backend.close(300)
            else:
                for start in range(0, len(events), writer.batch_size):
                    writer.send_batch(events[start : start + writer.batch_size])
                writer.close()

        seconds = clock(run)
        assert pg_count(dsn, table) == (len(events), len(events)), "PostgresBackend lost events"
        return seconds
    finally:
        pg_drop(dsn, table)


def pg_by_hand(dsn: str, events: list[dict[str, Any]]) -> float:
    import psycopg

    table = pg_fresh(dsn)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:

            def run() -> None:
                dumps = orjson.dumps
                copy_sql = f'COPY "{table}" (id, name, ts, data, context) FROM STDIN'
                with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                    for e in events:
                        row = (e["id"], e["name"], e["timestamp"], dumps(e["data"]).decode())
                        copy.write_row((*row, dumps(e["context"]).decode()))

            seconds = clock(run)
        assert pg_count(dsn, table) == (len(events), len(events)), "the COPY loop lost events"
        return seconds
    finally:
        pg_drop(dsn, table)


# -- Redis ------------------------------------------------------------------------------


def redis_ours(url: str, events: list[dict[str, Any]], delivered: bool) -> float:
    import redis

    from eventtracking.backends.redis_stream import RedisStreamBackend

    stream = f"bench-{uuid.uuid4().hex[:10]}"
    writer = RedisStreamBackend(url, stream)
    backend = deliver(writer, NO_SETTING, "bus")  # as configured
    client = redis.Redis.from_url(url)
    try:

        def run() -> None:
            if delivered:
                for event in events:
                    backend.send(event)
                backend.close(300)
            else:
                for start in range(0, len(events), writer.batch_size):
                    writer.send_batch(events[start : start + writer.batch_size])
                writer.close()
                backend.close()

        seconds = clock(run)
        assert client.xlen(stream) == len(events), "RedisStreamBackend lost events"
        return seconds
    finally:
        client.delete(stream)
        client.close()


def redis_by_hand(url: str, events: list[dict[str, Any]]) -> float:
    import redis

    stream = f"bench-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(url)
    try:

        def run() -> None:
            dumps = orjson.dumps
            for start in range(0, len(events), 500):
                pipe = client.pipeline(transaction=False)
                for event in events[start : start + 500]:
                    pipe.execute_command("XADD", stream, "*", b"event", dumps(event))
                pipe.execute()

        seconds = clock(run)
        assert client.xlen(stream) == len(events), "the XADD loop lost events"
        return seconds
    finally:
        client.delete(stream)
        client.close()


# -- end to end -------------------------------------------------------------------------


def end_to_end(url: str, dsn: str, events: list[dict[str, Any]], consumers: int) -> dict[str, Any]:
    """Publish, then drain with `consumers` worker processes; seconds and events/s."""
    import redis

    from eventtracking.backends.redis_stream import RedisStreamBackend

    stream, table = f"bench-{uuid.uuid4().hex[:10]}", pg_fresh(dsn)
    client = redis.Redis.from_url(url)
    store_url = f"{dsn}{'&' if '?' in dsn else '?'}table={table}"
    commands = []
    for k in range(consumers):
        command = [sys.executable, "-m", "eventtracking", "consume", url, "--stream", stream]
        command += ["--group", "bench", "--consumer", f"w{k}", "--to", store_url]
        command += ["--batch", "1000", "--block-ms", "50", "--report-every", "60", "--json"]
        commands.append(command)
    try:
        with PausedConsumers(client, stream, commands) as workers:
            backend = deliver(RedisStreamBackend(url, stream), NO_SETTING, "bus")

            def publish_all() -> None:
                for event in events:
                    backend.send(event)
                backend.close(300)

            publish = clock(publish_all)
            drain = workers.drain()
            summaries = [json.loads(out) for out in workers.stop()]
        assert pg_count(dsn, table) == (len(events), len(events)), "events lost end to end"
        return {
            "consumers": consumers,
            "publish_s": publish,
            "drain_s": drain,
            "drain_events_per_s": len(events) / drain,
            "end_to_end_events_per_s": len(events) / (publish + drain),
            "written_per_consumer": [summary["written"] for summary in summaries],
        }
    finally:
        client.delete(stream)
        client.close()
        pg_drop(dsn, table)


class PausedConsumers:
    """Consumer processes (one command each) reading `stream` in the group ``bench``.

    Entering starts them, waits until every one reads the stream, then pauses
    them (SIGSTOP), so that a stream can be filled before the clock starts.
    `drain` resumes them and times until the group has no lag and nothing
    pending; `stop` ends them with SIGTERM and returns what each printed.
    Leaving kills any still running.
    """

    def __init__(self, client: Any, stream: str, commands: list[list[str]]) -> None:
        self.client, self.stream, self.commands = client, stream, commands
        self.workers: list[subprocess.Popen[str]] = []

    def __enter__(self) -> PausedConsumers:
        try:
            for command in self.commands:
                self.workers.append(
                    subprocess.Popen(
                        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    )
                )
            deadline = time.monotonic() + 60
            while self._ready() < len(self.workers):  # started and blocking on reads
                if time.monotonic() > deadline or any(w.poll() is not None for w in self.workers):
                    for worker in self.workers:
                        worker.kill()
                    errors = "".join(worker.communicate()[1] for worker in self.workers)
                    raise RuntimeError(f"consumers did not start: {errors[-2000:]}")
                time.sleep(0.05)
            for worker in self.workers:
                os.kill(worker.pid, signal.SIGSTOP)
        except BaseException:
            self.__exit__()
            raise
        return self

    def drain(self) -> float:
        """Resume the consumers; seconds until every entry is acknowledged."""
        start = time.perf_counter()
        for worker in self.workers:
            os.kill(worker.pid, signal.SIGCONT)
        while not self._drained():
            time.sleep(0.005)
        return time.perf_counter() - start

    def stop(self) -> list[str]:
        """SIGTERM every consumer; what each printed on stdout."""
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        return [worker.communicate(timeout=60)[0] for worker in self.workers]

    def __exit__(self, *exc_info: object) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
                worker.kill()
                worker.wait(10)

    def _ready(self) -> int:
        try:
            return len(self.client.xinfo_consumers(self.stream, "bench"))
        except Exception:  # the group does not exist yet
            return 0

    def _drained(self) -> bool:
        (group,) = self.client.xinfo_groups(self.stream)
        return bool(group["lag"] == 0 and group["pending"] == 0)


# -- the run ----------------------------------------------------------------------------


def available(name: str, probe: Callable[[], object]) -> bool:
    try:
        probe()
    except Exception as exc:
        console.print(f"[yellow]{name} unavailable, its figures are skipped: {exc}[/]")
        return False
    return True


def probe_pg(dsn: str) -> None:
    import psycopg

    psycopg.connect(dsn, connect_timeout=3).close()


def probe_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_connect_timeout=3).ping()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; best counts")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("EVENTTRACKING_TEST_POSTGRES", "postgresql://127.0.0.1/test"),
    )
    parser.add_argument(
        "--redis", default=os.environ.get("EVENTTRACKING_TEST_REDIS", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be positive")
    os.environ.setdefault(ENV, tempfile.mkdtemp(prefix="eventtracking-bench-journal-"))
    console.print(f"load average {os.getloadavg()[0]:.2f}; building {args.events:,} events")
    events = workload(args.events)
    has_pg = available("PostgreSQL", lambda: probe_pg(args.dsn))
    has_redis = available("Redis", lambda: probe_redis(args.redis))
    pairs: dict[str, tuple[Callable[[], float], Callable[[], float]]] = {}
    if has_pg:
        pairs["PostgreSQL ingest, the writer"] = (
            lambda: pg_ours(args.dsn, events, delivered=False),
            lambda: pg_by_hand(args.dsn, events),
        )
        pairs[DELIVERED + "PostgreSQL"] = (
            lambda: pg_ours(args.dsn, events, delivered=True),
            lambda: pg_by_hand(args.dsn, events),
        )
    if has_redis:
        pairs["Redis publish, the writer"] = (
            lambda: redis_ours(args.redis, events, delivered=False),
            lambda: redis_by_hand(args.redis, events),
        )
        pairs[DELIVERED + "Redis"] = (
            lambda: redis_ours(args.redis, events, delivered=True),
            lambda: redis_by_hand(args.redis, events),
        )
    runs: dict[str, dict[str, list[float]]] = {name: {"ours": [], "hand": []} for name in pairs}
    for round_ in range(args.repeat):  # alternate, so a noisy moment hits both alike
        console.print(f"round {round_ + 1} of {args.repeat}")
        for name, (ours, hand) in pairs.items():
            runs[name]["hand"].append(hand())
            runs[name]["ours"].append(ours())
    e2e = []
    if has_pg and has_redis:
        for consumers in (1, 2):
            console.print(f"end to end with {consumers} consumer(s)")
            e2e.append(end_to_end(args.redis, args.dsn, events, consumers))
    report(args, runs, e2e)


def report(
    args: argparse.Namespace, runs: dict[str, dict[str, list[float]]], e2e: list[dict[str, Any]]
) -> None:
    n = args.events
    table = Table(title=f"{n:,} events; best of {args.repeat} runs")
    for column in ("figure", "us/event", "events/s", "ratio", "target", "result"):
        table.add_column(column, justify="left" if column in ("figure", "target") else "right")
    figures: list[dict[str, Any]] = []
    for name, times in runs.items():
        ours, hand = min(times["ours"]), min(times["hand"])
        ratio = ours / hand
        judged = not name.startswith(DELIVERED)  # the writer has a target; a burst, none
        ok = ratio <= MAX_RATIO or not judged
        rows = ((f"{name}: ours", ours),)
        if judged:  # the same hand-written loop: shown once, next to the writer
            rows = ((f"{name}: hand-written loop", hand), *rows)
        for label, seconds in rows:
            mine = label.endswith("ours")
            table.add_row(
                label,
                f"{seconds / n * 1e6:.2f}",
                f"{n / seconds:,.0f}",
                f"{ratio:.2f}x" if mine else "",
                f"<= {MAX_RATIO}x" if mine and judged else "",
                ("[green]PASS[/]" if ok else "[red]FAIL[/]") if mine and judged else "",
            )
        figures.append(
            {"figure": name, "ours_s": ours, "hand_s": hand, "ratio": ratio, "pass": ok}
            | {"us_per_event_ours": ours / n * 1e6, "us_per_event_hand": hand / n * 1e6}
            | {"runs_ours_s": times["ours"], "runs_hand_s": times["hand"]}
        )
    for row in e2e:
        label = f"end to end, {row['consumers']} consumer(s): drain"
        table.add_row(label, "", f"{row['drain_events_per_s']:,.0f}", "", "", "")
        label = f"end to end, {row['consumers']} consumer(s): publish + drain"
        table.add_row(label, "", f"{row['end_to_end_events_per_s']:,.0f}", "", "", "")
    console.print(table)
    if len(e2e) == 2:
        speedup = e2e[1]["drain_events_per_s"] / e2e[0]["drain_events_per_s"]
        console.print(f"two consumers drain {speedup:.2f}x as fast as one ({os.cpu_count()} CPUs)")
    results = {
        "events": n,
        "repeat": args.repeat,
        "figures": figures,
        "end_to_end": e2e,
        "when": datetime.now(UTC).isoformat(),
        "python": sys.version.split()[0],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_average": os.getloadavg(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "backends.json").write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"Wrote {OUT / 'backends.json'}")


if __name__ == "__main__":
    main()
