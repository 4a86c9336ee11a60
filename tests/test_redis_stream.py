"""Redis Streams: the publishing backend and the consumer-group worker, on a real Redis."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from eventtracking import diagnostics
from eventtracking.cli import cli
from eventtracking.delivery import DeliveryBackend, RetryPolicy
from eventtracking.exceptions import RetryableError, StoreError, TerminalError
from eventtracking.serialization import dumps
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore
from services import pg_table, redis_stream, require_driver, table_url

pytestmark = pytest.mark.services
require_driver("redis", "redis")

import redis  # noqa: E402

from eventtracking.backends.redis_stream import RedisStreamBackend  # noqa: E402
from eventtracking.consumer.consume import StreamConsumer  # noqa: E402
from eventtracking.consumer.sinks import StoreSink, open_sink  # noqa: E402

T0 = datetime(2026, 2, 1, 8, tzinfo=UTC)


def ev(i: int, name: str = "a.b") -> dict[str, Any]:
    return {
        "id": f"id-{i:06d}",
        "name": name,
        "timestamp": T0 + timedelta(seconds=i),
        "data": {"i": i},
        "context": {"user_id": i % 7},
    }


@pytest.fixture
def stream() -> Iterator[tuple[str, str]]:
    with redis_stream() as names:
        yield names


@pytest.fixture
def client(stream: tuple[str, str]) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(stream[0]) as client:
        yield client


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def publish(url: str, name: str, events: list[dict[str, Any]]) -> None:
    backend = RedisStreamBackend(url, name)
    backend.send_batch(events)
    backend.close()


# -- the backend --------------------------------------------------------------------------


def test_each_send_batch_is_one_round_trip_of_one_field_entries(
    stream: tuple[str, str], client: redis.Redis
) -> None:
    url, name = stream
    backend = RedisStreamBackend(url, name, batch_size=3)
    events = [ev(i) for i in range(7)]
    backend.send(events[0])
    assert client.xlen(name) == 1  # a plain writer: nothing is held back
    backend.send_batch(events[1:])  # split beyond batch_size: 3 + 3
    assert client.xlen(name) == 7
    entries = client.xrange(name)
    assert [fields for _, fields in entries] == [{b"event": dumps(e)} for e in events]
    assert backend.flush(0.0) is True
    backend.close()


def test_behind_the_delivery_worker_a_partial_batch_is_published_after_max_delay(
    stream: tuple[str, str], client: redis.Redis
) -> None:
    url, name = stream
    delivery = DeliveryBackend(RedisStreamBackend(url, name), batch_size=100, max_delay=0.05)
    delivery.send(ev(1))
    wait_for(lambda: client.xlen(name) == 1, timeout=10)
    delivery.send(ev(2))  # the same worker serves the next partial batch
    wait_for(lambda: client.xlen(name) == 2, timeout=10)
    delivery.close()


def test_an_invalid_string_is_repaired_and_the_batch_kept(
    stream: tuple[str, str], client: redis.Redis
) -> None:
    url, name = stream
    backend = RedisStreamBackend(url, name)
    backend.send_batch([ev(1), ev(2) | {"data": {"text": "a\ud800b"}}, ev(3)])
    backend.close()
    events = [orjson.loads(fields[b"event"]) for _, fields in client.xrange(name)]
    assert [e["id"] for e in events] == ["id-000001", "id-000002", "id-000003"]
    assert events[1]["data"]["text"] == "a\ufffdb"
    assert diagnostics.snapshot()["serialization.repaired"] == 1


def test_maxlen_caps_the_stream(stream: tuple[str, str], client: redis.Redis) -> None:
    url, name = stream
    exact = RedisStreamBackend(url, name, maxlen=10, approximate=False)
    exact.send_batch([ev(i) for i in range(25)])
    exact.close()
    assert client.xlen(name) == 10
    assert orjson.loads(client.xrange(name)[0][1][b"event"])["data"]["i"] == 15
    cheap = RedisStreamBackend(url, name, maxlen=100)
    cheap.send_batch([ev(i) for i in range(1000)])
    cheap.close()
    assert 100 <= client.xlen(name) < 1000


def test_bad_options_are_rejected(stream: tuple[str, str]) -> None:
    url, name = stream
    for maxlen in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="maxlen must be a positive int"):
            RedisStreamBackend(url, name, maxlen=maxlen)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stream must be a non-empty string"):
        RedisStreamBackend(url, "")
    with pytest.raises(ValueError, match="batch_size"):
        RedisStreamBackend(url, name, batch_size=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch": 0}, "batch must be a positive int, not 0"),
        ({"block_ms": 1.5}, "block_ms must be a positive int, not 1.5"),
        ({"claim_idle_ms": -1}, "claim_idle_ms must be an int >= 0, not -1"),
        ({"forget_idle_ms": 0}, "forget_idle_ms must be a positive int or None, not 0"),
        ({"report_every": "10"}, "report_every must be a number of seconds, not '10'"),
        ({"report_every": 0}, "report_every must be more than 0 seconds, not 0"),
        ({"report_every": float("nan")}, "report_every must be more than 0 seconds, not nan"),
        ({"read_ahead": "no"}, "read_ahead must be True or False, not 'no'"),
    ],
)
def test_bad_consumer_options_say_what_to_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        StreamConsumer(None, "s", "g", None, **options)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_a_key_of_another_type_is_a_terminal_error(
    stream: tuple[str, str], client: redis.Redis
) -> None:
    url, name = stream
    client.set(name, "not a stream")
    backend = RedisStreamBackend(url, name)
    with pytest.raises(TerminalError, match="rejected 2 events"):
        backend.send_batch([ev(1), ev(2)])
    assert backend.flush(1.0) is True  # nothing kept: the delivery worker dead-letters
    backend.close()


def test_an_unreachable_redis_is_a_retryable_error_and_the_worker_keeps_the_events(
    tmp_path: Path,
) -> None:
    backend = RedisStreamBackend("redis://127.0.0.1:1/0", "s", socket_timeout=1)
    with pytest.raises(RetryableError, match="publishing them again is safe"):
        backend.send_batch([ev(1)])
    delivery = DeliveryBackend(
        backend, journal_dir=tmp_path / "j", circuit={"failure_threshold": 1}, max_delay=0
    )
    delivery.send(ev(2))  # returns at once; never raises
    assert delivery.flush(0.2) is False
    delivery.close()
    assert delivery.metrics_snapshot()["dropped"] == {}  # kept in the journal


def test_error_messages_never_show_the_password_in_the_url(tmp_path: Path) -> None:
    from eventtracking.consumer.consume import redis_client

    url = "redis://:s3cret-pw@127.0.0.1:1/0"
    backend = RedisStreamBackend(url, "s", socket_timeout=1)
    with pytest.raises(RetryableError) as raised:
        backend.send_batch([ev(1)])
    message = str(raised.value)
    assert "s3cret-pw" not in message and "redis://:***@127.0.0.1:1/0" in message
    with pytest.raises(StoreError) as refused:
        redis_client(url)
    assert "s3cret-pw" not in str(refused.value)
    args = ["--to", str(tmp_path / "x.db"), "--stream", "s", "--group", "g"]
    result = CliRunner().invoke(cli, ["consume", url, *args])
    assert result.exit_code == 1 and "Redis at redis://:***@127.0.0.1:1/0" in result.output
    result = CliRunner().invoke(cli, ["consume", "http://u:s3cret-pw@h/", *args])
    assert result.exit_code == 2 and "'http://u:***@h/' is not a Redis URL" in result.output


# -- the consumer, in this process ---------------------------------------------------------


class FlakySink:
    """A real SQLite store behind a switch that makes writes fail (fault injection)."""

    def __init__(self, path: Path, fail: Callable[[list[dict[str, Any]]], Exception | None]):
        self.sink = StoreSink(SQLiteStore(path))
        self.fail = fail
        self.calls = 0

    def write(self, events: list[dict[str, Any]]) -> None:
        self.calls += 1
        error = self.fail(events)
        if error is not None:
            raise error
        self.sink.write(events)

    def close(self) -> None:
        self.sink.close()


@contextmanager
def consuming(
    url: str, name: str, sink: Any, **options: Any
) -> Iterator[tuple[StreamConsumer, list[str]]]:
    """A StreamConsumer running in a thread until the block ends; yields it and its reports."""
    client = redis.Redis.from_url(url)
    lines: list[str] = []
    options = {"block_ms": 50, "report_every": 0.1, "consumer": "c1"} | options
    consumer = StreamConsumer(client, name, "g", sink, report=lines.append, **options)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    try:
        yield consumer, lines
    finally:
        stop.set()
        thread.join(30)
        client.close()
    assert not thread.is_alive()


def stored(path: Path) -> list[str]:
    store = SQLiteStore(path, create=False)
    try:
        return [event["id"] for event in store.query(Query(limit=None))]
    finally:
        store.close()


def group_info(client: redis.Redis, name: str) -> dict[str, Any]:
    (info,) = client.xinfo_groups(name)
    return info  # type: ignore[no-any-return]


def test_the_consumer_drains_the_stream_into_a_store_and_acks(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path
) -> None:
    url, name = stream
    publish(url, name, [ev(i) for i in range(1200)])  # published before the group exists
    path = tmp_path / "sink.db"
    with consuming(url, name, open_sink(str(path)), batch=500) as (consumer, lines):
        wait_for(lambda: consumer.stats.acked == 1200)
        publish(url, name, [ev(i) for i in range(1200, 1300)])
        wait_for(lambda: consumer.stats.acked == 1300)
        wait_for(lambda: consumer.stats.lag == 0)
    assert stored(path) == [f"id-{i:06d}" for i in range(1300)]
    info = group_info(client, name)
    assert info["pending"] == 0 and info["lag"] == 0
    assert any("lag 0, pending 0" in line for line in lines)
    assert lines[-1].startswith(f"consume {name}/g/c1: stopped: 1300 written")


@pytest.mark.parametrize("read_ahead", [True, False])
def test_entries_are_acked_only_after_the_sink_committed(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path, read_ahead: bool
) -> None:
    url, name = stream
    broken = threading.Event()
    broken.set()
    sink = FlakySink(
        tmp_path / "s.db", lambda events: OSError("disk away") if broken.is_set() else None
    )
    publish(url, name, [ev(i) for i in range(70)])
    # Read, not acked: the batch in hand, and the one read ahead; no more.
    held = 40 if read_ahead else 20
    with consuming(url, name, sink, batch=20, read_ahead=read_ahead) as (consumer, _):
        wait_for(lambda: sink.calls >= 3)  # retrying the first batch
        assert client.xpending(name, "g")["pending"] == held
        wait_for(lambda: sink.calls >= 5)
        assert client.xpending(name, "g")["pending"] == held
        assert consumer.stats.acked == 0 and stored(tmp_path / "s.db") == []
        broken.clear()
        wait_for(lambda: consumer.stats.acked == 70)
    assert consumer.stats.retries >= 4
    assert stored(tmp_path / "s.db") == [f"id-{i:06d}" for i in range(70)]


def drain_in_thread(
    client: redis.Redis, name: str, tmp_path: Path, n: int, **options: Any
) -> tuple[StreamConsumer, int]:
    """Run a consumer of `client` (batches of 10) in a thread named ``main-loop`` until it
    acked `n` entries, then stop it; the consumer, and the entries pending at that moment."""
    consumer = StreamConsumer(
        client,
        name,
        "g",
        open_sink(str(tmp_path / "s.db")),
        consumer="c1",
        batch=10,
        block_ms=50,
        retry=RetryPolicy(max_attempts=None, initial_backoff=0.01, max_backoff=0.05),
        **options,
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), name="main-loop")
    thread.start()
    try:
        wait_for(lambda: consumer.stats.acked == n)
        pending = int(client.xpending(name, "g")["pending"])
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    return consumer, pending


class FailingReads(redis.Redis):
    """A real client whose new-entry reads fail `failures` times (as a dropped connection)
    once `after` of them succeeded."""

    def __init__(self, url: str, failures: int, after: int) -> None:
        super().__init__(connection_pool=redis.ConnectionPool.from_url(url))
        self.failures = failures
        self.after = after  # new-entry reads that succeed first
        self.threads: set[str] = set()

    def xreadgroup(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.add(threading.current_thread().name)
        if ">" in args[2].values():  # args: group, consumer, streams
            if self.after:
                self.after -= 1
            elif self.failures:
                self.failures -= 1
                raise redis.ConnectionError("connection reset (injected)")
        return super().xreadgroup(*args, **kwargs)


@pytest.mark.parametrize("read_ahead", [True, False])
@pytest.mark.parametrize("after", [0, 2])
def test_a_failed_read_is_retried_and_nothing_is_lost(
    stream: tuple[str, str], tmp_path: Path, read_ahead: bool, after: int
) -> None:
    url, name = stream
    publish(url, name, [ev(i) for i in range(45)])
    client = FailingReads(url, failures=3, after=after)  # at the start, or between batches
    consumer, _ = drain_in_thread(client, name, tmp_path, 45, read_ahead=read_ahead)
    assert consumer.stats.retries == 3 and client.failures == 0
    assert consumer.stats.read == consumer.stats.written == 45
    assert stored(tmp_path / "s.db") == [f"id-{i:06d}" for i in range(45)]
    assert client.xpending(name, "g")["pending"] == 0
    readers = {"consume-read-ahead"} if read_ahead else {"main-loop"}
    assert client.threads == readers | {"main-loop"}  # the first, own-pending read
    assert "consume-read-ahead" not in {t.name for t in threading.enumerate()}
    client.close()


class WatchedAcks(redis.Redis):
    """A real client that records which thread acknowledges, and fails the first
    `failures` acknowledgements made by the read-ahead thread."""

    def __init__(self, url: str, failures: int = 0) -> None:
        super().__init__(connection_pool=redis.ConnectionPool.from_url(url))
        self.failures = failures
        self.acks: list[tuple[str, int]] = []

    def xack(self, name: Any, groupname: Any, *ids: Any) -> Any:
        thread = threading.current_thread().name
        if self.failures and thread == "consume-read-ahead":
            self.failures -= 1
            raise redis.ConnectionError("connection reset (injected)")
        self.acks.append((thread, len(ids)))
        return super().xack(name, groupname, *ids)


@pytest.mark.parametrize("failures", [0, 2])
def test_full_batches_are_acked_by_the_read_ahead_thread_and_the_last_at_once(
    stream: tuple[str, str], tmp_path: Path, failures: int
) -> None:
    url, name = stream
    publish(url, name, [ev(i) for i in range(45)])
    client = WatchedAcks(url, failures)
    consumer, pending = drain_in_thread(client, name, tmp_path, 45)
    assert pending == 0  # once all were acked: the last, partial batch did not wait
    assert consumer.stats.acked == consumer.stats.written == 45
    assert consumer.stats.retries == failures
    by_thread = {t: sum(n for t2, n in client.acks if t2 == t) for t, _ in client.acks}
    assert by_thread["consume-read-ahead"] >= 30  # full batches, off the writing thread
    assert ("main-loop", 5) in client.acks  # the last, partial batch: at once
    assert stored(tmp_path / "s.db") == [f"id-{i:06d}" for i in range(45)]
    client.close()


class CountingStop(threading.Event):
    """A stop signal that records each wait the consumer asks for, and waits none of it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.waits.append(timeout)
        return self.is_set()


def test_a_failing_sink_is_retried_under_the_delivery_retry_policy(
    stream: tuple[str, str], tmp_path: Path
) -> None:
    url, name = stream
    failures = iter([OSError("disk away")] * 5)
    sink = FlakySink(tmp_path / "s.db", lambda events: next(failures, None))
    publish(url, name, [ev(i) for i in range(3)])
    client = redis.Redis.from_url(url)
    policy = RetryPolicy(max_attempts=None, initial_backoff=0.5, max_backoff=3.0)
    consumer = StreamConsumer(
        client, name, "g", sink, consumer="c1", block_ms=50, retry=policy, rand=lambda: 1.0
    )
    stop = CountingStop()
    consumer.ensure_group()
    entries = consumer._read(">")
    consumer._process(entries, stop)  # the batch is retried in this thread until written
    client.close()
    assert stop.waits == [0.5, 1.0, 2.0, 3.0, 3.0]  # doubling, capped, jitter at its top
    assert consumer.stats.retries == 5 and consumer.stats.acked == 3
    assert stored(tmp_path / "s.db") == [f"id-{i:06d}" for i in range(3)]


def test_the_collector_is_paused_only_while_a_batch_is_written_never_across_a_retry_wait(
    stream: tuple[str, str], tmp_path: Path
) -> None:
    url, name = stream
    during_writes: list[bool] = []

    def fail_twice(events: list[dict[str, Any]]) -> Exception | None:
        during_writes.append(gc.isenabled())
        return OSError("disk away") if len(during_writes) <= 2 else None

    class RecordingStop(CountingStop):
        def __init__(self) -> None:
            super().__init__()
            self.during_waits: list[bool] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.during_waits.append(gc.isenabled())
            return super().wait(timeout)

    sink = FlakySink(tmp_path / "s.db", fail_twice)
    publish(url, name, [ev(i) for i in range(3)])
    client = redis.Redis.from_url(url)
    consumer = StreamConsumer(client, name, "g", sink, consumer="c1", rand=lambda: 0.0)
    stop = RecordingStop()
    consumer.ensure_group()
    assert gc.isenabled()
    consumer._process(consumer._read(">"), stop)
    client.close()
    assert during_writes == [False, False, False]  # paused for each attempt
    assert stop.during_waits == [True, True]  # on again while waiting to retry
    assert gc.isenabled()
    assert stored(tmp_path / "s.db") == [f"id-{i:06d}" for i in range(3)]


def test_overlapping_collector_pauses_end_with_the_last_one() -> None:
    from eventtracking.consumer.consume import _CollectorPause

    pause = _CollectorPause()
    assert gc.isenabled()
    with pause():  # the main thread writes ...
        decoding = pause()
        decoding.__enter__()  # ... while the read-ahead thread decodes
        assert not gc.isenabled()
    assert not gc.isenabled()  # the decode still runs
    decoding.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()  # a program that keeps the collector off keeps it off
    try:
        with pause():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_entries_left_by_a_dead_consumer_are_claimed(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path
) -> None:
    url, name = stream
    publish(url, name, [ev(i) for i in range(80)])
    client.xgroup_create(name, "g", id="0")
    client.xreadgroup("g", "dead", {name: ">"}, count=30)  # read, then "died"
    with consuming(url, name, open_sink(str(tmp_path / "s.db")), claim_idle_ms=300) as (
        consumer,
        _,
    ):
        wait_for(lambda: consumer.stats.acked == 80)
    assert consumer.stats.claimed == 30
    assert stored(tmp_path / "s.db") == sorted(f"id-{i:06d}" for i in range(80))
    assert client.xpending(name, "g")["pending"] == 0


def test_idle_consumers_with_nothing_pending_are_forgotten(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path
) -> None:
    url, name = stream
    publish(url, name, [ev(i) for i in range(20)])
    client.xgroup_create(name, "g", id="0")
    client.xreadgroup("g", "gone", {name: ">"}, count=5)  # died holding 5
    client.xreadgroup("g", "stopped", {name: ">"}, count=5)
    held = client.xpending_range(name, "g", "-", "+", 5, "stopped")
    client.xack(name, "g", *[e["message_id"] for e in held])  # stopped cleanly
    with consuming(
        url, name, open_sink(str(tmp_path / "s.db")), claim_idle_ms=200, forget_idle_ms=300
    ) as (consumer, _):
        wait_for(lambda: consumer.stats.acked == 15)  # "gone"'s 5 are claimed first
        wait_for(lambda: consumer.stats.forgotten == 2)
    names = {c["name"].decode() for c in client.xinfo_consumers(name, "g")}
    assert names == {"c1"}  # both left, and nothing they held was lost
    assert sorted(stored(tmp_path / "s.db")) == [f"id-{i:06d}" for i in range(5)] + [
        f"id-{i:06d}" for i in range(10, 20)
    ]
    assert client.xpending(name, "g")["pending"] == 0


def test_a_consumer_holding_entries_is_never_forgotten(
    stream: tuple[str, str], client: redis.Redis
) -> None:
    from eventtracking.consumer.consume import _FORGET_IDLE

    url, name = stream
    publish(url, name, [ev(i) for i in range(3)])
    client.xgroup_create(name, "g", id="0")
    client.xreadgroup("g", "busy", {name: ">"}, count=3)
    time.sleep(0.05)
    assert client.eval(_FORGET_IDLE, 1, name, "g", "busy", 10) == -1
    assert client.xpending(name, "g")["pending"] == 3
    held = client.xpending_range(name, "g", "-", "+", 3)
    client.xack(name, "g", *[e["message_id"] for e in held])
    assert client.eval(_FORGET_IDLE, 1, name, "g", "busy", 10) == 0  # now: nothing pending
    assert client.xinfo_consumers(name, "g") == []


def test_a_restarted_consumer_first_finishes_its_own_pending_entries(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path
) -> None:
    url, name = stream
    publish(url, name, [ev(i) for i in range(10)])
    client.xgroup_create(name, "g", id="0")
    client.xreadgroup("g", "c1", {name: ">"}, count=4)  # c1 crashed holding 4
    with consuming(url, name, open_sink(str(tmp_path / "s.db")), claim_idle_ms=3_600_000) as (
        consumer,
        _,
    ):
        wait_for(lambda: consumer.stats.acked == 10)
    assert consumer.stats.claimed == 0
    assert sorted(stored(tmp_path / "s.db")) == [f"id-{i:06d}" for i in range(10)]


def test_entries_that_are_not_events_and_events_the_sink_rejects_are_dead_lettered(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path
) -> None:
    url, name = stream
    publish(url, name, [ev(0), ev(1)])
    client.xadd(name, {b"event": b"{not json"})
    client.xadd(name, {b"event": b"[1, 2]"})
    client.xadd(name, {b"other": b"field"})
    publish(url, name, [ev(2), ev(3, name="poison"), ev(4), ev(5), ev(6)])

    def reject_poison(events: list[dict[str, Any]]) -> Exception | None:
        if any(e["name"] == "poison" for e in events):
            return TerminalError("poison is not allowed here")
        return None

    sink = FlakySink(tmp_path / "s.db", reject_poison)
    with consuming(url, name, sink, batch=100) as (consumer, _):
        wait_for(lambda: consumer.stats.acked == 10)
    assert consumer.stats.dead_lettered == 4
    assert sorted(stored(tmp_path / "s.db")) == [f"id-{i:06d}" for i in (0, 1, 2, 4, 5, 6)]
    dead = [fields for _, fields in client.xrange(f"{name}:dead")]
    reasons = [fields[b"reason"].decode() for fields in dead]
    assert reasons[0].startswith("not JSON") and reasons[1].startswith("not an event")
    assert reasons[2].startswith("not JSON") and "poison is not allowed" in reasons[3]
    assert orjson.loads(dead[3][b"event"])["name"] == "poison"
    assert client.xpending(name, "g")["pending"] == 0


def test_the_consumer_writes_into_postgresql_without_duplicates(
    stream: tuple[str, str], client: redis.Redis
) -> None:
    url, name = stream
    with pg_table("et_consume") as (dsn, table):
        publish(url, name, [ev(i) for i in range(300)])
        publish(url, name, [ev(i) for i in range(100, 200)])  # re-published: duplicates
        sink = open_sink(table_url(dsn, table))
        with consuming(url, name, sink, batch=128) as (consumer, _):
            wait_for(lambda: consumer.stats.acked == 400)
        sink.close()
        from eventtracking.store.postgres import PostgresStore

        reader = PostgresStore(table_url(dsn, table), create=False)
        assert reader.count(Query(limit=None)) == 300
        reader.close()


# -- the command, in its own process -------------------------------------------------------


def consume_process(url: str, name: str, to: str, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "eventtracking", "consume", url, "--stream", name]
    command += ["--group", "g", "--to", to, "--block-ms", "100", "--report-every", "0.2"]
    return subprocess.Popen(
        [*command, "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop_process(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err
    return out, err


def count_rows(path: Path) -> int:
    """Events in the store at `path`; 0 while the consumer is still creating it."""
    try:
        return len(stored(path))
    except StoreError:
        return 0


def test_sigterm_finishes_the_batch_in_hand_acks_it_and_exits_0(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path
) -> None:
    url, name = stream
    path = tmp_path / "s.db"
    producing = threading.Event()
    producing.set()

    def produce() -> None:
        backend = RedisStreamBackend(url, name, batch_size=50)
        i = 0
        while producing.is_set():
            backend.send_batch([ev(j) for j in range(i, i + 50)])
            i += 50
            time.sleep(0.005)
        backend.close()

    producer = threading.Thread(target=produce)
    producer.start()
    process = consume_process(url, name, str(path), "--batch", "100")
    try:
        wait_for(lambda: count_rows(path) > 500)
        out, err = stop_process(process)  # while entries keep arriving
    finally:
        producing.clear()
        producer.join(30)
        if process.poll() is None:
            process.kill()
    summary = json.loads(out)
    assert client.xpending(name, "g")["pending"] == 0  # everything read was acked
    assert summary["acked"] == summary["written"] == summary["read"] == count_rows(path)
    assert "lag" in err and "stopped:" in err.splitlines()[-1]


def test_sigint_stops_cleanly_too_and_a_backend_component_is_a_sink(
    stream: tuple[str, str], tmp_path: Path
) -> None:
    url, name = stream
    out_file = tmp_path / "out.jsonl"
    component = {
        "ENGINE": "eventtracking.backends.jsonl.JSONLinesBackend",
        "OPTIONS": {"path": str(out_file)},
    }
    publish(url, name, [ev(i) for i in range(300)])
    process = consume_process(url, name, json.dumps(component))
    try:
        wait_for(lambda: out_file.exists() and len(out_file.read_bytes().splitlines()) == 300)
        out, _ = stop_process(process, signal.SIGINT)
    finally:
        if process.poll() is None:
            process.kill()
    assert json.loads(out)["acked"] == 300


def test_a_toml_component_file_is_a_sink(stream: tuple[str, str], tmp_path: Path) -> None:
    url, name = stream
    config = tmp_path / "sink.toml"
    config.write_text(
        'ENGINE = "eventtracking.backends.sqlite.SQLiteBackend"\n'
        f'OPTIONS = {{ path = "{tmp_path / "t.db"}", batch_size = 10 }}\n'
    )
    publish(url, name, [ev(i) for i in range(55)])
    process = consume_process(url, name, str(config))
    try:
        wait_for(lambda: count_rows(tmp_path / "t.db") == 55)
        out, _ = stop_process(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert json.loads(out)["acked"] == 55


def test_command_errors_say_what_to_fix(stream: tuple[str, str], tmp_path: Path) -> None:
    url, name = stream

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["consume", *args])
        assert "Traceback" not in result.output
        return result

    common = ["--stream", name, "--group", "g"]
    bad_url = run("localhost:6379", *common, "--to", "x.db")
    assert bad_url.exit_code == 2 and "redis://localhost:6379/0" in bad_url.output
    down = run("redis://127.0.0.1:1/0", *common, "--to", str(tmp_path / "x.db"))
    assert down.exit_code == 1 and "is it running" in down.output
    bad_json = run(url, *common, "--to", "{nope")
    assert bad_json.exit_code == 1 and "--to: not valid JSON" in bad_json.output
    unknown = run(url, *common, "--to", '{"ENGINE": "eventtracking.nowhere.Backend"}')
    assert unknown.exit_code == 1 and "cannot import" in unknown.output
    missing = run(url, *common, "--to", str(tmp_path / "absent.toml"))
    assert missing.exit_code == 1 and "cannot read a component" in missing.output


def test_without_the_driver_the_error_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "from eventtracking.exceptions import MissingExtraError\n"
        "for module in ('eventtracking.backends.redis_stream', 'eventtracking.consumer.consume'):\n"
        "    try:\n"
        "        __import__(module)\n"
        "    except MissingExtraError as exc:\n"
        "        print(exc)\n"
        "import eventtracking.cli\n"  # the command line still loads
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert (
        out == ["redis is not installed; install it with: pip install 'event-tracking[redis]'"] * 2
    )


def test_documentation_versions_travel_with_the_stream_to_the_store(
    stream: tuple[str, str], client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Producer and consumer are different processes in real life: the consumer
    # knows the documentation only from what the producer put beside the stream.
    from eventtracking import _state
    from eventtracking.backends.redis_stream import types_key
    from eventtracking.tracker import Tracker

    url, name = stream
    backend = RedisStreamBackend(url, name)
    tracker = Tracker({"redis": backend}, envelope="full")
    version = tracker.register("video.played", "A video started.", {"id": "Which video."})
    context = tracker.register_context("course", "The course.", {"course_id": "Its key."})
    with tracker.context("course", {"course_id": "c1"}):
        for i in range(3):
            tracker.emit("video.played", {"id": f"v{i}"})
    tracker.close()
    assert set(client.hkeys(types_key(name))) == {version.id.encode(), context.id.encode()}

    monkeypatch.setattr(_state, "metadata_by_id", {})  # as in a fresh consumer process
    with consuming(url, name, open_sink(str(tmp_path / "s.db"))) as (consumer, _):
        wait_for(lambda: consumer.stats.acked == 3)
    store = SQLiteStore(tmp_path / "s.db", create=False)
    try:
        (event, *_) = store.query(Query(limit=None))
        assert store.metadata_for(event) == {
            "type": version.to_dict(),
            "contexts": {"course": context.to_dict()},
        }
    finally:
        store.close()
