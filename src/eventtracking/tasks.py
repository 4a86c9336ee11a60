"""The Celery task behind `AsyncRoutingBackend` (``pip install 'eventtracking[celery]'``).

A worker runs it when its app imports this module: ``Celery(...,
include=["eventtracking.tasks"])`` or ``app.autodiscover_tasks(["eventtracking"])``.
The task is a shared task, so it belongs to whichever app is current; the
work itself is `eventtracking.backends.async_routing.run_task`.

Messages are acknowledged after the nested backends have written and
flushed (``acks_late``), and re-queued if the worker process dies meanwhile,
so delivery is at-least-once.
"""

from __future__ import annotations

from typing import Any, Final

from .exceptions import MissingExtraError

try:
    from celery import shared_task
except ImportError as exc:
    raise MissingExtraError("celery", "celery") from exc

__all__ = ["LEGACY_TASK_NAME", "TASK_NAME", "send_event", "send_events"]

TASK_NAME: Final = "eventtracking.tasks.send_events"
# The task Open edX event-tracking queues: messages left in the broker by web
# processes that still run it (during an upgrade) are delivered, not lost.
LEGACY_TASK_NAME: Final = "eventtracking.tasks.send_event"


def _send_events(task: Any, backend_name: str, payload: str, only: list[str] | None = None) -> None:
    """Deliver the events in `payload` to the nested backends of `backend_name`.

    `only`, set on retries, limits delivery to the nested backends that
    failed before, so the others do not receive the events twice.
    """
    from .backends.async_routing import run_task

    run_task(task, backend_name, payload, only)


# Applied as a call, not as a decorator: celery is untyped, and strict mypy
# rejects untyped decorators.
# Both tasks: acknowledged after they ran, so a worker lost mid-task leaves
# the message for another; nothing reads their results.
_OPTIONS: Final = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
}
send_events: Any = shared_task(name=TASK_NAME, **_OPTIONS)(_send_events)


def _send_event(
    task: Any, backend_name: str, json_event: str, only: list[str] | None = None
) -> None:
    """Open edX's task: one JSON-encoded event for the AsyncRoutingBackend `backend_name`."""
    from .backends.async_routing import run_legacy_task

    run_legacy_task(task, backend_name, json_event, only)


send_event: Any = shared_task(name=LEGACY_TASK_NAME, **_OPTIONS)(_send_event)
