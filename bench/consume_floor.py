"""`eventtracking consume` (Redis stream -> PostgreSQL) against a hand-written loop, in one run.

The floor, run as its own process like ours: XREADGROUP 1,000 entries, one
COPY of their rows (``orjson.loads`` of each entry, ``write_row`` with
orjson-encoded data and context) into a table with the store's schema and
indexes, commit, XACK; again until stopped. Ours: ``eventtracking consume
REDIS --to postgresql://...`` with ``--batch 1000``, one worker and two; the
floor also runs with two workers, to show how far this machine lets two
workers scale (they share its CPUs with PostgreSQL and Redis).

Each run publishes N events (the shared workload, with ids) to a new
stream, with the consumers already started and paused (SIGSTOP); the clock
runs from their resumption until the group has no lag and nothing pending,
i.e. every event is committed and acknowledged. Then the table must hold
exactly N distinct events. Runs alternate floor and ours; medians count.

    .venv/bin/python bench/consume_floor.py --events 200000 [--rounds 3]

Figures go to a table on stdout and to bench/out/consume_floor.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import uuid
from typing import Any

import orjson

from backends import (
    OUT,
    PausedConsumers,
    available,
    pg_count,
    pg_drop,
    pg_fresh,
    probe_pg,
    probe_redis,
    workload,
)

BATCH = 1000
ONE_MIN = 0.95  # one `consume` worker against the floor
TWO_MIN = 1.8  # two workers against one


def floor_loop(url: str, dsn: str, stream: str, group: str, consumer: str) -> None:
    """The hand-written consumer: XREADGROUP, COPY, commit, XACK, until SIGTERM."""
    import psycopg
    import redis

    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    client = redis.Redis.from_url(url)
    with contextlib.suppress(redis.ResponseError):
        client.xgroup_create(stream, group, id="0", mkstream=True)
    client.xgroup_createconsumer(stream, group, consumer)  # a blocking read does not
    table = dsn.rsplit("table=", 1)[1]
    conn = psycopg.connect(dsn.split("?")[0])
    loads, dumps = orjson.loads, orjson.dumps
    written = 0
    while not stop:
        reply = client.xreadgroup(group, consumer, {stream: ">"}, count=BATCH, block=50)
        if not reply:
            continue
        entries = reply[0][1]
        with (
            conn.cursor() as cur,
            cur.copy(f'COPY "{table}" (id, name, ts, data, context, extra) FROM STDIN') as copy,
        ):
            for _, fields in entries:
                event = loads(fields[b"event"])
                copy.write_row(
                    (
                        event["id"],
                        event["name"],
                        event["timestamp"],
                        dumps(event["data"]).decode(),
                        dumps(event["context"]).decode(),
                        None,
                    )
                )
        conn.commit()
        client.xack(stream, group, *[entry_id for entry_id, _ in entries])
        written += len(entries)
    print(json.dumps({"written": written}))


def drain(url: str, dsn: str, payloads: list[bytes], consumers: int, floor: bool) -> dict[str, Any]:
    """Publish to a new stream, resume the paused consumers, time the drain."""
    import redis

    stream, table = f"bench-{uuid.uuid4().hex[:10]}", pg_fresh(dsn)
    client = redis.Redis.from_url(url)
    store_url = f"{dsn}{'&' if '?' in dsn else '?'}table={table}"
    commands = []
    for k in range(consumers):
        if floor:
            command = [sys.executable, __file__, "--floor-child", url, store_url, stream]
            command += ["bench", f"w{k}"]
        else:
            command = [sys.executable, "-m", "eventtracking", "consume", url]
            command += ["--stream", stream, "--group", "bench", "--consumer", f"w{k}"]
            command += ["--to", store_url, "--batch", str(BATCH), "--block-ms", "50"]
            command += ["--report-every", "60", "--json"]
        commands.append(command)
    try:
        with PausedConsumers(client, stream, commands) as workers:
            pipe = client.pipeline(transaction=False)
            for k, payload in enumerate(payloads):
                pipe.xadd(stream, {b"event": payload})
                if k % 1000 == 999:
                    pipe.execute()
            pipe.execute()
            seconds = workers.drain()
            workers.stop()
        n = len(payloads)
        assert pg_count(dsn, table) == (n, n), "events lost or duplicated"
        return {"consumers": consumers, "seconds": seconds, "events_per_s": n / seconds}
    finally:
        client.delete(stream)
        client.close()
        pg_drop(dsn, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("EVENTTRACKING_TEST_POSTGRES", "postgresql://127.0.0.1/test"),
    )
    parser.add_argument(
        "--redis", default=os.environ.get("EVENTTRACKING_TEST_REDIS", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--floor-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_loop(*args.floor_child)
        return
    if not available("PostgreSQL", lambda: probe_pg(args.dsn)) or not available(
        "Redis", lambda: probe_redis(args.redis)
    ):
        return
    from eventtracking.serialization import dumps

    payloads = [dumps(event) for event in workload(args.events)]
    plan = [
        ("floor", 1, True),
        ("ours, 1 worker", 1, False),
        ("floor, 2 workers", 2, True),
        ("ours, 2 workers", 2, False),
    ]
    runs: dict[str, list[float]] = {label: [] for label, _, _ in plan}
    for k in range(args.rounds):
        for label, consumers, floor in plan if k % 2 == 0 else plan[::-1]:
            result = drain(args.redis, args.dsn, payloads, consumers, floor)
            runs[label].append(result["events_per_s"])

    def paired(a: str, b: str) -> tuple[float, float, float]:
        """Median and range of the per-round ratios a / b."""
        ratios = sorted(x / y for x, y in zip(runs[a], runs[b], strict=True))
        return statistics.median(ratios), ratios[0], ratios[-1]

    print(f"\nRedis stream -> PostgreSQL, {args.events} events, {args.rounds} rounds (medians)")
    for label, values in runs.items():
        print(f"  {label:18} {statistics.median(values):>10,.0f} events/s")
    ratios = {
        "one worker / floor": (paired("ours, 1 worker", "floor"), ONE_MIN),
        "two / one worker": (paired("ours, 2 workers", "ours, 1 worker"), TWO_MIN),
        "floor: two / one": (paired("floor, 2 workers", "floor"), None),
    }
    for label, ((ratio, low, high), target) in ratios.items():
        verdict = "what two workers reach on this machine"
        if target is not None:
            verdict = f">= {target}x: {'pass' if ratio >= target else 'NOT MET'}"
        print(f"  {label:18} {ratio:.2f}x ({low:.2f}-{high:.2f})  {verdict}")
    OUT.mkdir(exist_ok=True)
    summary = {"events": args.events, "runs": runs}
    summary.update({label: list(value[0]) for label, value in ratios.items()})
    (OUT / "consume_floor.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
