"""Drain a Redis stream into a store or backend: the ``eventtracking consume`` worker.

`StreamConsumer` reads a stream as one member of a consumer group, so adding
workers (processes, machines) with the same group splits the stream between
them. For each batch it:

1. reads up to `batch` entries (XREADGROUP), first those left pending for
   this consumer name by an earlier run, then new ones;
2. writes their events to the sink, which commits before it returns (a
   store's write transaction; a backend's ``send_batch`` then ``flush``);
3. acknowledges them (XACK) only then.

While a batch is written, a second thread already reads and decodes the
next one: Redis answers and orjson decodes while this thread waits for the
sink's commit, which releases the interpreter lock (on PostgreSQL, most of a
batch's time). That thread also acknowledges the batch written before, just
before it reads, so XACK is off the writing thread too; a batch that is not
full (the worker has caught up) is acknowledged at once. So at most three
batches are read and not yet acknowledged, two while the sink fails (the one
in hand and the one read ahead). Stopping finishes and acknowledges them
all. ``read_ahead=False`` reads each batch only after the last was
acknowledged.

Entries another consumer read and never acknowledged (it died) are claimed
with XAUTOCLAIM once idle for `claim_idle_ms`, and processed the same way.
A crash between 2 and 3 makes the entries pending; they are written again,
and the store, de-duplicating on the event id, shows each event once.

A sink failure other than `TerminalError`, and a lost connection to Redis,
are retried until they succeed or the worker is told to stop (then the batch
stays pending), waiting as the delivery worker's `RetryPolicy` says
(exponential backoff with full jitter; no limit on attempts). On
`TerminalError` the batch is split to find the events the sink rejects;
those, and entries that are not event JSON, go to the dead-letter stream
(field ``event``: the raw bytes, ``reason``, ``source_id``) and are acked.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, cast

from .. import diagnostics
from ..delivery.retry import RetryPolicy
from ..exceptions import MissingExtraError, StoreError, TerminalError
from ..logsafe import without_password
from ..serialization import loads
from .sinks import Sink
from .stats import ConsumeStats

try:
    import redis
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtraError("redis", "redis") from exc

from ..backends.redis_stream import FIELD, types_key
from ..registry.model import version_from_dict
from ..registry.registry import metadata_for, referenced_ids, remember

# Retry for ever (the entries stay pending meanwhile), from 0.1 s up to 5 s apart.
RETRY: Final = RetryPolicy(max_attempts=None, initial_backoff=0.1, max_backoff=5.0)
Entry = tuple[bytes, dict[bytes, bytes] | None]
Decoded = tuple[bytes, dict[str, Any], bytes]  # entry id, event, raw bytes


# Removes consumer ARGV[2] of group ARGV[1] if it has nothing pending and has
# been idle for ARGV[3] ms, in one step: a consumer that read entries meanwhile
# is kept, because deleting a consumer drops its pending entries.
_FORGET_IDLE: Final = """
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, info in ipairs(consumers) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields['name'] == ARGV[2] then
    if tonumber(fields['pending']) == 0 and tonumber(fields['idle']) >= tonumber(ARGV[3]) then
      return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    end
    return -1
  end
end
return -1
"""


class _CollectorPause:
    """Pause the cyclic garbage collector while a batch is decoded or written.

    A batch holds about three containers per event until it is written; with
    the collector on, that many survivors set off collections of the older
    generations batch after batch. Paused, one worker drained 1.1-1.5x faster
    in paired runs (bench/consume_floor.py). Only around those steps, never
    across a retry's wait, so a long outage cannot pile up cycles. The
    read-ahead thread decodes while the main thread writes, so the pauses
    are counted: the collector runs again when the last one ends, and only
    if it ran before the first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._was_enabled:
                    gc.enable()


_collector_paused: Final = _CollectorPause()


class _Sorted:
    """A batch as read: events to write, ids to ack at once, entries to dead-letter."""

    __slots__ = ("bad", "claimed", "gone", "good", "read", "trimmed")

    def __init__(self, read: int, claimed: int = 0, trimmed: int = 0) -> None:
        self.read = read  # entries in the batch
        self.claimed = claimed  # of which taken over from other consumers
        self.trimmed = trimmed  # pending ids XAUTOCLAIM found gone from the stream
        self.good: list[Decoded] = []
        self.gone: list[bytes] = []  # deleted while pending
        self.bad: list[tuple[bytes, bytes, str]] = []  # entry id, raw bytes, what is wrong


class _ReadAhead:
    """A thread that reads the next batch while the caller writes the one in hand.

    `request(ack)` asks for one batch, after acknowledging `ack` (ids the
    caller committed), so that the acknowledgement is off the caller's path
    too; `result` waits for the batch (or what reading raised: the caller
    decides about retrying) and says how many ids were acknowledged, or None
    if they were not (then the caller still owes them). Only one request is
    ever outstanding, so nothing is read further ahead than one batch.
    """

    def __init__(self, ack: Callable[[list[bytes]], int], fetch: Callable[[], _Sorted]) -> None:
        self._ack_ids = ack
        self._fetch = fetch
        self._cond = threading.Condition()
        self._wanted = False
        self._closed = False
        self._ack: list[bytes] = []
        self._result: tuple[_Sorted | BaseException, int | None] | None = None
        self._thread = threading.Thread(target=self._loop, name="consume-read-ahead", daemon=True)
        self._thread.start()

    def request(self, ack: list[bytes]) -> None:
        """Acknowledge `ack`, then start reading the next batch."""
        with self._cond:
            self._wanted, self._ack = True, ack
            self._cond.notify_all()

    def result(self) -> tuple[_Sorted | BaseException, int | None]:
        """The batch asked for (or what reading it raised), and how many ids were acked."""
        with self._cond:
            while self._result is None:
                self._cond.wait()
            result, self._result = self._result, None
        return result

    def close(self) -> None:
        """End the thread (a read in flight ends within the read's block time)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                self._wanted, ack = False, self._ack
            result: _Sorted | BaseException
            acked: int | None = None
            try:
                if ack:
                    acked = self._ack_ids(ack)
                result = self._fetch()
            except BaseException as exc:  # handed over: the caller retries or stops
                result = exc
            with self._cond:
                self._result = (result, acked)
                self._cond.notify_all()


def default_consumer_name() -> str:
    """``HOST-PID``: unique per worker process, so each has its own pending list."""
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamConsumer:
    """Move entries of `stream` into `sink` as consumer `consumer` of `group` (see module docs).

    `client` is a ``redis.Redis``. The group is created (with the stream) if
    missing, starting at the stream's first entry. `report` receives a
    progress line every `report_every` seconds. `retry` says how long to
    wait between attempts when Redis or the sink fails (`rand` is its jitter).
    `read_ahead` reads the next batch in a second thread while one is written
    (module docs). Call `run` with an event that tells it to stop: it finishes
    the batches it read (the one in hand and the one read ahead), acks them,
    and returns.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        sink: Sink,
        *,
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        forget_idle_ms: int | None = 3_600_000,
        report_every: float = 10.0,
        dead_letter: str | None = None,
        report: Callable[[str], None] | None = None,
        retry: RetryPolicy = RETRY,
        rand: Callable[[], float] = random.random,
        read_ahead: bool = True,
    ) -> None:
        for option, value in (("batch", batch), ("block_ms", block_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be a positive int, not {value!r}")
        if (
            isinstance(claim_idle_ms, bool)
            or not isinstance(claim_idle_ms, int)
            or claim_idle_ms < 0
        ):
            raise ValueError(f"claim_idle_ms must be an int >= 0, not {claim_idle_ms!r}")
        if forget_idle_ms is not None and (
            isinstance(forget_idle_ms, bool)
            or not isinstance(forget_idle_ms, int)
            or forget_idle_ms < 1
        ):
            raise ValueError(
                f"forget_idle_ms must be a positive int or None, not {forget_idle_ms!r}"
            )
        if isinstance(report_every, bool) or not isinstance(report_every, int | float):
            raise ValueError(f"report_every must be a number of seconds, not {report_every!r}")
        if not report_every > 0:  # also NaN
            raise ValueError(f"report_every must be more than 0 seconds, not {report_every!r}")
        if not isinstance(read_ahead, bool):
            raise ValueError(f"read_ahead must be True or False, not {read_ahead!r}")
        self.client = client
        self.stream = stream
        self.group = group
        self.sink = sink
        self.consumer = consumer or default_consumer_name()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.forget_idle_ms = forget_idle_ms
        self.report_every = report_every
        self.dead_letter = dead_letter or f"{stream}:dead"
        self.report = report or (lambda line: None)
        self.retry = retry
        self._rand = rand
        self.read_ahead = read_ahead
        self.stats = ConsumeStats()
        self._missing_types: set[str] = set()  # ids the hash does not have: not asked again
        self._claim_cursor = b"0-0"
        self._next_claim = 0.0
        self._next_report = time.monotonic() + report_every

    def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, stop: threading.Event) -> ConsumeStats:
        """Consume until `stop` is set; returns the figures (also reported at the end)."""
        self.ensure_group()
        own = self._read("0")  # entries this consumer name read before and never acked
        while own and not stop.is_set():
            self._process(own, stop)
            own = self._read("0") if len(own) == self.batch else []
        if self.read_ahead:
            reader = _ReadAhead(self._acknowledge, self._fetch)
            try:
                self._run_reading_ahead(stop, reader)
            finally:
                reader.close()
        else:
            self._run_in_turn(stop)
        self._report(final=True)
        return self.stats

    def _run_in_turn(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                self._handle(self._fetch(), stop)
                failures = 0
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failures = self._redis_failed(exc, failures, stop)
            self._report_if_due()

    def _run_reading_ahead(self, stop: threading.Event, reader: _ReadAhead) -> None:
        failures = 0
        asked = False
        sent: list[bytes] = []  # committed ids handed to the reader with the request in flight
        owed: list[bytes] = []  # committed ids not yet handed over
        try:
            while asked or not stop.is_set():  # what was asked for is read: finish it too
                if not asked:
                    reader.request(owed)
                    sent, owed = owed, []
                read, acked = reader.result()
                asked = False
                if acked is not None:
                    self.stats.acked += acked
                elif sent:  # not acknowledged: owed again
                    owed = sent + owed
                sent = []
                if isinstance(read, (redis.ConnectionError, redis.TimeoutError)):
                    failures = self._redis_failed(read, failures, stop)
                    continue
                if isinstance(read, BaseException):
                    raise read
                if not stop.is_set():
                    # Acknowledge the last batch and read the next one while this one is written.
                    reader.request(owed)
                    sent, owed, asked = owed, [], True
                try:
                    owed += self._handle(read, stop, ack=False)
                    if read.read < self.batch:  # caught up: acknowledge now, not with the next read
                        self._ack(owed)
                        owed = []
                    failures = 0
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    failures = self._redis_failed(exc, failures, stop)
                self._report_if_due()
        finally:
            if owed:
                with contextlib.suppress(redis.RedisError):  # else pending: written again later
                    self._ack(owed)

    def _redis_failed(self, exc: Exception, failures: int, stop: threading.Event) -> int:
        """Count and log a lost connection, wait as the retry policy says; failures in a row."""
        # Unacked entries stay pending and come back; nothing is lost.
        failures += 1
        self.stats.retries += 1
        diagnostics.log_burst("consume:redis", "consume: Redis failed (%s); retrying", exc)
        stop.wait(self.retry.delay(failures, rand=self._rand))
        return failures

    def _report_if_due(self) -> None:
        if time.monotonic() >= self._next_report:
            self._report()

    def _fetch(self) -> _Sorted:
        """The next batch, read and decoded: claimed entries when due, else new ones.

        Runs in the read-ahead thread. Of the statistics it changes only
        `forgotten` (when a claim pass ends), which no other thread counts;
        `_handle` counts the rest. The claim bookkeeping is its alone too.
        """
        if time.monotonic() >= self._next_claim:
            entries, trimmed = self._claim()
            if entries or trimmed:
                return self._sorted(entries, claimed=len(entries), trimmed=trimmed)
        return self._sorted(self._read(">", block=True))

    def _read(self, start: str, block: bool = False) -> list[Entry]:
        try:
            reply = self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: start},
                count=self.batch,
                block=self.block_ms if block else None,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # the stream was deleted; start again with the new one
            return []
        entries: list[Entry] = cast(list[Any], reply)[0][1] if reply else []
        return entries

    def _claim(self) -> tuple[list[Entry], int]:
        """Entries idle for `claim_idle_ms` in other consumers' pending lists, now ours,
        and how many pending ids were found trimmed from the stream."""
        reply: list[Any] = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self.batch,
        )
        self._claim_cursor = reply[0]
        if reply[0] in (b"0-0", "0-0"):  # a full pass: rest before the next one
            self._next_claim = time.monotonic() + max(self.claim_idle_ms / 2000, 0.5)
            self._forget_idle()
        trimmed = len(reply[2]) if len(reply) > 2 and reply[2] else 0
        if trimmed:  # trimmed while pending: gone for good
            diagnostics.log_burst(
                "consume:trimmed",
                "consume: %d pending entries of %s were trimmed before delivery (MAXLEN too low?)",
                trimmed,
                self.stream,
            )
        entries: list[Entry] = reply[1]
        return entries, trimmed

    def _forget_idle(self) -> None:
        """Remove consumers that are idle for `forget_idle_ms` and have nothing pending.

        Workers that stopped (or were replaced under new names) would otherwise
        stay in the group for ever. Their pending entries are claimed first
        (XAUTOCLAIM), so by then they hold none; one that does is kept.
        """
        if self.forget_idle_ms is None:
            return
        for info in self.client.xinfo_consumers(self.stream, self.group):
            name = info["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name == self.consumer or info["pending"] or info["idle"] < self.forget_idle_ms:
                continue
            removed = self.client.eval(
                _FORGET_IDLE, 1, self.stream, self.group, name, self.forget_idle_ms
            )
            if removed == 0:
                self.stats.forgotten += 1

    def _process(self, entries: list[Entry], stop: threading.Event) -> None:
        """Write, dead-letter and acknowledge `entries`, in this thread."""
        self._handle(self._sorted(entries), stop)

    def _sorted(self, entries: list[Entry], claimed: int = 0, trimmed: int = 0) -> _Sorted:
        """Sort `entries` into events to write, ids to ack and entries to dead-letter."""
        read = _Sorted(len(entries), claimed, trimmed)
        good, gone, bad = read.good, read.gone, read.bad
        with _collector_paused():
            for entry_id, fields in entries:
                if not fields:  # deleted while pending (Redis < 7 still lists it)
                    gone.append(entry_id)
                    continue
                raw = fields.get(FIELD, b"")
                try:
                    event = loads(raw)
                    problem = None if isinstance(event, dict) else "not an event: not a JSON object"
                except ValueError as exc:
                    problem = f"not JSON: {exc}"
                if problem is None:
                    good.append((entry_id, event, raw))
                else:
                    bad.append((entry_id, raw, problem))
        return read

    def _handle(self, read: _Sorted, stop: threading.Event, ack: bool = True) -> list[bytes]:
        """Count `read`, dead-letter what is not an event, write the rest, then ack it.

        With `ack` False, the ids written are returned for the caller to
        acknowledge instead (the read-ahead thread does, with its next read).
        """
        stats = self.stats
        stats.read += read.read
        stats.claimed += read.claimed
        stats.trimmed += read.trimmed + len(read.gone)
        if read.gone:
            self._ack(read.gone)
        for entry_id, raw, problem in read.bad:
            self._bury(entry_id, raw, problem)
        good = read.good
        self._learn_types([event for _, event, _ in good if "meta" in event])
        written = self._commit(good, stop)
        if not ack:
            return written
        self._ack(written)
        return []

    def _learn_types(self, events: list[dict[str, Any]]) -> None:
        """Fetch the documentation versions `events` refer to that this process lacks.

        Producers put them in a hash beside the stream; once remembered, the
        sink writes each to the store with the first event that needs it.
        """
        wanted = {i for event in events for i in referenced_ids(event) if metadata_for(i) is None}
        wanted -= self._missing_types
        if not wanted:
            return
        ids = sorted(wanted)
        for type_id, body in zip(ids, self.client.hmget(types_key(self.stream), ids), strict=True):
            if body is None:  # published by a producer older than this feature
                self._missing_types.add(type_id)
                continue
            try:
                remember(version_from_dict(loads(body)))
            except (ValueError, TypeError, KeyError) as exc:
                self._missing_types.add(type_id)
                diagnostics.log_burst(
                    "consume:types", "consume: unreadable type version %s: %s", type_id, exc
                )

    def _commit(self, batch: list[Decoded], stop: threading.Event) -> list[bytes]:
        """Write `batch`; the ids to ack (fewer than all only when stopped first)."""
        if not batch:
            return []
        failures = 0
        while True:
            try:
                with _collector_paused():
                    self.sink.write([event for _, event, _ in batch])
            except TerminalError as exc:
                rejected = str(exc)
                break
            except Exception as exc:  # anything else is worth retrying
                self.stats.retries += 1
                failures += 1
                diagnostics.log_burst(
                    "consume:sink", "consume: sink write failed (%s); retrying", exc, interval=10.0
                )
                if stop.wait(self.retry.delay(failures, rand=self._rand)):
                    return []
                continue
            self.stats.written += len(batch)
            return [entry_id for entry_id, _, _ in batch]
        if len(batch) == 1:  # the one event the sink rejects
            self._bury(batch[0][0], batch[0][2], rejected)
            return []
        half = len(batch) // 2  # split to find the rejected events
        return self._commit(batch[:half], stop) + self._commit(batch[half:], stop)

    def _ack(self, ids: list[bytes]) -> None:
        if ids:
            self.stats.acked += self._acknowledge(ids)

    def _acknowledge(self, ids: list[bytes]) -> int:
        """XACK `ids`; how many were pending (the read-ahead thread calls it too)."""
        return int(self.client.xack(self.stream, self.group, *ids))

    def _bury(self, entry_id: bytes, raw: bytes, reason: str) -> None:
        """Move one entry to the dead-letter stream and ack it, atomically."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_letter, {FIELD: raw, b"reason": reason, b"source_id": entry_id})
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()
        self.stats.dead_lettered += 1
        self.stats.acked += 1
        diagnostics.log_burst(
            "consume:dead", "consume: entry %s moved to %s: %s", entry_id, self.dead_letter, reason
        )

    def _report(self, final: bool = False) -> None:
        self._next_report = time.monotonic() + self.report_every
        self.stats.seconds = time.monotonic() - self.stats.started
        try:
            for info in self.client.xinfo_groups(self.stream):
                name = info.get("name")
                if name in (self.group, self.group.encode()):
                    self.stats.pending = int(info.get("pending") or 0)
                    lag = info.get("lag")
                    self.stats.lag = None if lag is None else int(lag)
        except redis.RedisError:
            pass  # the figures stay as last seen; the report still goes out
        where = f"{self.stream}/{self.group}/{self.consumer}"
        self.report(f"consume {where}: {'stopped: ' if final else ''}{self.stats.line()}")


def redis_client(url: str) -> redis.Redis:
    """A client for `url`; StoreError naming the URL when Redis does not answer."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=10, socket_timeout=60, health_check_interval=30
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        where = without_password(url)
        raise StoreError(f"Redis at {where}: {exc}; is it running and the URL right?") from exc
    return client
