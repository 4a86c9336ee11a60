"""Scale-out, end to end, in real processes: producers -> Redis -> two consumers -> PostgreSQL.

One consumer is killed with SIGKILL while it holds a batch it has read and
not acknowledged; the other claims that batch. Every event must be in the
table exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services import pg_table, redis_stream, require_driver, table_url

pytestmark = pytest.mark.services
require_driver("psycopg", "postgres")
require_driver("redis", "redis")

import psycopg  # noqa: E402
import redis  # noqa: E402

PRODUCERS = 3
EVENTS_EACH = 1500
PRODUCER = """
import json, sys, time
from eventtracking import Tracker
from eventtracking.backends.redis_stream import RedisStreamBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.testing import InMemoryBackend

url, stream, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
kept = InMemoryBackend()
bus = DeliveryBackend(RedisStreamBackend(url, stream), batch_size=50, max_delay=0.05)
tracker = Tracker({"bus": bus, "kept": kept}, envelope="full")
tracker.enter_context("producer", {"pid": __import__("os").getpid()})
for i in range(n):
    tracker.emit("scale.test", {"i": i})
    if i % 50 == 49:
        time.sleep(0.02)  # a steady stream, so consumers work while producers run
tracker.close()
with open(out, "w") as handle:
    json.dump([event["id"] for event in kept.events], handle)
"""


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def stopped(pid: int) -> bool:
    """True once process `pid` is really stopped (SIGSTOP is delivered asynchronously)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def pending_of(client: redis.Redis, stream: str, consumer: str) -> int:
    try:
        summary: dict[str, Any] = client.xpending(stream, "g")
    except redis.ResponseError:  # the consumers have not created the group yet
        return 0
    for row in summary["consumers"]:
        if row["name"] in (consumer, consumer.encode()):
            return int(row["pending"])
    return 0


def consumers_of(client: redis.Redis, stream: str) -> set[str]:
    """The consumers of group "g" that have read at least once (none before it exists)."""
    try:
        rows = client.xinfo_consumers(stream, "g")
    except redis.ResponseError:
        return set()
    return {row["name"].decode() if isinstance(row["name"], bytes) else row["name"] for row in rows}


def test_two_consumers_one_killed_mid_batch_store_every_event_exactly_once(
    tmp_path: Path,
) -> None:
    with redis_stream("et-scale") as (url, stream), pg_table("et_scale") as (dsn, table):
        client = redis.Redis.from_url(url)
        processes: list[subprocess.Popen[str]] = []

        def consumer(name: str) -> subprocess.Popen[str]:
            command = [sys.executable, "-m", "eventtracking", "consume", url, "--stream", stream]
            command += ["--group", "g", "--consumer", name, "--to", table_url(dsn, table)]
            command += ["--batch", "100", "--block-ms", "100", "--claim-idle-ms", "1000"]
            command += ["--report-every", "1", "--json"]
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            processes.append(process)
            return process

        try:
            victim, survivor = consumer("victim"), consumer("survivor")
            # Both must be reading before anything is produced: on a loaded
            # machine the survivor could otherwise take every entry while the
            # victim is still starting, and the victim would never hold any.
            wait_for(
                lambda: consumers_of(client, stream) >= {"victim", "survivor"},
                60,
                "both consumers to read",
            )
            producers = []
            for k in range(PRODUCERS):
                out = tmp_path / f"ids-{k}.json"
                command = [sys.executable, "-c", PRODUCER, url, stream, str(EVENTS_EACH), str(out)]
                producers.append((subprocess.Popen(command, text=True), out))
            processes.extend(process for process, _ in producers)

            # Freeze the victim while it holds entries it read and did not ack, then kill it.
            wait_for(lambda: pending_of(client, stream, "victim") > 0, 60, "victim to read")
            while True:
                os.kill(victim.pid, signal.SIGSTOP)
                # Read what it holds only once it is stopped: until then its
                # threads may still acknowledge entries, and it would hold fewer.
                wait_for(lambda: stopped(victim.pid), 10, "the victim to stop")
                held = pending_of(client, stream, "victim")
                if held > 0:
                    break
                os.kill(victim.pid, signal.SIGCONT)
                time.sleep(0.005)
            victim.kill()  # SIGKILL, mid-batch
            victim.wait(10)
            assert pending_of(client, stream, "victim") == held > 0

            for process, _ in producers:
                assert process.wait(120) == 0
            produced: set[str] = set()
            for _, out in producers:
                produced.update(json.loads(out.read_text()))
            assert len(produced) == PRODUCERS * EVENTS_EACH

            def drained() -> bool:
                return client.xpending(stream, "g")["pending"] == 0 and client.xinfo_groups(stream)[
                    0
                ]["lag"] in (0, None)

            wait_for(drained, 120, "the survivor to drain the stream and claim the victim's")
            survivor.send_signal(signal.SIGTERM)
            out, err = survivor.communicate(timeout=30)
            assert survivor.returncode == 0, err
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
            client.close()

        summary = json.loads(out)
        assert summary["claimed"] >= held
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(f'SELECT id FROM "{table}"').fetchall()
        ids = [row[0] for row in rows]
        assert len(ids) == len(set(ids)) == len(produced)
        assert set(ids) == produced
