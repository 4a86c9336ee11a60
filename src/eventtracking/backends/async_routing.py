"""Route events through Celery: processors run here, the nested backends run in a worker.

The Open edX ``AsyncRoutingBackend`` (``pip install 'event-tracking[celery]'``).
`send` runs the processors in the caller, so a dropped event never reaches
the broker, then queues a Celery task carrying the processed event; in the
worker, the task hands it to the nested backends. There are two tasks.

**By default: Open edX's task.** `send` queues
``eventtracking.tasks.send_event(backend_name, processed_event)`` (see
`eventtracking.tasks`): the event itself, encoded by Celery's serializer,
exactly as Open edX event-tracking queues it, so its workers deliver our
messages and ours deliver its messages. The worker looks the backend up as
``get_tracker().backends[backend_name]``: this backend must be a top-level
backend of the default tracker, under the name given as `backend_name`, in
the worker's configuration as in the web processes'. A failing worker retries
the whole event 3 times, 30 seconds apart; processors run only where the
event was queued. `send_batch` queues one such task per event.

**Opt-in: the batched task** (``batch=True``). `send` queues one
`eventtracking.tasks.send_events` task per event and `send_batch` one per
batch; workers running Open edX event-tracking cannot run it, so switch it
on only once every worker runs this library. It carries a JSON text
(`eventtracking.serialization`): the processed events (the worker turns each
``timestamp`` back into an aware datetime; other datetimes stay ISO strings)
and the *task-scope* contexts of the tracker registered as `tracker_name`,
captured when `send` is called. The worker finds the backend by
`backend_name` anywhere in its registered trackers (first building the
default tracker, from ``$EVENTTRACKING_CONFIG``, if none is registered yet),
so it may be nested, and enters the travelling contexts, by name and in
order, on its tracker of the same name for the duration of the task, so
events that the nested backends' code emits there see the same request and
view contexts. Process-scope contexts do not travel: the worker keeps its own
(its host, its service). Capture happens in the thread that calls `send`, so
call it from the emitting thread (a `Tracker` does); behind a queue of your
own, that queue's thread is what counts.

Batched failures: a nested backend that raises `RetryableError` (or any
exception other than `TerminalError`) makes Celery retry the task for that
backend only, after a wait chosen by the delivery worker's `RetryPolicy`
(exponential backoff with full jitter, `retry_backoff` doubling up to
`retry_backoff_max` seconds, never sooner than the largest ``retry_after``
given), at most `max_retries` times; then the task
fails and the loss is counted under ``async_routing.NAME.gave_up``. A
`TerminalError` is not retried (``async_routing.NAME.terminal``). Delivery is
at-least-once: a retried batch may reach a backend twice, and the stores
de-duplicate on the event id.

Either way, backend options (DSNs, keys) never travel through the broker.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from .. import diagnostics
from ..delivery.retry import RetryPolicy
from ..exceptions import (
    DeliveryError,
    MissingExtraError,
    RetryableError,
    TerminalError,
)
from ..logsafe import safe_logger
from ..processors.exceptions import EventEmissionExit
from ..serialization import dumps_str
from . import flush_backend
from .routing import Processor, RoutingBackend

try:
    from kombu.exceptions import KombuError
except ImportError as exc:
    raise MissingExtraError("celery", "celery") from exc

# Imported here, as Open edX does, so that importing this module registers the
# tasks, and so that tests may patch ``eventtracking.backends.async_routing.send_event``.
from ..tasks import BATCH_TASK_NAME, PAYLOAD_VERSION, TASK_NAME, send_event, send_events

__all__ = ["AsyncRoutingBackend"]

LOG = safe_logger(__name__)  # outside input in messages cannot forge lines
# The options read in the worker, and their defaults.
_DEFAULTS: dict[str, Any] = {
    "max_retries": 10,
    "retry_backoff": 1.0,
    "retry_backoff_max": 600.0,
    "flush_timeout": 30.0,
    "tracker_name": "default",
    "contexts": True,
}


def _event_name(event: Any) -> Any:
    return event.get("name") if isinstance(event, Mapping) else None


class AsyncRoutingBackend(RoutingBackend):
    """Run `processors` here and hand the events to `backends` in a Celery worker.

    The arguments are Open edX's, in its order. `backend_name` is how the
    worker finds this backend: by default its name among the default
    tracker's top-level backends. Keyword-only options:

    - `app`: a Celery app or its dotted path (``"proj.celery.app"``); None
      uses Celery's current app. `queue`: the queue (None: Celery's routing).
    - `flush_timeout` (30.0): seconds the worker waits for the nested
      backends to flush after each task, read from the worker's configuration.
    - ``batch=True`` switches to the batched task `eventtracking.tasks.send_events`
      (see the module docs); workers running Open edX event-tracking cannot
      run it. It needs a non-empty `backend_name`, unique in the worker's
      trackers. Only with it: `max_retries` (default 10), `retry_backoff`
      (1.0) and `retry_backoff_max` (600.0), read from the worker's
      configuration; `tracker_name` ("default") and ``contexts`` (True; False
      stops sending the task-scope contexts).

    Options that do not apply raise ValueError at construction. `send` lets
    the error Celery raises when the broker cannot take the task propagate,
    as Open edX does; with ``batch=True`` it raises `RetryableError`
    instead. Both raise RuntimeError after `close()`. Thread-safe.
    """

    # How `eventtracking.tasks` recognises the backends its batched task can
    # deliver through, without importing this module (which imports it).
    celery_batch_target: ClassVar[bool] = True

    def __init__(
        self,
        processors: Iterable[Processor] | None = None,
        backends: Mapping[str, Any] | None = None,
        backend_name: str = "",
        *,
        batch: bool = False,
        app: Any = None,
        queue: str | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
        retry_backoff_max: float | None = None,
        flush_timeout: float | None = None,
        tracker_name: str | None = None,
        contexts: bool | None = None,
    ) -> None:
        given = {
            "max_retries": max_retries,
            "retry_backoff": retry_backoff,
            "retry_backoff_max": retry_backoff_max,
            "flush_timeout": flush_timeout,
            "tracker_name": tracker_name,
            "contexts": contexts,
        }
        options = _validate(backend_name, batch, app, queue, given)
        super().__init__(backends=backends, processors=processors)
        self.backend_name = backend_name
        self.batch = batch
        self.app = app
        self.queue = queue
        self.max_retries: int = options["max_retries"]
        self.retry_backoff = float(options["retry_backoff"])
        self.retry_backoff_max = float(options["retry_backoff_max"])
        self.flush_timeout = float(options["flush_timeout"])
        self.tracker_name: str = options["tracker_name"]
        self.contexts = bool(options["contexts"])
        self._app: Any = None
        self._closed = False

    # -- the emitting side ------------------------------------------------------

    def send(self, event: Any) -> None:
        """Process `event` here, then queue it for the nested backends."""
        self._check_open()
        name = _event_name(event)
        try:
            processed = self.process_event(event)
            LOG.info('Successfully processed event "%s"', name)
        except EventEmissionExit:
            LOG.info("[EventEmissionExit] skipping event %s", name)
            return
        if self.batch:
            self._publish_batch([processed])
        else:
            self._publish_event(processed)
        LOG.info('Scheduled celery task for event "%s" processing and routing', name)

    def send_batch(self, events: list[Any]) -> None:
        """Process each event here, then queue the survivors: one task each, or one in all
        with ``batch=True``."""
        if not self.batch:
            for event in events:
                self.send(event)
            return
        self._check_open()
        survivors: list[Any] = []
        for event in events:
            try:
                survivors.append(self.process_event(event))
            except EventEmissionExit:
                continue
        if survivors:
            self._publish_batch(survivors)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"AsyncRoutingBackend({self.backend_name!r}) is closed")

    def _publish_event(self, event: Any) -> None:
        task = send_event if self.app is None else self._celery_app().tasks[TASK_NAME]
        if self.queue is None:
            task.delay(self.backend_name, event)  # exactly Open edX's call
        else:
            task.apply_async(args=(self.backend_name, event), queue=self.queue)

    def _publish_batch(self, events: list[Any]) -> None:
        payload = dumps_str(
            {"v": PAYLOAD_VERSION, "events": events, "contexts": self._task_contexts()}
        )
        task = send_events if self.app is None else self._celery_app().tasks[BATCH_TASK_NAME]
        options = {} if self.queue is None else {"queue": self.queue}
        try:
            task.apply_async(args=(self.backend_name, payload), **options)
        except (KombuError, OSError) as exc:
            raise RetryableError(
                f"AsyncRoutingBackend({self.backend_name!r}): cannot queue the task: "
                f"{type(exc).__name__}: {exc}; check that the Celery broker is reachable"
            ) from exc

    def _celery_app(self) -> Any:
        # Resolved on first use: the Celery app is often configured after the
        # tracker (Django settings are read before the celery module runs).
        if self._app is None:
            app = self.app
            if isinstance(app, str):
                from .._dotted import import_object

                app = import_object(app.replace(":", "."), f"{self.backend_name}.app")
            self._app = app
        return self._app

    def _task_contexts(self) -> list[tuple[str, Any]]:
        if not self.contexts:
            return []
        from .._state import TRACKERS

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

    # -- the worker side of the batched task ----------------------------------------

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
                self.counters.increment(f"backend.{name}.errors")
                failures[name] = exc
        return failures

    def retry_delay(
        self,
        retries: int,
        failures: Mapping[str, Exception],
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds before retry number `retries` + 1, as the delivery worker waits.

        `RetryPolicy.delay`: up to `retry_backoff` doubled per retry and
        capped at `retry_backoff_max` (full jitter, `rand`), never less than
        the largest ``retry_after`` the failures asked for.
        """
        asked = [
            exc.retry_after
            for exc in failures.values()
            if isinstance(exc, DeliveryError) and exc.retry_after is not None
        ]
        policy = RetryPolicy(
            max_attempts=None,
            initial_backoff=self.retry_backoff,
            max_backoff=max(self.retry_backoff, self.retry_backoff_max),
        )
        return policy.delay(retries + 1, max(asked) if asked else None, rand)


def _validate(
    backend_name: Any, batch: Any, app: Any, queue: Any, given: dict[str, Any]
) -> dict[str, Any]:
    """Check the constructor's arguments; the batched task's options with defaults filled in."""
    if not isinstance(backend_name, str):
        raise ValueError(f"backend_name must be a str, not {backend_name!r}")
    if not isinstance(batch, bool):
        raise ValueError(f"batch must be true or false, not {batch!r}")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise ValueError(f"queue must be a non-empty str or None, not {queue!r}")
    if app is not None and not isinstance(app, str) and not hasattr(app, "tasks"):
        raise ValueError(f"app must be a Celery app, its dotted path or None, not {app!r}")
    set_options = sorted(name for name, value in given.items() if value is not None)
    batch_only = [name for name in set_options if name != "flush_timeout"]
    if not batch and batch_only:
        raise ValueError(
            f"AsyncRoutingBackend: {', '.join(batch_only)} apply only to the batched "
            "task; add batch=True (workers running Open edX event-tracking cannot run "
            "it) or remove them"
        )
    if batch and not backend_name:
        raise ValueError(
            "AsyncRoutingBackend with batch=True needs backend_name: the name under which "
            "the Celery worker finds this backend in its configuration"
        )
    options = {**_DEFAULTS, **{name: given[name] for name in set_options}}
    max_retries = options["max_retries"]
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, not {max_retries!r}")
    for option in ("retry_backoff", "retry_backoff_max", "flush_timeout"):
        value = options[option]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{option} must be a positive number of seconds, not {value!r}")
    tracker_name = options["tracker_name"]
    if not isinstance(tracker_name, str) or not tracker_name:
        raise ValueError(f"tracker_name must be a non-empty str, not {tracker_name!r}")
    if not isinstance(options["contexts"], bool):
        raise ValueError(f"contexts must be true or false, not {options['contexts']!r}")
    return options
