"""The Celery tasks behind `AsyncRoutingBackend` (``pip install 'event-tracking[celery]'``).

`send_event` is Open edX event-tracking's task: the same name
(``eventtracking.tasks.send_event``), the same arguments ``(backend_name,
processed_event)`` and the same behaviour, so messages queued by web processes
running either library are delivered by workers running either. It looks up
``get_tracker().backends[backend_name]`` in the worker's default tracker (the
one the Django app registered, or else one built on first use from
``$EVENTTRACKING_CONFIG``, as `eventtracking.track.get_tracker` does) and
calls its ``send_to_backends`` with a shallow copy of the event exactly as
Celery decoded it: with Celery's default JSON serializer (kombu 5.3 and
later) the ``timestamp`` datetime arrives as an aware datetime again; older
kombu versions send an ISO string, which arrives as that string. Failures
other than `NoTransformerImplemented` and `NoBackendEnabled` are retried every
`COUNTDOWN` seconds, at most `MAX_RETRIES` times. One addition: after a
successful hand-over the backend is flushed (bounded by its `flush_timeout`),
so that our buffering backends write the event before the task ends; Open
edX's backends have nothing to flush.

`send_events` is ours, queued only by an ``AsyncRoutingBackend(...,
batch=True)``: one JSON text with a batch of events and the task-scope
contexts; `run_task` finds the backend anywhere in the worker's trackers
(`find_backend`), enters the contexts and retries per nested backend. Its
messages are acknowledged after the nested backends have written and flushed
(``acks_late``) and re-queued if the worker process dies meanwhile.

A worker runs the tasks when its app imports this module: ``Celery(...,
include=["eventtracking.tasks"])`` or ``app.autodiscover_tasks(["eventtracking"])``;
importing `eventtracking.backends.async_routing` imports it too. Both are
shared tasks, so they belong to whichever app is current.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any, Final, Protocol

from . import diagnostics
from ._state import DEFAULT_TRACKER_NAME, TRACKERS
from .backends import flush_backend
from .exceptions import ImproperlyConfigured, MissingExtraError
from .logsafe import safe_logger
from .processors.exceptions import NoBackendEnabled, NoTransformerImplemented
from .serialization import loads


class BatchTarget(Protocol):
    """What the batched task needs of the backend that queued it (`AsyncRoutingBackend`).

    A backend declares itself one with a class attribute
    ``celery_batch_target = True``; this module never imports the backend,
    which imports this module for the task objects.
    """

    backend_name: str
    tracker_name: str
    max_retries: int

    def deliver(
        self, events: Sequence[Any], only: Iterable[str] | None = None
    ) -> dict[str, Exception]: ...

    def retry_delay(self, retries: int, failures: Mapping[str, Exception]) -> float: ...


def get_tracker(name: str = DEFAULT_TRACKER_NAME) -> Any:
    """The tracker `name` as the worker finds it, building the default one on first use.

    `eventtracking.track.get_tracker`: the tracker the Django app registered,
    or else one built from ``$EVENTTRACKING_CONFIG`` for workers without
    Django. Imported when a task runs, not with this module, so that the
    backend importing the tasks never loads the tracker.
    """
    from .track import get_tracker as tracker_named

    return tracker_named(name)


try:
    from celery import shared_task
    from celery.utils.log import get_task_logger
except ImportError as exc:
    raise MissingExtraError("celery", "celery") from exc

__all__ = [
    "BATCH_TASK_NAME",
    "COUNTDOWN",
    "FLUSH_TIMEOUT",
    "MAX_RETRIES",
    "PAYLOAD_VERSION",
    "TASK_NAME",
    "find_backend",
    "run_task",
    "send_event",
    "send_events",
    "set_code_owner_attribute_from_module",
]

TASK_NAME: Final = "eventtracking.tasks.send_event"
BATCH_TASK_NAME: Final = "eventtracking.tasks.send_events"
# send_event's retry policy: at most this many retries, this many seconds apart.
MAX_RETRIES = 3
COUNTDOWN = 30
# Seconds send_event waits for a backend without `flush_timeout` to flush.
FLUSH_TIMEOUT = 30.0
# The version of send_events' JSON payload.
PAYLOAD_VERSION: Final = 1

logger = safe_logger(get_task_logger(__name__))  # outside input cannot forge lines


@functools.cache
def _code_owner_setter() -> Callable[[str], Any] | None:
    # Imported on first use, in the worker only: edx-django-utils pulls in
    # Django and a few hundred modules that web processes queueing tasks never need.
    try:
        monitoring = importlib.import_module("edx_django_utils.monitoring")
    except ImportError:
        return None
    setter: Callable[[str], Any] = monitoring.set_code_owner_attribute_from_module
    return setter


def set_code_owner_attribute_from_module(module: str) -> None:
    """Record the code owner of `module` on the current monitoring transaction.

    Delegates to edx-django-utils when it is installed (Open edX workers);
    a no-op otherwise. Monitoring never stops delivery: an error (such as
    Django settings not being configured) is logged at debug level.
    """
    setter = _code_owner_setter()
    if setter is None:
        return
    try:
        setter(module)
    except Exception:
        logger.debug("[send_event] could not set the code owner of %s", module, exc_info=True)


def _event_name(event: Any) -> Any:
    return event.get("name") if isinstance(event, Mapping) else None


def _send_event(task: Any, backend_name: str, processed_event: Any) -> None:
    """Hand `processed_event` to the nested backends of the top-level backend `backend_name`.

    For `AsyncRoutingBackend` only: the backend's processors already ran
    where the event was queued. The backend is looked up in this worker's
    default tracker, so it must be a top-level backend there.
    """
    set_code_owner_attribute_from_module(task.__module__)
    try:
        backend = get_tracker().backends[backend_name]
        backend.send_to_backends(processed_event.copy())
    except (NoTransformerImplemented, NoBackendEnabled) as exc:
        logger.info(
            "[send_event] Failed to send event [%s] with backend [%s], [%s]",
            _event_name(processed_event),
            backend_name,
            exc,
        )
    except Exception as exc:
        logger.exception(
            "[send_event] Failed to send event [%s] with backend [%s], [%s]",
            _event_name(processed_event),
            backend_name,
            repr(exc),
        )
        raise task.retry(exc=exc, countdown=COUNTDOWN, max_retries=MAX_RETRIES) from exc
    else:
        _flush(backend, backend_name)


def _flush(backend: Any, backend_name: str) -> None:
    """Flush the nested backends: ours may buffer, and the task is the last chance.

    Open edX's backends have nothing to flush. The event was handed over, so
    a failure here is logged, never retried (that would send it twice).
    """
    timeout = getattr(backend, "flush_timeout", FLUSH_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        timeout = FLUSH_TIMEOUT
    try:
        flushed = flush_backend(backend, float(timeout))
    except Exception:
        logger.exception("[send_event] Failed to flush backend [%s]", backend_name)
        return
    if not flushed:
        diagnostics.increment(f"async_routing.{backend_name}.flush_timeouts")
        diagnostics.warn_once(
            ("async_routing.flush", backend_name),
            "[send_event] backend [%s] did not flush within %gs",
            backend_name,
            timeout,
        )


def _send_events(task: Any, backend_name: str, payload: str, only: list[str] | None = None) -> None:
    """Deliver the events in `payload` to the nested backends of `backend_name`.

    `only`, set on retries, limits delivery to the nested backends that
    failed before, so the others do not receive the events twice.
    """
    run_task(task, backend_name, payload, only)


def find_backend(backend_name: str) -> BatchTarget:
    """The AsyncRoutingBackend named `backend_name` in this process's trackers.

    Builds the default tracker from configuration first when it is not found.
    Raises ImproperlyConfigured, saying what to fix, when there is none.
    """
    found = _search(TRACKERS.values(), backend_name)
    if found is None:
        get_tracker()  # builds the default tracker (from $EVENTTRACKING_CONFIG) if needed
        found = _search(TRACKERS.values(), backend_name)
    if found is None:
        raise ImproperlyConfigured(
            f"no AsyncRoutingBackend with backend_name={backend_name!r} in this Celery "
            "worker's trackers: configure the worker like the web processes (the same "
            "EVENTTRACKING_CONFIG file, or register the same tracker when the worker starts)"
        )
    return found


def _search(trackers: Iterable[Any], name: str) -> BatchTarget | None:
    """Walk the backend trees of `trackers`, each object once, for the backend `name`.

    Follows only real mappings of ``backends`` (routing backends) and the
    backend a `DeliveryBackend` wraps, so the walk ends even on mocks, whose
    attributes invent new objects without end, and on cycles.
    """
    from .delivery import DeliveryBackend

    pending: list[Any] = [getattr(tracker, "routing_backend", None) for tracker in list(trackers)]
    seen: set[int] = set()
    while pending:
        backend = pending.pop()
        if backend is None or id(backend) in seen:
            continue
        seen.add(id(backend))
        # Read on the class, so a mock's invented attributes never match.
        is_target = getattr(type(backend), "celery_batch_target", False) is True
        if is_target and backend.backend_name == name:
            return backend  # type: ignore[no-any-return]
        children = getattr(backend, "backends", None)
        if isinstance(children, Mapping):
            pending.extend(children.values())
        if isinstance(backend, DeliveryBackend):
            pending.append(backend.backend)
    return None


def run_task(task: Any, backend_name: str, payload: str, only: list[str] | None) -> None:
    """The body of the batched task: decode, enter the contexts, deliver, retry on failure."""
    backend = find_backend(backend_name)
    message = loads(payload)
    if not isinstance(message, dict) or message.get("v") != PAYLOAD_VERSION:
        raise ImproperlyConfigured(
            f"AsyncRoutingBackend({backend_name!r}): unknown task payload version "
            f"{message.get('v') if isinstance(message, dict) else None!r}; "
            "run the same eventtracking version in the web processes and the worker"
        )
    events = [_revive(event) for event in message.get("events") or []]
    with _entered(backend.tracker_name, message.get("contexts") or []):
        failures = backend.deliver(events, only)
    if not failures:
        return
    retries = int(task.request.retries or 0)
    names = sorted(failures)
    first = failures[names[0]]
    if retries >= backend.max_retries:
        diagnostics.increment(f"async_routing.{backend_name}.gave_up", len(events))
        logger.error(
            "AsyncRoutingBackend %r: %d event(s) not delivered to %s after %d retries",
            backend_name,
            len(events),
            names,
            retries,
        )
        raise first
    countdown = backend.retry_delay(retries, failures)
    # Celery logs each retry with its reason; we only count them.
    diagnostics.increment(f"async_routing.{backend_name}.retries")
    raise task.retry(
        kwargs={"only": names}, countdown=countdown, max_retries=backend.max_retries, exc=first
    )


def _revive(event: Any) -> Any:
    """Turn the ISO timestamp of a decoded event back into an aware datetime."""
    if isinstance(event, dict) and isinstance(event.get("timestamp"), str):
        # A string that is not ISO 8601 is not ours to judge: it goes on unchanged.
        with contextlib.suppress(ValueError):
            event["timestamp"] = datetime.fromisoformat(event["timestamp"])
    return event


@contextmanager
def _entered(tracker_name: str, contexts: Sequence[Any]) -> Iterator[None]:
    """Enter the travelling task-scope contexts on the worker's tracker for the block."""
    if not contexts:
        yield
        return
    try:
        tracker = get_tracker(tracker_name)
    except KeyError:
        diagnostics.warn_once(
            ("async_routing.tracker", tracker_name),
            "no tracker %r in this worker: the contexts sent with tasks are not entered",
            tracker_name,
        )
        yield
        return
    with ExitStack() as stack:
        for name, ctx in contexts:
            stack.enter_context(tracker.context(name, ctx))
        yield


# Applied as calls, not as decorators: celery is untyped, and strict mypy
# rejects untyped decorators.
# Open edX's options, unchanged: a bound task with Celery's defaults.
send_event: Any = shared_task(name=TASK_NAME, bind=True)(_send_event)
# Acknowledged after it ran, so a worker lost mid-task leaves the message for
# another; nothing reads its results.
send_events: Any = shared_task(
    name=BATCH_TASK_NAME,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)(_send_events)
