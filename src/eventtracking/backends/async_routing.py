"""Route events through Celery: processors run here, the nested backends run in a worker.

The Open edX ``AsyncRoutingBackend`` (``pip install 'eventtracking[celery]'``).
`send` runs the processors in the caller, so a dropped event never reaches
the broker, then queues one Celery task (`eventtracking.tasks.send_events`)
carrying the processed event; `send_batch` queues one task for the whole
batch. In the worker, the task hands the events to the nested backends.

**How the worker finds the nested backends.** By `backend_name`: the task
looks through the registered trackers (first building the default tracker,
from ``$EVENTTRACKING_CONFIG``, if none is registered yet) for the
``AsyncRoutingBackend`` with that name, and uses its nested backends. The
worker therefore loads the same configuration as the web processes: the same
``EVENTTRACKING_CONFIG`` file, or the same tracker registered when the worker
starts. Backend options (DSNs, keys) never travel through the broker.

**What travels.** A JSON text (`eventtracking.serialization`): the processed
events (the worker turns each ``timestamp`` back into an aware datetime;
other datetimes stay ISO strings) and the *task-scope* contexts of the
tracker registered as `tracker_name`, captured when `send` is called. Each
event already carries its resolved context; the task-scope contexts are
entered, by name and in order, on the worker's tracker of the same name for
the duration of the task, so events that the nested backends' code emits
there see the same request and view contexts. Process-scope contexts do not
travel: the worker keeps its own (its host, its service). Capture happens in
the thread that calls `send`, so call it from the emitting thread (a
`Tracker` does); behind a queue of your own, that queue's thread is what
counts.

**Failures.** In the worker, a nested backend that raises `RetryableError`
(or any exception other than `TerminalError`) makes Celery retry the task
for that backend only, after ``retry_after`` when the error gives one, else
after an exponential backoff with jitter (`retry_backoff` doubling up to
`retry_backoff_max` seconds), at most `max_retries` times; then the task
fails and the loss is counted under ``async_routing.NAME.gave_up``. A
`TerminalError` is not retried (``async_routing.NAME.terminal``). Delivery is
at-least-once: a retried batch may reach a backend twice, and the stores
de-duplicate on the event id. When the broker cannot take the task, `send`
raises `RetryableError` after Celery's own publish retry policy.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

from .. import diagnostics
from ..exceptions import (
    DeliveryError,
    ImproperlyConfigured,
    MissingExtraError,
    RetryableError,
    TerminalError,
)
from ..processors.exceptions import EventEmissionExit
from ..serialization import dumps_str, loads
from . import flush_backend
from .routing import Processor, RoutingBackend

try:
    from kombu.exceptions import KombuError
except ImportError as exc:
    raise MissingExtraError("celery", "celery") from exc

__all__ = ["AsyncRoutingBackend", "find_backend", "run_task"]

LOG = logging.getLogger(__name__)
PAYLOAD_VERSION = 1


class AsyncRoutingBackend(RoutingBackend):
    """Run `processors` here and hand the events to `backends` in a Celery worker.

    `backend_name` (required) is how the worker finds this backend in its
    own configuration; give each AsyncRoutingBackend a distinct one. `app`
    is a Celery app or its dotted path (``"proj.celery.app"``); None uses
    Celery's current app. `queue` names the queue (None: Celery's routing).
    `max_retries`, `retry_backoff`, `retry_backoff_max` (seconds) and
    `flush_timeout` (seconds the worker waits for the nested backends to
    flush after each task) apply in the worker and are read from the
    worker's configuration. ``contexts=False`` stops sending the task-scope
    contexts. See the module docs for what travels and how failures retry.

    `send` and `send_batch` raise `RetryableError` when the broker cannot
    take the task, RuntimeError after `close()`. Thread-safe.
    """

    def __init__(
        self,
        backend_name: str | None = None,
        processors: Iterable[Processor] | None = None,
        backends: Mapping[str, Any] | None = None,
        *,
        app: Any = None,
        queue: str | None = None,
        max_retries: int = 10,
        retry_backoff: float = 1.0,
        retry_backoff_max: float = 600.0,
        flush_timeout: float = 30.0,
        tracker_name: str = "default",
        contexts: bool = True,
    ) -> None:
        if not isinstance(backend_name, str) or not backend_name:
            raise ValueError(
                "AsyncRoutingBackend needs backend_name: the name under which the Celery "
                f"worker finds this backend in its configuration (got {backend_name!r})"
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, not {max_retries!r}")
        for option, value in (
            ("retry_backoff", retry_backoff),
            ("retry_backoff_max", retry_backoff_max),
            ("flush_timeout", flush_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{option} must be a positive number of seconds, not {value!r}")
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise ValueError(f"queue must be a non-empty str or None, not {queue!r}")
        if not isinstance(tracker_name, str) or not tracker_name:
            raise ValueError(f"tracker_name must be a non-empty str, not {tracker_name!r}")
        if app is not None and not isinstance(app, str) and not hasattr(app, "tasks"):
            raise ValueError(f"app must be a Celery app, its dotted path or None, not {app!r}")
        super().__init__(backends=backends, processors=processors)
        self.backend_name = backend_name
        self.app = app
        self.queue = queue
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self.retry_backoff_max = float(retry_backoff_max)
        self.flush_timeout = float(flush_timeout)
        self.tracker_name = tracker_name
        self.contexts = bool(contexts)
        self._task: Any = None
        self._closed = False

    # -- the emitting side ------------------------------------------------------

    def send(self, event: Any) -> None:
        """Process `event` here, then queue it for the nested backends."""
        self._check_open()
        try:
            processed = self.process_event(event)
        except EventEmissionExit:
            return
        self._publish([processed])

    def send_batch(self, events: list[Any]) -> None:
        """Process each event here, then queue the survivors as one task."""
        self._check_open()
        survivors: list[Any] = []
        for event in events:
            try:
                survivors.append(self.process_event(event))
            except EventEmissionExit:
                continue
        if survivors:
            self._publish(survivors)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"AsyncRoutingBackend({self.backend_name!r}) is closed")

    def _publish(self, events: list[Any]) -> None:
        payload = dumps_str(
            {"v": PAYLOAD_VERSION, "events": events, "contexts": self._task_contexts()}
        )
        task = self._celery_task()
        options = {} if self.queue is None else {"queue": self.queue}
        try:
            task.apply_async(args=(self.backend_name, payload), **options)
        except (KombuError, OSError) as exc:
            raise RetryableError(
                f"AsyncRoutingBackend({self.backend_name!r}): cannot queue the task: "
                f"{type(exc).__name__}: {exc}; check that the Celery broker is reachable"
            ) from exc

    def _celery_task(self) -> Any:
        # Resolved on first use: the Celery app is often configured after the
        # tracker (Django settings are read before the celery module runs).
        if self._task is None:
            from .. import tasks  # registers the shared task with every app

            app = self.app
            if app is None:
                from celery import current_app

                app = current_app
            elif isinstance(app, str):
                from ..config import import_object

                app = import_object(app.replace(":", "."), f"{self.backend_name}.app")
            self._task = app.tasks[tasks.TASK_NAME]
        return self._task

    def _task_contexts(self) -> list[tuple[str, Any]]:
        if not self.contexts:
            return []
        from ..tracker import TRACKERS

        tracker = TRACKERS.get(self.tracker_name)
        if tracker is None:
            return []
        # located_context holds the task-scope contexts, oldest first.
        return list(tracker.located_context.items())

    def flush(self, timeout: float = 10.0) -> bool:
        """Queued tasks are already with the broker; flush the nested backends (eager mode)."""
        return super().flush(timeout)

    def close(self) -> None:
        """Close the nested backends; idempotent. Sending afterwards raises RuntimeError."""
        if self._closed:
            return
        self._closed = True
        super().close()

    # -- the worker side ----------------------------------------------------------

    def deliver(
        self, events: Sequence[Any], only: Iterable[str] | None = None
    ) -> dict[str, Exception]:
        """Send `events` to the nested backends (those named in `only`, if given) and flush.

        Returns the failures worth retrying, by backend name; terminal
        failures are logged and counted, not returned. Runs in the worker.
        """
        wanted = None if only is None else set(only)
        failures: dict[str, Exception] = {}
        for name, backend in self.backends.items():
            if wanted is not None and name not in wanted:
                continue
            try:
                send_batch = getattr(backend, "send_batch", None)
                if len(events) > 1 and callable(send_batch):
                    send_batch(list(events))
                else:
                    for event in events:
                        backend.send(event)
                if not flush_backend(backend, self.flush_timeout):
                    diagnostics.increment(f"async_routing.{self.backend_name}.flush_timeouts")
                    diagnostics.warn_once(
                        ("async_routing.flush", self.backend_name, name),
                        "AsyncRoutingBackend %r: backend %r did not flush within %gs",
                        self.backend_name,
                        name,
                        self.flush_timeout,
                    )
            except TerminalError:
                diagnostics.increment(f"async_routing.{self.backend_name}.terminal")
                diagnostics.log_burst(
                    f"async_routing.terminal:{self.backend_name}:{name}",
                    "AsyncRoutingBackend %r: backend %r rejected %d event(s); not retried",
                    self.backend_name,
                    name,
                    len(events),
                )
            except Exception as exc:
                diagnostics.increment(f"backend.{name}.errors")
                failures[name] = exc
        return failures

    def retry_delay(self, retries: int, failures: Mapping[str, Exception]) -> float:
        """Seconds before retry number `retries` + 1: the largest ``retry_after`` given, or
        an exponential backoff with jitter capped at `retry_backoff_max`."""
        asked = [
            exc.retry_after
            for exc in failures.values()
            if isinstance(exc, DeliveryError) and exc.retry_after is not None
        ]
        if asked:
            return max(asked)
        ceiling = min(self.retry_backoff_max, self.retry_backoff * 2.0**retries)
        return ceiling * random.uniform(0.5, 1.0)


def find_backend(backend_name: str) -> AsyncRoutingBackend:
    """The AsyncRoutingBackend named `backend_name` in this process's trackers.

    Builds the default tracker from configuration first when it is not found.
    Raises ImproperlyConfigured, saying what to fix, when there is none.
    """
    from ..tracker import TRACKERS, get_tracker

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


def _search(trackers: Iterable[Any], name: str) -> AsyncRoutingBackend | None:
    pending: list[Any] = [tracker.routing_backend for tracker in list(trackers)]
    seen: set[int] = set()
    while pending:
        backend = pending.pop()
        if id(backend) in seen:
            continue
        seen.add(id(backend))
        if isinstance(backend, AsyncRoutingBackend) and backend.backend_name == name:
            return backend
        children = getattr(backend, "backends", None)
        if isinstance(children, Mapping):
            pending.extend(children.values())
        wrapped = getattr(backend, "backend", None)  # a delivery worker wrapping a backend
        if wrapped is not None:
            pending.append(wrapped)
    return None


def run_task(task: Any, backend_name: str, payload: str, only: list[str] | None) -> None:
    """The body of the Celery task: decode, enter the contexts, deliver, retry on failure."""
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
        LOG.error(
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


def run_legacy_task(task: Any, backend_name: str, json_event: str, only: list[str] | None) -> None:
    """Open edX's ``send_event``: one JSON event queued by an event-tracking web process.

    There the backend's own processors ran in the worker, not before
    queueing, so they run here; then delivery and retries are ours.
    """
    backend = find_backend(backend_name)
    try:
        event = backend.process_event(_revive(loads(json_event)))
    except EventEmissionExit:
        return
    payload = dumps_str({"v": PAYLOAD_VERSION, "events": [event], "contexts": []})
    run_task(task, backend_name, payload, only)


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
    from ..tracker import get_tracker

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
