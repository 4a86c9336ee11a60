"""Delivery on by default, measured: a burst into a slow sink, and sinks that go away.

Every backend here is built from configuration (`tracker_from_config`), so
what is measured is what a deployment gets without asking: the network
backends behind the delivery worker in buffered mode with a journal.

* burst: N emits (1,000,000 by default) as fast as one thread can, into a
  sink that takes 5 ms per batch of 500 (100,000 events/s at most): emit
  latency p50/p99, events dropped (target: 0; the queue spills to the
  journal), and delivered events/s from the first emit until the last event
  reached the sink.
* unreachable: PostgreSQL and Redis reached through a TCP proxy that this
  script cuts after the first event (the server goes away), an HTTP sink that
  refuses connections and one that accepts and never answers: emit latency
  while it is so (target p99 < 20 us), then how long `flush(timeout)` and
  `close(timeout)` take against their timeout.

Run by bench/delivery.py (``make bench-delivery``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from eventtracking import tracker_from_config
from eventtracking.tracker import Tracker
from peers.workload import INNER, NAME, OUTER, URL

P99_MAX_US = 20.0
SLOW_BATCH_SECONDS = 0.005


class SlowSink:
    """A network sink that keeps up with 100,000 events/s at best: 5 ms per batch of 500."""

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "buffered"}
    batch_size = 500

    def __init__(self) -> None:
        self.received = 0
        self.last_at = 0.0

    def send(self, event: dict[str, Any]) -> None:
        self.send_batch([event])

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        time.sleep(SLOW_BATCH_SECONDS)
        self.received += len(events)
        self.last_at = time.perf_counter()


def percentiles(took: array[int]) -> dict[str, float]:
    ordered = sorted(took)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {
        "p50_us": at(0.5),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": ordered[-1] / 1000,
    }


def timed_emits(tracker: Tracker, n: int) -> array[int]:
    """Emit the shared workload `n` times; nanoseconds each call took on this thread."""
    took = array("q", bytes(8 * n))
    clock, emit = time.perf_counter_ns, tracker.emit
    tracker.enter_context("outer", OUTER)
    with tracker.context("inner", INNER):
        for i in range(n):
            data = {"url": URL % i, "n": i}
            start = clock()
            emit(NAME, data)
            took[i] = clock() - start
    return took


def burst(n: int) -> dict[str, Any]:
    """N emits into a slow sink, with the default delivery (see module docs)."""
    tracker = tracker_from_config({"backends": {"slow": {"ENGINE": f"{__name__}.SlowSink"}}})
    delivery = tracker.get_backend("slow")
    sink = delivery.backend
    start = time.perf_counter()
    took = timed_emits(tracker, n)
    emitted_in = time.perf_counter() - start
    flushed = tracker.flush(600)
    stats = delivery.metrics_snapshot()
    tracker.close(10)
    seconds = sink.last_at - start
    return {
        "events": n,
        **percentiles(took),
        "emit_seconds": emitted_in,
        "flushed": flushed,
        "delivered": sink.received,
        "dropped": stats["dropped_total"],
        "journaled": stats["journaled"],
        "delivered_per_s": sink.received / seconds if seconds > 0 else 0.0,
    }


# -- sinks that go away -------------------------------------------------------------------


class Proxy:
    """A TCP proxy to `target` that `cut()` turns into a refused port, as a server that died."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept() (Linux)
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@contextlib.contextmanager
def silent_http() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/events"
    finally:
        stop.set()
        thread.join(5)
        for sock in held:
            sock.close()
        server.close()


def refused_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])  # closed on exit: nothing listens there


def unreachable(
    label: str, component: dict[str, Any], n: int, cut: Callable[[], None], timeout: float
) -> dict[str, Any]:
    """Build `component` from configuration, deliver one event, `cut`, then measure."""
    tracker = tracker_from_config({"backends": {"sink": component}})
    delivery = tracker.get_backend("sink")
    tracker.emit("warm.up", {})
    tracker.flush(10)
    cut()
    took = timed_emits(tracker, n)
    start = time.perf_counter()
    flushed = tracker.flush(timeout)
    flush_s = time.perf_counter() - start
    start = time.perf_counter()
    tracker.close(timeout)
    close_s = time.perf_counter() - start
    stats = delivery.metrics_snapshot()  # after close: what is left was journaled or counted
    return {
        "sink": label,
        "events": n,
        **percentiles(took),
        "flushed": flushed,
        "flush_s": flush_s,
        "close_s": close_s,
        "timeout_s": timeout,
        "dropped": stats["dropped_total"],
        "journaled": stats["journaled"],
    }


def outages(n: int, dsn: str | None, redis_url: str | None, timeout: float) -> list[dict[str, Any]]:
    """Each sink of the module docs, as available; a missing service is skipped."""
    results = []
    if dsn is not None:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
        proxy = Proxy((str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)))
        options = {**info, "host": "127.0.0.1", "port": str(proxy.port)}
        through = " ".join(f"{k}={v}" for k, v in options.items())
        table = f"bench_outage_{uuid.uuid4().hex[:8]}"
        component = {
            "ENGINE": "eventtracking.backends.postgres.PostgresBackend",
            "OPTIONS": {"dsn": through, "table": table, "connect_timeout": 2.0},
        }
        results.append(unreachable("PostgreSQL, server gone", component, n, proxy.cut, timeout))
        _drop_pg(dsn, table)
    if redis_url is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(redis_url)
        proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 6379))
        component = {
            "ENGINE": "eventtracking.backends.redis_stream.RedisStreamBackend",
            "OPTIONS": {
                "url": f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}",
                "stream": f"bench-outage-{uuid.uuid4().hex[:8]}",
                "socket_timeout": 2.0,
            },
        }
        results.append(unreachable("Redis, server gone", component, n, proxy.cut, timeout))
    refused = {
        "ENGINE": "eventtracking.backends.http.HTTPBackend",
        "OPTIONS": {"url": f"http://127.0.0.1:{refused_port()}/events"},
    }
    results.append(unreachable("HTTP, connection refused", refused, n, lambda: None, timeout))
    with silent_http() as url:
        hung = {"ENGINE": "eventtracking.backends.http.HTTPBackend", "OPTIONS": {"url": url}}
        results.append(unreachable("HTTP, never answers", hung, n, lambda: None, timeout))
    return results


def _drop_pg(dsn: str, table: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in (table, f"{table}_types", f"{table}_migrations"):
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')
