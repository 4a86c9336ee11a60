"""AsyncRoutingBackend with a real Celery worker on RabbitMQ, plus eager-mode unit tests.

The worker is a subprocess (``celery -A celery_support worker --pool=solo``)
on a queue unique to the run, configured from the same TOML file as the test
process; its nested backends write files under a temporary directory that
the tests read. The backend ``main`` uses Open edX's task
(``eventtracking.tasks.send_event``, the default); ``batched`` and the flaky
ones use the batched task (``batch = true``). Unit tests of the default task
itself are in test_celery_send_event.py.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from celery import Celery

import celery_support
from conftest import service_unavailable
from eventtracking import Tracker, load_tracker, register_tracker, tracker_from_config
from eventtracking.backends.async_routing import AsyncRoutingBackend
from eventtracking.exceptions import ImproperlyConfigured, RetryableError, TerminalError
from eventtracking.processors.exceptions import EventEmissionExit
from eventtracking.tasks import TASK_NAME, find_backend, run_task
from eventtracking.testing import FlakyBackend, InMemoryBackend

TESTS_DIR = Path(__file__).resolve().parent
BROKER_URL = celery_support.BROKER_URL
ASYNC = "eventtracking.backends.async_routing.AsyncRoutingBackend"


# -- the real worker ------------------------------------------------------------------


CONFIG = """
[backends.main]
ENGINE = "{async_engine}"
[backends.main.OPTIONS]
backend_name = "main"
app = "celery_support.app"
queue = "{queue}"
processors = [
  {{ ENGINE = "celery_support.DropNames", OPTIONS = {{ names = ["secret.dropped"] }} }},
  {{ ENGINE = "celery_support.StampProcess" }},
]
[backends.main.OPTIONS.backends.file]
ENGINE = "eventtracking.backends.jsonl.JSONLinesBackend"
OPTIONS = {{ path = "{dir}/main.jsonl" }}
[backends.main.OPTIONS.backends.probe]
ENGINE = "celery_support.ProbeBackend"
OPTIONS = {{ path = "{dir}/probe.jsonl" }}

[backends.batched]
ENGINE = "{async_engine}"
[backends.batched.OPTIONS]
backend_name = "batched"
batch = true
app = "celery_support.app"
queue = "{queue}"
[[backends.batched.OPTIONS.processors]]
ENGINE = "eventtracking.processors.regex_filter.RegexFilter"
OPTIONS = {{ filter_type = "allowlist", regular_expressions = ['^batch\\.'] }}
[[backends.batched.OPTIONS.processors]]
ENGINE = "celery_support.StampProcess"
[backends.batched.OPTIONS.backends.probe]
ENGINE = "celery_support.ProbeBackend"
OPTIONS = {{ path = "{dir}/batched-probe.jsonl" }}
{flaky_groups}
"""

FLAKY_GROUP = """
[backends.{name}]
ENGINE = "{async_engine}"
[backends.{name}.OPTIONS]
backend_name = "{name}"
batch = true
app = "celery_support.app"
queue = "{queue}"
retry_backoff = 0.05
max_retries = {max_retries}
[[backends.{name}.OPTIONS.processors]]
ENGINE = "eventtracking.processors.regex_filter.RegexFilter"
OPTIONS = {{ filter_type = "allowlist", regular_expressions = ['^{name}\\.'] }}
[backends.{name}.OPTIONS.backends.flaky]
ENGINE = "celery_support.FlakyBackend"
OPTIONS = {{ path = "{dir}/{name}.jsonl", {flaky_options} }}
[backends.{name}.OPTIONS.backends.steady]
ENGINE = "eventtracking.backends.jsonl.JSONLinesBackend"
OPTIONS = {{ path = "{dir}/{name}-steady.jsonl" }}
"""

FLAKY = {
    # name: (max_retries, FlakyBackend options)
    "flaky": (10, "failures = 2, retry_after = 0.6"),
    "backoff": (10, "failures = 2"),
    "doomed": (2, "failures = 1000"),
    "terminal": (10, "failures = 1000, terminal = true"),
}


@dataclass
class Worker:
    directory: Path
    config: Path
    queue: str
    log: Path
    process: subprocess.Popen[bytes]

    def lines(self, name: str) -> list[Any]:
        path = self.directory / name
        if not path.exists():
            return []
        text = path.read_text()
        complete = text[: text.rfind("\n") + 1]  # ignore a line still being written
        return [json.loads(line) for line in complete.splitlines() if line]

    def wait_for(self, what: str, check: Callable[[], object], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log.read_text()[-3000:] if self.log.exists() else ""
        raise AssertionError(f"timed out waiting for {what}; worker log:\n{tail}")


def _broker_reachable() -> str | None:
    from kombu.connection import Connection

    try:
        with Connection(BROKER_URL, connect_timeout=3) as connection:
            # A few tries: a RabbitMQ that has just started opens its port early.
            connection.ensure_connection(max_retries=3, interval_start=1, interval_step=1)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module")
def broker() -> str:
    """The RabbitMQ URL, or skip (fail when EVENTTRACKING_REQUIRE_SERVICES=1)."""
    problem = _broker_reachable()
    if problem is not None:
        service_unavailable("RabbitMQ", f"{BROKER_URL}: {problem}")
    return BROKER_URL


@pytest.fixture(scope="module")
def worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    directory = tmp_path_factory.mktemp("celery")
    queue = f"eventtracking-test-{uuid.uuid4().hex}"
    groups = "".join(
        FLAKY_GROUP.format(
            name=name,
            async_engine=ASYNC,
            queue=queue,
            dir=directory,
            max_retries=max_retries,
            flaky_options=options,
        )
        for name, (max_retries, options) in FLAKY.items()
    )
    config = directory / "eventtracking.toml"
    config.write_text(
        CONFIG.format(async_engine=ASYNC, queue=queue, dir=directory, flaky_groups=groups)
    )
    load_tracker(config).close()  # fail here, not in the worker, if the file is wrong
    log = directory / "worker.log"
    env = {
        **os.environ,
        "EVENTTRACKING_CONFIG": str(config),
        "EVENTTRACKING_TEST_BROKER": BROKER_URL,
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_support",
        "worker",
        "--pool=solo",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    handle = Worker(directory, config, queue, log, process)
    try:
        handle.wait_for("the worker to be ready", lambda: " ready." in log.read_text(), 60.0)
        yield handle
    finally:
        _stop(process)
        _delete_queue(queue)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _delete_queue(queue: str) -> None:
    from kombu.connection import Connection

    try:
        with Connection(BROKER_URL, connect_timeout=3) as connection:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
    except Exception:  # best effort: a leftover empty queue is harmless
        pass


@pytest.fixture
def tracker(worker: Worker) -> Iterator[Tracker]:
    built = load_tracker(worker.config)
    register_tracker(built)
    yield built
    built.close()


def by_name(records: list[Any], name: str) -> list[Any]:
    return [r for r in records if (r.get("event", r)).get("name") == name]


# -- the default task: Open edX's send_event ---------------------------------------------


@pytest.mark.services
def test_processors_run_before_queueing_and_the_event_arrives_with_its_context(
    worker: Worker, tracker: Tracker
) -> None:
    celery_support.DROPPED.clear()
    tracker.enter_context("service", {"host": "web-1"}, scope="process")
    try:
        with tracker.context("request", {"user_id": 7, "path": "/courses"}):
            tracker.emit("secret.dropped", {"x": 1})
            tracker.emit("course.viewed", {"course": "c1"})
    finally:
        tracker.exit_context("service", scope="process")
    # The drop happened here, in the emitting process, before anything was queued.
    assert [(os.getpid(), "secret.dropped")] == celery_support.DROPPED
    worker.wait_for("course.viewed", lambda: by_name(worker.lines("probe.jsonl"), "course.viewed"))
    [event] = by_name(worker.lines("main.jsonl"), "course.viewed")
    assert event["data"] == {"course": "c1", "processed_in": os.getpid()}
    assert event["context"] == {"host": "web-1", "user_id": 7, "path": "/courses"}
    assert datetime.fromisoformat(event["timestamp"]).tzinfo is not None
    assert len(event["id"]) == 36
    [probe] = by_name(worker.lines("probe.jsonl"), "course.viewed")
    assert probe["pid"] == worker.process.pid != os.getpid()  # delivered in the worker
    # Celery's JSON serializer (kombu) carries the datetime as a datetime.
    assert probe["timestamp_type"] == "datetime" and probe["utcoffset"] == "0:00:00"
    assert by_name(worker.lines("main.jsonl"), "secret.dropped") == []


@pytest.mark.services
def test_a_message_queued_by_open_edx_event_tracking_is_delivered_unchanged(
    worker: Worker,
) -> None:
    # Open edX event-tracking 4.0.2's web processes run the processors, then call
    # send_event.delay(backend_name, processed_event) with Celery's default JSON
    # serializer: this is that message. Its worker hands the nested backends the
    # decoded event as it is, and so must ours: processors do not run again.
    task = celery_support.app.tasks[TASK_NAME]
    assert celery_support.app.conf.task_serializer == "json"
    aware = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
    queued = [
        # processors already ran where this was queued: not dropped here
        {"name": "secret.dropped", "timestamp": aware, "data": {"a": 1}, "context": {}},
        {"name": "edx.viewed", "timestamp": aware, "data": {"course": "c9"}, "context": {"u": 8}},
        # kombu before 5.3 encoded datetimes as ISO strings: they arrive as strings
        {"name": "edx.old", "timestamp": aware.isoformat(), "data": {}, "context": {}},
    ]
    for event in queued:  # in order: one worker, prefetch 1
        task.apply_async(args=["main", event], queue=worker.queue)
    worker.wait_for("edx.old", lambda: by_name(worker.lines("probe.jsonl"), "edx.old"))
    probes = {p["event"]["name"]: p for p in worker.lines("probe.jsonl")}
    for event in queued:
        probe = probes[event["name"]]
        timestamp = event["timestamp"]
        expected_type = type(timestamp).__name__
        assert probe["timestamp_type"] == expected_type
        if isinstance(timestamp, datetime):
            assert probe["utcoffset"] == "0:00:00"
            timestamp = timestamp.isoformat()
        assert probe["event"] == {**event, "timestamp": timestamp}


@pytest.mark.services
def test_our_message_is_the_one_open_edx_queues(broker: str) -> None:
    from kombu import Connection, Queue

    queue = f"eventtracking-wire-{uuid.uuid4().hex}"

    def stamp(event: dict[str, Any]) -> None:
        event["data"]["stamped"] = True

    backend = AsyncRoutingBackend([stamp], {}, "xapi", app=celery_support.app, queue=queue)
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    backend.send({"name": "wire.one", "timestamp": at, "data": {"k": 1}, "context": {"u": 3}})
    try:
        with Connection(broker, connect_timeout=3) as connection:
            message = None
            deadline = time.monotonic() + 10
            while message is None and time.monotonic() < deadline:
                message = Queue(queue, channel=connection.default_channel).get(no_ack=True)
            assert message is not None
            assert message.headers["task"] == "eventtracking.tasks.send_event"
            assert message.content_type == "application/json"
            args, kwargs, _embed = message.decode()
            expected = {"name": "wire.one", "data": {"k": 1, "stamped": True}, "context": {"u": 3}}
            assert args == ["xapi", {**expected, "timestamp": at}] and kwargs == {}
            # On the wire: kombu's typed JSON for the datetime.
            [_name, raw] = json.loads(message.body)[0]
            assert raw["timestamp"] == {"__type__": "datetime", "__value__": at.isoformat()}
    finally:
        _delete_queue(queue)


@pytest.mark.services
def test_send_batch_queues_one_open_edx_task_per_event(worker: Worker, tracker: Tracker) -> None:
    now = datetime.now(UTC)
    tracker.get_backend("main").send_batch(
        [{"name": "plain.item", "timestamp": now, "data": {"i": i}, "context": {}} for i in (0, 1)]
    )
    worker.wait_for(
        "2 events", lambda: len(by_name(worker.lines("probe.jsonl"), "plain.item")) == 2
    )
    probes = by_name(worker.lines("probe.jsonl"), "plain.item")
    assert len({p["task_id"] for p in probes}) == 2


@pytest.mark.services
def test_an_unknown_backend_is_logged_and_retried_as_open_edx_does(worker: Worker) -> None:
    event = {"name": "lost.one", "timestamp": datetime.now(UTC), "data": {}, "context": {}}
    celery_support.app.tasks[TASK_NAME].apply_async(args=["nope", event], queue=worker.queue)
    line = "[send_event] Failed to send event [lost.one] with backend [nope], [KeyError('nope')]"
    worker.wait_for("the failure line", lambda: line in worker.log.read_text())
    worker.wait_for("the retry", lambda: "Retry in 30s: KeyError('nope')" in worker.log.read_text())


# -- the batched task (batch = true) ---------------------------------------------------


@pytest.mark.services
def test_task_scope_contexts_travel_and_are_left_after_the_task(
    worker: Worker, tracker: Tracker
) -> None:
    tracker.enter_context("service", {"host": "web-1"}, scope="process")
    try:
        with (
            tracker.context("request", {"user_id": 8, "session": "s-9"}),
            tracker.context("view", {"course_id": "course-v1:X+Y+Z"}),
        ):
            tracker.emit("batch.inside", {})
        tracker.emit("batch.outside", {})
    finally:
        tracker.exit_context("service", scope="process")

    def probes() -> list[Any]:
        return worker.lines("batched-probe.jsonl")

    worker.wait_for("both probes", lambda: by_name(probes(), "batch.outside"))
    [inside] = by_name(probes(), "batch.inside")
    # Events emitted in the worker's task see the request's task-scope contexts,
    # but not the web process's process-scope ones (the worker keeps its own).
    assert inside["names"] == ["request", "view"]
    assert inside["resolved"] == {"user_id": 8, "session": "s-9", "course_id": "course-v1:X+Y+Z"}
    assert inside["event"]["context"]["host"] == "web-1"
    assert inside["event"]["data"]["processed_in"] == os.getpid()
    assert inside["timestamp_type"] == "datetime" and inside["utcoffset"] == "0:00:00"
    [outside] = by_name(probes(), "batch.outside")
    assert outside["names"] == [] and outside["resolved"] == {}


@pytest.mark.services
def test_send_batch_is_one_task(worker: Worker, tracker: Tracker) -> None:
    backend = tracker.get_backend("batched")
    now = datetime.now(UTC)
    events = [
        {"id": str(uuid.uuid4()), "name": "batch.item", "timestamp": now, "data": {"i": i}}
        for i in range(3)
    ]
    backend.send_batch([{**event, "context": {}} for event in events])
    worker.wait_for(
        "3 events", lambda: len(by_name(worker.lines("batched-probe.jsonl"), "batch.item")) == 3
    )
    probes = by_name(worker.lines("batched-probe.jsonl"), "batch.item")
    assert [p["event"]["data"]["i"] for p in probes] == [0, 1, 2]
    assert len({p["task_id"] for p in probes}) == 1 and probes[0]["task_id"]


@pytest.mark.services
def test_retryable_errors_are_retried_by_celery_honouring_retry_after(
    worker: Worker, tracker: Tracker
) -> None:
    tracker.emit("flaky.one", {"n": 1})
    worker.wait_for("the flaky delivery", lambda: worker.lines("flaky.jsonl"), 60.0)
    [event] = worker.lines("flaky.jsonl")
    assert event["name"] == "flaky.one" and event["data"]["n"] == 1
    attempts = worker.lines("flaky.jsonl.attempts")
    assert len(attempts) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= 0.55 for gap in gaps), gaps  # Retry-After 0.6 s was honoured
    # Only the failing nested backend was retried; its sibling got the event once.
    assert [e["name"] for e in worker.lines("flaky-steady.jsonl")] == ["flaky.one"]


@pytest.mark.services
def test_backoff_without_retry_after(worker: Worker, tracker: Tracker) -> None:
    tracker.emit("backoff.one", {})
    worker.wait_for("the backoff delivery", lambda: worker.lines("backoff.jsonl"), 60.0)
    assert len(worker.lines("backoff.jsonl.attempts")) == 3


@pytest.mark.services
def test_gives_up_after_max_retries(worker: Worker, tracker: Tracker) -> None:
    tracker.emit("doomed.one", {})
    worker.wait_for("3 attempts", lambda: len(worker.lines("doomed.jsonl.attempts")) >= 3)
    time.sleep(1.0)  # room for a fourth attempt that must not come
    assert len(worker.lines("doomed.jsonl.attempts")) == 3  # the first try + max_retries=2
    assert worker.lines("doomed.jsonl") == []
    worker.wait_for("the give-up log line", lambda: "not delivered" in worker.log.read_text())


@pytest.mark.services
def test_terminal_errors_are_not_retried(worker: Worker, tracker: Tracker) -> None:
    tracker.emit("terminal.one", {})
    worker.wait_for("the sibling delivery", lambda: worker.lines("terminal-steady.jsonl"))
    time.sleep(0.5)
    assert len(worker.lines("terminal.jsonl.attempts")) == 1
    assert worker.lines("terminal.jsonl") == []


# -- eager mode and units (no broker) --------------------------------------------------


@pytest.fixture
def eager_app() -> Celery:
    app = Celery("eager", broker="memory://", set_as_current=False)
    # Celery runs eager retries only when exceptions do not propagate.
    app.conf.update(task_always_eager=True, task_eager_propagates=False)
    return app


def test_eager_delivery_retries_only_the_failing_backend(eager_app: Celery) -> None:
    flaky = FlakyBackend(2, RetryableError("down", retry_after=0.0))
    steady = InMemoryBackend()
    backend = AsyncRoutingBackend(
        backends={"flaky": flaky, "steady": steady},
        backend_name="eager",
        batch=True,
        app=eager_app,
    )
    tracker = Tracker({"async": backend})
    register_tracker(tracker)
    with tracker.context("request", {"user_id": 1}):
        tracker.emit("a.b", {"x": 1})
    assert flaky.attempts == 3
    assert [e["data"] for e in flaky.events] == [{"x": 1}]
    assert len(steady.events) == 1
    assert isinstance(steady.events[0]["timestamp"], datetime)
    assert steady.events[0]["context"] == {"user_id": 1}


@pytest.mark.parametrize("batch", [False, True], ids=["send_event", "batched"])
def test_eager_processors_run_in_the_caller(eager_app: Celery, batch: bool) -> None:
    seen = InMemoryBackend()

    def drop_b(event: dict[str, Any]) -> None:
        if event["name"] == "b":
            raise EventEmissionExit()

    def add(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "data": {**event["data"], "added": True}}

    # Open edX's positional order: processors, backends, backend_name.
    backend = AsyncRoutingBackend([drop_b, add], {"m": seen}, "p", batch=batch, app=eager_app)
    register_tracker(Tracker({"p": backend}))  # where the default task finds it
    original = {"name": "a", "timestamp": datetime.now(UTC), "data": {}, "context": {}}
    backend.send(original)
    backend.send({**original, "name": "b"})
    backend.send_batch([{**original, "name": "b"}, {**original, "name": "c"}])
    assert [(e["name"], e["data"]) for e in seen.events] == [
        ("a", {"added": True}),
        ("c", {"added": True}),
    ]
    assert seen.events[0]["timestamp"] == original["timestamp"]
    assert original["data"] == {}  # the caller's event is untouched


def test_terminal_and_exhausted_failures(eager_app: Celery) -> None:
    terminal = FlakyBackend(1, TerminalError("no"))
    doomed = FlakyBackend(100, RetryableError("down", retry_after=0.0))
    backend = AsyncRoutingBackend(
        backends={"doomed": doomed, "terminal": terminal},
        backend_name="t",
        batch=True,
        app=eager_app,
        max_retries=3,
    )
    register_tracker(Tracker({"async": backend}))
    backend.send({"name": "x", "timestamp": datetime.now(UTC), "data": {}, "context": {}})
    assert terminal.attempts == 1 and terminal.events == []
    assert doomed.attempts == 4
    from eventtracking import diagnostics

    stats = diagnostics.snapshot()
    assert stats["async_routing.t.terminal"] == 1
    assert stats["async_routing.t.gave_up"] == 1
    assert stats["async_routing.t.retries"] == 3


def test_retry_delay_honours_retry_after_else_backs_off() -> None:
    backend = AsyncRoutingBackend(
        backend_name="d", batch=True, retry_backoff=1.0, retry_backoff_max=5.0
    )
    asked = {"a": RetryableError("x", retry_after=3.0), "b": RetryableError("y", retry_after=9)}
    assert backend.retry_delay(0, asked) == 9
    plain = {"a": ValueError("boom")}
    # The delivery worker's policy: full jitter up to a ceiling that doubles, capped.
    for retries, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (10, 5.0)]:
        assert backend.retry_delay(retries, plain, rand=lambda: 1.0) == ceiling
        assert backend.retry_delay(retries, plain, rand=lambda: 0.25) == ceiling / 4
        assert 0 <= backend.retry_delay(retries, plain) <= ceiling


@pytest.fixture
def unreachable_app() -> Celery:
    app = Celery("down", broker="amqp://guest:guest@127.0.0.1:1//", set_as_current=False)
    app.conf.update(task_publish_retry=False, broker_connection_timeout=1)
    return app


def test_batched_publish_failure_is_retryable(unreachable_app: Celery) -> None:
    backend = AsyncRoutingBackend(backend_name="down", batch=True, app=unreachable_app)
    with pytest.raises(RetryableError, match="cannot queue the task") as info:
        backend.send({"name": "x", "timestamp": datetime.now(UTC), "data": {}, "context": {}})
    assert info.value.__cause__ is not None


def test_default_publish_failure_is_celerys_own_error(unreachable_app: Celery) -> None:
    from kombu.exceptions import OperationalError

    backend = AsyncRoutingBackend(backend_name="down", app=unreachable_app)
    with pytest.raises(OperationalError):  # as Open edX raises it
        backend.send({"name": "x", "timestamp": datetime.now(UTC), "data": {}, "context": {}})


def test_find_backend_walks_nested_trees_and_says_what_to_fix() -> None:
    inner = AsyncRoutingBackend(backend_name="inner")
    tracker = tracker_from_config({"backends": {}})
    tracker.routing_backend.register_backend(
        "outer", AsyncRoutingBackend(backends={"inner": inner}, backend_name="outer")
    )
    register_tracker(tracker)
    assert find_backend("inner") is inner
    with pytest.raises(ImproperlyConfigured, match=r"backend_name='missing'.*EVENTTRACKING_CONFIG"):
        find_backend("missing")


def test_find_backend_looks_inside_a_delivery_worker() -> None:
    from eventtracking.delivery import DeliveryBackend

    inner = AsyncRoutingBackend(backend_name="wrapped")
    delivery = DeliveryBackend(inner, mode="sync", dead_letters=False)
    register_tracker(Tracker({"reliable": delivery}))
    try:
        assert find_backend("wrapped") is inner
    finally:
        delivery.close()


@pytest.mark.timeout(10)
def test_find_backend_ends_on_mocks_and_cycles() -> None:
    from eventtracking.backends.routing import RoutingBackend

    # A MagicMock invents a new `backend`/`backends` attribute at every step,
    # and a routing backend may contain itself: neither may loop the search.
    loop = RoutingBackend()
    loop.backends["self"] = loop
    target = AsyncRoutingBackend(backend_name="found")
    register_tracker(Tracker({"a": MagicMock(), "b": loop, "c": target}))
    register_tracker(MagicMock(), "mocked")
    assert find_backend("found") is target
    with pytest.raises(ImproperlyConfigured):
        find_backend("absent")


def test_unknown_payload_version_is_refused() -> None:
    register_tracker(Tracker({"x": AsyncRoutingBackend(backend_name="v", batch=True)}))
    with pytest.raises(ImproperlyConfigured, match="payload version 99"):
        run_task(None, "v", json.dumps({"v": 99, "events": []}), None)


def test_lifecycle() -> None:
    memory = InMemoryBackend()
    backend = AsyncRoutingBackend(backends={"m": memory}, backend_name="life")
    assert backend.flush(0.1) is True
    backend.close()
    backend.close()
    assert memory.closed
    with pytest.raises(RuntimeError, match="closed"):
        backend.send({"name": "x"})
    with pytest.raises(RuntimeError, match="closed"):
        backend.send_batch([{"name": "x"}])


def test_defaults_are_open_edx_s() -> None:
    backend = AsyncRoutingBackend()
    assert backend.backend_name == "" and backend.batch is False
    assert backend.processors == [] and backend.backends == {}
    assert (backend.app, backend.queue) == (None, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch": True}, "needs backend_name"),
        ({"backend_name": 5}, "backend_name must be a str"),
        ({"batch": "yes"}, "batch must be"),
        ({"max_retries": 3}, r"max_retries apply only to the batched task; add batch=True"),
        ({"contexts": False, "tracker_name": "t"}, r"contexts, tracker_name apply only"),
        ({"backend_name": "x", "batch": True, "max_retries": -1}, "max_retries"),
        ({"backend_name": "x", "batch": True, "retry_backoff": 0}, "retry_backoff must be"),
        ({"backend_name": "x", "batch": True, "tracker_name": ""}, "tracker_name must be"),
        ({"backend_name": "x", "batch": True, "contexts": 1}, "contexts must be"),
        ({"backend_name": "x", "queue": ""}, "queue must be"),
        ({"backend_name": "x", "app": 42}, "app must be a Celery app"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AsyncRoutingBackend(**options)


def test_config_error_names_the_path() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"backends\.xapi: .*needs backend_name"):
        tracker_from_config({"backends": {"xapi": {"ENGINE": ASYNC, "OPTIONS": {"batch": True}}}})


WHITELIST = "eventtracking.processors.whitelist.NameWhitelistProcessor"


def test_open_edx_settings_build_it() -> None:
    built = tracker_from_config(
        {
            "backends": {
                "event_transformer": {
                    "ENGINE": ASYNC,
                    "OPTIONS": {
                        "backend_name": "event_transformer",
                        "processors": [
                            {
                                "ENGINE": WHITELIST,
                                "OPTIONS": {"whitelist": ["a"]},
                            }
                        ],
                        "backends": {"m": {"ENGINE": "eventtracking.testing.InMemoryBackend"}},
                    },
                }
            }
        }
    )
    backend = built.get_backend("event_transformer")
    assert isinstance(backend, AsyncRoutingBackend)
    assert backend.backend_name == "event_transformer" and backend.batch is False
    assert list(backend.backends) == ["m"]


def test_missing_celery_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from eventtracking.exceptions import MissingExtraError

    monkeypatch.setitem(sys.modules, "celery", None)  # makes `import celery` fail
    monkeypatch.setitem(sys.modules, "kombu.exceptions", None)
    for module in ("eventtracking.backends.async_routing", "eventtracking.tasks"):
        monkeypatch.delitem(sys.modules, module)
        with pytest.raises(MissingExtraError, match=r"pip install 'event-tracking\[celery\]'"):
            importlib.import_module(module)
