"""The Celery app, processors and backends used by test_async_routing.

The real worker loads this module (``celery -A celery_support worker``, with
tests/ on PYTHONPATH) and builds its tracker from the same configuration file
as the test (``$EVENTTRACKING_CONFIG``), as a deployment would.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery, current_task

from eventtracking.exceptions import RetryableError, TerminalError
from eventtracking.processors.exceptions import EventEmissionExit
from eventtracking.serialization import dumps

BROKER_URL = os.environ.get("EVENTTRACKING_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")

app = Celery(
    "eventtracking_tests",
    broker=BROKER_URL,
    include=["eventtracking.tasks"],
    set_as_current=False,
)
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=5,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=1,
)

# (pid, name) of every event a DropNames processor dropped in this process.
DROPPED: list[tuple[int, str]] = []
_write_lock = threading.Lock()


def append_line(path: str, record: Any) -> None:
    with _write_lock, open(path, "ab") as handle:
        handle.write(dumps(record) + b"\n")


class DropNames:
    """Drop events with one of `names`, remembering where that happened."""

    def __init__(self, names: list[str]) -> None:
        self.names = set(names)

    def __call__(self, event: dict[str, Any]) -> None:
        if event["name"] in self.names:
            DROPPED.append((os.getpid(), event["name"]))
            raise EventEmissionExit()


class StampProcess:
    """Add the id of the process the processor runs in to the event's data."""

    def __call__(self, event: dict[str, Any]) -> None:
        event["data"]["processed_in"] = os.getpid()


class FlakyBackend:
    """Fail the first `failures` sends, then append the events as JSON lines to `path`.

    Every attempt appends its wall-clock time to ``path + '.attempts'``.
    Failures are `RetryableError(retry_after=...)`, or `TerminalError` with
    ``terminal=True``.
    """

    def __init__(
        self,
        path: str,
        failures: int = 0,
        retry_after: float | None = None,
        terminal: bool = False,
    ) -> None:
        self.path = path
        self.failures = failures
        self.retry_after = retry_after
        self.terminal = terminal

    def send(self, event: dict[str, Any]) -> None:
        append_line(self.path + ".attempts", time.time())
        with open(self.path + ".attempts", "rb") as handle:
            attempt = sum(1 for _ in handle)
        if attempt <= self.failures:
            if self.terminal:
                raise TerminalError(f"attempt {attempt}: rejected for good")
            raise RetryableError(f"attempt {attempt}: not yet", retry_after=self.retry_after)
        append_line(self.path, event)


class ProbeBackend:
    """Append what the worker sees while delivering each event to `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def send(self, event: dict[str, Any]) -> None:
        from eventtracking.tracker import get_tracker

        tracker = get_tracker()
        timestamp = event["timestamp"]
        append_line(
            self.path,
            {
                "event": event,
                "resolved": tracker.resolve_context(),
                "names": list(tracker.located_context),
                "timestamp_type": type(timestamp).__name__,
                "utcoffset": str(getattr(timestamp, "utcoffset", lambda: None)()),
                "pid": os.getpid(),
                "task_id": getattr(current_task.request, "id", None) if current_task else None,
            },
        )
