"""Open edX's task `eventtracking.tasks.send_event` and the default AsyncRoutingBackend path.

No broker: tasks run with ``apply`` (in this process) or through an eager
app, and Celery's JSON serializer is called directly where the wire matters.
The real worker on RabbitMQ is in test_async_routing.py.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any
from unittest.mock import MagicMock, patch

import pytest
from celery import Celery
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads

from eventtracking import Tracker, register_tracker, tasks
from eventtracking.backends.async_routing import AsyncRoutingBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.processors.exceptions import (
    EventEmissionExit,
    NoBackendEnabled,
    NoTransformerImplemented,
)
from eventtracking.tasks import COUNTDOWN, MAX_RETRIES, TASK_NAME, send_event
from eventtracking.testing import InMemoryBackend

AT = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)


def make_event(name: str = "edx.test.event", **data: Any) -> dict[str, Any]:
    return {"name": name, "timestamp": AT, "data": dict(data), "context": {"user_id": 5}}


def wire(*args: Any) -> list[Any]:
    """`args` after a trip through Celery's default (JSON) serializer."""
    content_type, encoding, body = kombu_dumps(list(args), serializer="json")
    decoded: list[Any] = kombu_loads(body, content_type, encoding)
    return decoded


@pytest.fixture
def memory() -> InMemoryBackend:
    """The nested backend of a top-level RoutingBackend ``xapi`` in the default tracker."""
    nested = InMemoryBackend()
    register_tracker(Tracker({"xapi": RoutingBackend(backends={"m": nested})}))
    return nested


# -- the task ------------------------------------------------------------------------


def test_the_task_is_open_edx_s() -> None:
    assert send_event.name == TASK_NAME == "eventtracking.tasks.send_event"
    assert (MAX_RETRIES, COUNTDOWN) == (3, 30)
    # bound, Celery's defaults otherwise (acknowledged before it runs, as there)
    assert list(inspect.signature(tasks._send_event).parameters) == [
        "task",
        "backend_name",
        "processed_event",
    ]
    assert send_event.acks_late is False


def test_importing_the_backend_registers_the_task_in_every_app() -> None:
    code = (
        "import eventtracking.backends.async_routing\n"
        "from celery import Celery\n"
        "app = Celery('fresh', set_as_current=False)\n"
        "assert 'eventtracking.tasks.send_event' in app.tasks, sorted(app.tasks)\n"
        "assert 'eventtracking.tasks.send_events' in app.tasks\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_event_reaches_the_nested_backends_as_celery_decoded_it(
    memory: InMemoryBackend,
) -> None:
    args = wire("xapi", make_event(course="c1"))
    result = send_event.apply(args=args)
    assert result.successful()
    [delivered] = memory.events
    # kombu's JSON carries the aware datetime back as one: the nested backends
    # get what Open edX's worker gives them, a copy of the decoded event.
    assert delivered == make_event(course="c1")
    assert delivered["timestamp"].utcoffset() is not None
    assert delivered is not args[1]


def test_an_iso_string_timestamp_stays_a_string(memory: InMemoryBackend) -> None:
    # What kombu before 5.3 sent; Open edX's worker passes it on unchanged too.
    event = {**make_event(), "timestamp": AT.isoformat()}
    send_event.apply(args=["xapi", event])
    assert memory.events == [event]


def test_mocks_from_settings_are_delivered_to() -> None:
    # Open edX's own test: MagicMock engines as processors and nested backends.
    nested = MagicMock()
    register_tracker(Tracker({"backend_1": RoutingBackend({"nested": nested}, [MagicMock()])}))
    event = make_event()
    send_event.apply(args=["backend_1", event])
    nested.send.assert_called_once_with(event)


def test_get_tracker_is_looked_up_in_the_module_at_call_time() -> None:
    event = make_event()
    with patch("eventtracking.tasks.get_tracker") as get_tracker:
        send_event.apply(args=["any", event])
    get_tracker.return_value.backends["any"].send_to_backends.assert_called_once_with(event)


class Raising:
    """A top-level backend whose send_to_backends raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def send(self, event: Any) -> None:
        raise AssertionError("the task calls send_to_backends, not send")

    def send_to_backends(self, event: Any) -> None:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize("error", [NoTransformerImplemented(), NoBackendEnabled()])
def test_no_transformer_and_no_backend_are_logged_at_info_and_not_retried(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Raising(error)
    register_tracker(Tracker({"xapi": backend}))
    with caplog.at_level(logging.INFO, logger="eventtracking.tasks"):
        result = send_event.apply(args=["xapi", make_event("a.b")])
    assert result.successful() and backend.calls == 1
    [record] = [r for r in caplog.records if r.name == "eventtracking.tasks"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"[send_event] Failed to send event [a.b] with backend [xapi], [{error}]"
    )


def test_other_errors_are_logged_and_retried_30_s_apart_at_most_3_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boom = ValueError("boom")
    task = MagicMock()
    task.retry.return_value = RuntimeError("the Retry Celery raises")
    register_tracker(Tracker({"xapi": Raising(boom)}))
    with (
        caplog.at_level(logging.INFO, logger="eventtracking.tasks"),
        pytest.raises(RuntimeError, match="the Retry Celery raises"),
    ):
        tasks._send_event(task, "xapi", make_event("a.b"))
    task.retry.assert_called_once_with(exc=boom, countdown=30, max_retries=3)
    [record] = [r for r in caplog.records if r.name == "eventtracking.tasks"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == (
        "[send_event] Failed to send event [a.b] with backend [xapi], [ValueError('boom')]"
    )


def test_retries_run_then_the_task_fails_with_the_error() -> None:
    backend = Raising(ValueError("boom"))
    register_tracker(Tracker({"xapi": backend}))
    result = send_event.apply(args=["xapi", make_event()])
    assert backend.calls == 1 + MAX_RETRIES
    assert result.failed() and isinstance(result.result, ValueError)


def test_a_backend_missing_in_the_worker_is_retried() -> None:
    register_tracker(Tracker({}))
    task = MagicMock()
    task.retry.return_value = RuntimeError("retry")
    with pytest.raises(RuntimeError):
        tasks._send_event(task, "absent", make_event())
    [call] = task.retry.call_args_list
    assert isinstance(call.kwargs["exc"], KeyError)


def test_the_backend_is_flushed_after_the_hand_over() -> None:
    flushed: list[float] = []

    class Buffered(InMemoryBackend):
        def flush(self, timeout: float = 10.0) -> bool:
            flushed.append(timeout)
            return True

    nested = Buffered()
    top = AsyncRoutingBackend(backends={"m": nested}, backend_name="xapi", flush_timeout=7.0)
    register_tracker(Tracker({"xapi": top}))
    send_event.apply(args=["xapi", make_event()])
    assert len(nested.events) == 1
    [timeout] = flushed  # the routing backend's one deadline, from 7 s
    assert 6.0 < timeout <= 7.0


def test_a_failing_flush_is_logged_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    class Unflushable:
        def __init__(self) -> None:
            self.events: list[Any] = []

        def send(self, event: Any) -> None:
            raise AssertionError("the task calls send_to_backends, not send")

        def send_to_backends(self, event: Any) -> None:
            self.events.append(event)

        def flush(self, timeout: float) -> bool:
            raise OSError("disk full")

    top = Unflushable()
    register_tracker(Tracker({"xapi": top}))
    with caplog.at_level(logging.ERROR, logger="eventtracking.tasks"):
        result = send_event.apply(args=["xapi", make_event()])
    assert result.successful() and len(top.events) == 1  # delivered once, not retried
    assert [r.getMessage() for r in caplog.records if r.name == "eventtracking.tasks"] == [
        "[send_event] Failed to flush backend [xapi]"
    ]


def test_the_code_owner_is_recorded_when_edx_django_utils_can() -> None:
    setter = MagicMock()
    register_tracker(Tracker({}))
    with patch("eventtracking.tasks._code_owner_setter", return_value=setter):
        send_event.apply(args=["absent", make_event()])
    setter.assert_any_call("eventtracking.tasks")


def test_a_failing_code_owner_never_stops_delivery(memory: InMemoryBackend) -> None:
    # edx-django-utils outside a configured Django project raises; the event
    # still goes through.
    setter = MagicMock(side_effect=RuntimeError("settings are not configured"))
    with patch("eventtracking.tasks._code_owner_setter", return_value=setter):
        assert send_event.apply(args=["xapi", make_event()]).successful()
    assert len(memory.events) == 1


def test_without_edx_django_utils_the_code_owner_is_skipped(
    monkeypatch: pytest.MonkeyPatch, memory: InMemoryBackend
) -> None:
    monkeypatch.setitem(sys.modules, "edx_django_utils.monitoring", None)
    tasks._code_owner_setter.cache_clear()
    try:
        assert tasks._code_owner_setter() is None
        assert send_event.apply(args=["xapi", make_event()]).successful()
    finally:
        tasks._code_owner_setter.cache_clear()
    assert len(memory.events) == 1


# -- the backend's default path --------------------------------------------------------


def test_send_runs_the_processors_then_delays_open_edx_s_task() -> None:
    def stamp(event: dict[str, Any]) -> None:
        event["data"]["stamped"] = True

    backend = AsyncRoutingBackend([stamp], {}, "xapi")
    event = make_event()
    with patch("eventtracking.backends.async_routing.send_event") as task:
        backend.send(event)
    task.delay.assert_called_once_with("xapi", {**make_event(), "data": {"stamped": True}})
    assert event == make_event()  # the caller's event is untouched


def test_send_logs_open_edx_s_lines(caplog: pytest.LogCaptureFixture) -> None:
    def drop_secret(event: dict[str, Any]) -> None:
        if event["name"] == "secret":
            raise EventEmissionExit()

    backend = AsyncRoutingBackend([drop_secret], backend_name="xapi")
    with (
        caplog.at_level(logging.INFO, logger="eventtracking.backends.async_routing"),
        patch("eventtracking.backends.async_routing.send_event") as task,
    ):
        backend.send(make_event("seen"))
        backend.send(make_event("secret"))
    assert task.delay.call_count == 1
    assert [r.getMessage() for r in caplog.records if r.name.endswith("async_routing")] == [
        'Successfully processed event "seen"',
        'Scheduled celery task for event "seen" processing and routing',
        "[EventEmissionExit] skipping event secret",
    ]


def test_send_batch_delays_one_task_per_surviving_event() -> None:
    def drop_b(event: dict[str, Any]) -> None:
        if event["name"] == "b":
            raise EventEmissionExit()

    backend = AsyncRoutingBackend([drop_b], backend_name="xapi")
    with patch("eventtracking.backends.async_routing.send_event") as task:
        backend.send_batch([make_event("a"), make_event("b"), make_event("c")])
    assert [call.args for call in task.delay.call_args_list] == [
        ("xapi", make_event("a")),
        ("xapi", make_event("c")),
    ]


def test_a_queue_goes_with_the_same_arguments() -> None:
    backend = AsyncRoutingBackend(backend_name="xapi", queue="events")
    with patch("eventtracking.backends.async_routing.send_event") as task:
        backend.send(make_event())
    task.apply_async.assert_called_once_with(args=("xapi", make_event()), queue="events")


def test_an_app_of_its_own_runs_the_same_task(memory: InMemoryBackend) -> None:
    app = Celery("eager", broker="memory://", set_as_current=False)
    app.conf.update(task_always_eager=True)
    # The default tracker's top-level "xapi" is what the task looks up.
    backend = AsyncRoutingBackend(backend_name="xapi", app=app)
    backend.send(make_event(course="c2"))
    assert memory.events == [make_event(course="c2")]


def test_the_batched_task_is_opt_in() -> None:
    backend = AsyncRoutingBackend(backend_name="xapi", batch=True)
    with (
        patch("eventtracking.backends.async_routing.send_event") as single,
        patch("eventtracking.backends.async_routing.send_events") as batched,
    ):
        backend.send(make_event())
    single.delay.assert_not_called()
    [call] = batched.apply_async.call_args_list
    name, payload = call.kwargs["args"]
    assert name == "xapi" and isinstance(payload, str)
