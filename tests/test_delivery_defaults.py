"""Delivery on by default: what configuration wraps, the DELIVERY key, the default journal.

Fault injection without timing: "emit does not wait" is shown by emit
returning while the backend is provably stuck (a test that waited would hit
pytest's timeout instead of failing an assertion), and "flush/close keep
their timeout" by their returning while it is still stuck.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from eventtracking import Tracker, tracker_from_config
from eventtracking.backends.jsonl import JSONLinesBackend
from eventtracking.backends.logger import LoggerBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.delivery.paths import ENV, default_journal_dir, journal_root
from eventtracking.exceptions import ImproperlyConfigured
from eventtracking.testing import BlockingBackend, DownBackend, RecordingBackend

HTTP = "eventtracking.backends.http.HTTPBackend"


class NetworkBlocking(BlockingBackend):
    """A backend that declares itself a network sink and hangs in every write."""

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "buffered"}


class NetworkDown(DownBackend):
    """A network sink that is down (every write raises RetryableError)."""

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "buffered"}


_made: list[Any] = []


def blocking_sink() -> NetworkBlocking:
    backend = NetworkBlocking()
    _made.append(backend)
    return backend


@pytest.fixture(autouse=True)
def _release_sinks() -> Iterator[None]:
    yield
    while _made:
        _made.pop().release()


def spec(engine: str, options: dict[str, Any] | None = None, **keys: Any) -> dict[str, Any]:
    return {"ENGINE": engine, "OPTIONS": options or {}, **keys}


def built(component: dict[str, Any], name: str = "b") -> Any:
    return tracker_from_config({"backends": {name: component}}).get_backend(name)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers (a hung sink)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/events"
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


# -- what configuration wraps ---------------------------------------------------------------


def test_network_backends_are_buffered_with_a_journal_by_default() -> None:
    backend = built(spec(HTTP, {"url": "http://127.0.0.1:9/"}), name="lrs")
    assert isinstance(backend, DeliveryBackend)
    assert backend.name == "lrs" and backend.options.mode == "buffered"
    assert backend.options.overflow == "spill"  # nothing dropped while the disk lasts
    assert backend.journal is not None
    assert backend.journal.directory == default_journal_dir("lrs", backend.backend)
    assert backend.journal.directory.parent == Path(os.environ[ENV])
    backend.close()


def test_local_stores_deliver_in_the_caller_by_default(tmp_path: Path) -> None:
    store = built(
        spec("eventtracking.backends.sqlite.SQLiteBackend", {"path": str(tmp_path / "e.db")})
    )
    assert isinstance(store, DeliveryBackend) and store.options.mode == "inline"
    assert isinstance(store.backend, SQLiteBackend)
    assert store.options.batch_size == 1000  # the store's own batch size
    store.close()
    lines = built(
        spec("eventtracking.backends.jsonl.JSONLinesBackend", {"path": str(tmp_path / "f")})
    )
    assert isinstance(lines, DeliveryBackend) and lines.options.mode == "inline"
    assert isinstance(lines.backend, JSONLinesBackend)
    lines.close()


def test_open_edx_backends_and_classes_of_your_own_are_never_wrapped_unasked() -> None:
    tree = {
        "tracking_logs": spec(
            "eventtracking.backends.routing.RoutingBackend",
            {"backends": {"local": spec("eventtracking.backends.logger.LoggerBackend")}},
        ),
        "mine": spec("eventtracking.testing.RecordingBackend"),
        "segmentio": spec("eventtracking.backends.segment.SegmentBackend"),
    }
    tracker = tracker_from_config({"backends": tree})
    routing = tracker.get_backend("tracking_logs")
    assert type(routing) is RoutingBackend
    assert type(routing.backends["local"]) is LoggerBackend
    assert type(tracker.get_backend("mine")) is RecordingBackend
    assert not any(isinstance(b, DeliveryBackend) for b in tracker.backends.values())
    tracker.close()


def test_delivery_key_chooses_the_mode_and_options_or_switches_it_off(tmp_path: Path) -> None:
    url = {"url": "http://127.0.0.1:9/"}
    durable = built(spec(HTTP, url, DELIVERY={"mode": "durable", "journal_dir": str(tmp_path)}))
    assert durable.options.mode == "durable" and durable.journal.directory == tmp_path.resolve()
    durable.close()
    direct = built(spec(HTTP, url, DELIVERY=False))
    assert type(direct).__name__ == "HTTPBackend"
    direct.close()
    asked = built(spec("eventtracking.testing.RecordingBackend", DELIVERY=True))
    assert isinstance(asked, DeliveryBackend) and asked.options.mode == "buffered"
    asked.close()
    lower = built({"engine": HTTP, "options": url, "delivery": {"mode": "sync", "name": "x"}})
    assert lower.options.mode == "sync" and lower.name == "x" and lower.journal is None
    lower.close()


@pytest.mark.parametrize(
    ("delivery", "message"),
    [
        ({"mode": "fast"}, "backends.b.DELIVERY: mode must be one of 'buffered'"),
        ({"colour": "red"}, "backends.b.DELIVERY: unknown delivery option(s) ['colour']"),
        ({"backend": {}}, "unknown delivery option(s) ['backend']"),
        ({"batch_size": "many"}, "backends.b.DELIVERY: batch_size must be a positive int"),
        ({"retry": {"tries": 3}}, "retry: unknown option(s) ['tries']"),
        ("yes", "must be true, false or a table of delivery options"),
    ],
)
def test_bad_delivery_settings_say_what_to_fix(delivery: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        built(spec(HTTP, {"url": "http://127.0.0.1:9/"}, DELIVERY=delivery))
    assert message in str(info.value)


def test_delivery_on_a_delivery_backend_is_refused() -> None:
    inner = spec("eventtracking.testing.RecordingBackend")
    outer = spec("eventtracking.delivery.DeliveryBackend", {"backend": inner}, DELIVERY=True)
    with pytest.raises(ImproperlyConfigured, match="DeliveryBackend already"):
        built(outer)


def test_the_batching_options_of_5_0_move_to_the_worker_with_a_warning(tmp_path: Path) -> None:
    options = {"path": str(tmp_path / "e.db"), "max_delay": 0.5}
    with pytest.warns(DeprecationWarning, match="max_delay moved to the delivery worker"):
        store = built(spec("eventtracking.backends.sqlite.SQLiteBackend", options))
    assert store.options.max_delay == 0.5 and store.options.mode == "inline"
    store.close()
    with pytest.raises(ImproperlyConfigured, match="only the delivery worker uses"):
        built(spec("eventtracking.backends.sqlite.SQLiteBackend", options, DELIVERY=False))
    with pytest.raises(ImproperlyConfigured, match=r"unknown option\(s\) \['retries'\]"):
        built(spec("eventtracking.testing.RecordingBackend", {"retries": 3}))  # not ours


# -- emit never waits; flush and close keep their timeout ----------------------------------


def test_emit_returns_while_a_configured_network_sink_hangs() -> None:
    tracker = tracker_from_config(
        {
            "backends": {
                "hung": spec(f"{__name__}.blocking_sink", DELIVERY={"queue_size": 100}),
                "logs": spec("eventtracking.testing.RecordingBackend"),
            }
        }
    )
    delivery = tracker.get_backend("hung")
    sink = delivery.backend
    tracker.emit("first", {})
    assert sink.wait_until_blocked()
    for n in range(5000):  # 50 times the memory queue: the rest spills to the journal
        tracker.emit("while.hung", {"n": n})
    assert len(tracker.get_backend("logs").events) == 5001  # the other backend got them all
    assert tracker.flush(0.05) is False  # returns, with the sink still stuck
    stats = delivery.metrics_snapshot()
    assert stats["dropped"] == {} and stats["journaled"] > 0
    sink.release()
    assert tracker.flush(30) is True
    assert len(sink.events) == 5001 and delivery.metrics_snapshot()["dropped"] == {}
    tracker.close()


def test_close_returns_while_the_sink_hangs_and_the_next_process_delivers(tmp_path: Path) -> None:
    sink = blocking_sink()
    delivery = DeliveryBackend(sink, name="hung", journal_dir=tmp_path / "j", max_delay=0)
    tracker = Tracker({"hung": delivery})
    for n in range(10):
        tracker.emit("kept", {"n": n})
    assert sink.wait_until_blocked()
    tracker.close(0.05)  # returns: the worker stuck inside the sink is abandoned
    assert delivery.closed and delivery.metrics_snapshot()["dropped"] == {}
    after = RecordingBackend()
    recovery = DeliveryBackend(after, name="hung", journal_dir=tmp_path / "j", max_delay=0)
    assert recovery.flush(30)
    recovery.close()
    assert sorted(e["data"]["n"] for e in after.events) == list(range(10))


def test_emit_returns_while_a_configured_http_sink_never_answers(silent_server: str) -> None:
    tracker = tracker_from_config(
        {"backends": {"lrs": spec(HTTP, {"url": silent_server, "timeout": 30.0})}}
    )
    delivery = tracker.get_backend("lrs")
    for n in range(2000):
        tracker.emit("never.answered", {"n": n})
    assert delivery.flush(0.1) is False
    tracker.close(0.05)  # the worker is inside a POST that will not end for 30 s
    assert delivery.closed and delivery.metrics_snapshot()["dropped"] == {}


def test_a_burst_into_a_sink_that_is_down_drops_nothing() -> None:
    delivery_options = {"queue_size": 500, "circuit": {"reset_timeout": 0.05}}
    tracker = tracker_from_config(
        {"backends": {"down": spec(f"{__name__}.NetworkDown", DELIVERY=delivery_options)}}
    )
    delivery = tracker.get_backend("down")
    for n in range(50_000):
        tracker.emit("burst", {"n": n})
    stats = delivery.metrics_snapshot()
    assert stats["emitted"] == 50_000 and stats["dropped"] == {}
    assert stats["journaled"] > 40_000  # beyond the queue of 500: on disk
    delivery.backend.recover()
    assert tracker.flush(60) is True
    assert len(delivery.backend.events) == 50_000
    tracker.close()


# -- the inline mode -------------------------------------------------------------------------


class ThreadRecording(RecordingBackend):
    """Records which thread wrote each batch; fails while `failing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[int] = []
        self.failing = threading.Event()

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        if self.failing.is_set():
            raise OSError("disk busy")
        self.writers.append(threading.get_ident())
        super().send_batch(events)


def test_inline_writes_full_batches_in_the_caller_and_hands_failures_to_the_worker() -> None:
    backend = ThreadRecording()
    delivery = DeliveryBackend(
        backend, mode="inline", batch_size=10, max_delay=3600, retry={"initial_backoff": 0}
    )
    me = threading.get_ident()
    for n in range(20):
        delivery.send({"name": "a", "data": {"n": n}})
    assert backend.writers == [me, me]  # written by this thread, before send returned
    backend.failing.set()
    for n in range(20, 30):
        delivery.send({"name": "a", "data": {"n": n}})  # fails here: never raised
    backend.failing.clear()
    assert delivery.flush(30)
    assert backend.writers[2] != me  # the worker retried the failed batch
    for n in range(30, 40):
        delivery.send({"name": "a", "data": {"n": n}})
    assert backend.writers[-1] == me  # and the caller writes again once it recovered
    assert sorted(e["data"]["n"] for e in backend.events) == list(range(40))
    delivery.close()


# -- the default journal directory -----------------------------------------------------------


def test_the_journal_root_is_the_environment_then_xdg_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "env"))
    assert journal_root() == tmp_path / "env"
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert journal_root() == tmp_path / "state" / "eventtracking" / "journal"


def test_an_unwritable_state_directory_falls_back_to_a_private_temporary_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    root = journal_root()
    assert root == tmp_path / "tmp" / f"eventtracking-{os.getuid()}" / "journal"
    assert root.parent.stat().st_mode & 0o077 == 0


def test_default_journals_differ_by_destination_and_never_collide_in_one_process(
    tmp_path: Path,
) -> None:
    a = DeliveryBackend(SQLiteBackend(tmp_path / "a.db"), name="store", mode="inline")
    b = DeliveryBackend(SQLiteBackend(tmp_path / "b.db"), name="store", mode="inline")
    c = DeliveryBackend(SQLiteBackend(tmp_path / "a.db"), name="store", mode="inline")
    assert a.journal is not None and b.journal is not None and c.journal is not None
    assert a.journal.directory != b.journal.directory  # another destination
    assert c.journal.directory == a.journal.directory.with_name(a.journal.directory.name + "-2")
    for delivery in (a, b, c):
        delivery.close()
    again = DeliveryBackend(SQLiteBackend(tmp_path / "a.db"), name="store", mode="inline")
    assert again.journal is not None and again.journal.directory == a.journal.directory
    again.close()
    first = DeliveryBackend(RecordingBackend(), journal_dir=tmp_path / "j")
    with pytest.raises(ValueError, match="give each delivery backend a directory of its own"):
        DeliveryBackend(RecordingBackend(), journal_dir=tmp_path / "j")  # one given twice
    first.close()


# -- process hooks -----------------------------------------------------------------------------


def test_importing_and_building_installs_no_process_hook_until_needed() -> None:
    script = """
import os, atexit
calls = []
real_fork, real_exit = os.register_at_fork, atexit.register
def on_fork(**hooks):
    calls.extend(f"fork:{f.__module__}" for f in hooks.values())
    real_fork(**hooks)
def on_exit(f, *args, **kwargs):
    calls.append(f"exit:{f.__module__}")
    return real_exit(f, *args, **kwargs)
os.register_at_fork, atexit.register = on_fork, on_exit
import eventtracking
from eventtracking import Tracker, tracker_from_config
from eventtracking.testing import InMemoryBackend
tracker = Tracker({"m": InMemoryBackend()})
tracker.emit("a.b", {})
ours = lambda: sorted(set(c for c in calls if ":eventtracking" in c))
assert ours() == [], calls
eventtracking.new_event_id()
assert ours() == ["exit:eventtracking._process", "fork:eventtracking._process"], calls
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_one_module_holds_every_fork_and_exit_hook() -> None:
    source = Path(__file__).resolve().parent.parent / "src" / "eventtracking"
    callers = sorted(
        str(path.relative_to(source))
        for path in source.rglob("*.py")
        if "register_at_fork(" in path.read_text() or "atexit.register(" in path.read_text()
    )
    assert callers == ["_process.py"]
