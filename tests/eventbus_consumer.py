"""The consuming process's consumer class for the event-bus test (never imported by pytest).

The test runs Open edX's own ``python -m django consume_events`` with
``EVENT_BUS_CONSUMER = "eventbus_consumer.BoundedRedisConsumer"``: the
plugin's `RedisEventConsumer`, plus a watchdog thread that stops its loop
(through the plugin's ``_shut_down`` hook, which the loop checks between
polls of ``EVENT_BUS_REDIS_CONSUMER_POLL_TIMEOUT`` seconds) once
``EVENTBUS_E2E_EXPECT`` messages were handled and none followed for
``EVENTBUS_E2E_SETTLE`` seconds, or once ``EVENTBUS_E2E_BUDGET`` seconds have
passed. Waiting after the last expected message is what lets the test see a
duplicate. It writes ``consumer-ready`` in ``EVENTBUS_E2E_DIR`` once its
consumer group exists, and ``consumer-summary.json`` on the way out.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from edx_event_bus_redis import RedisEventConsumer

OUT = Path(os.environ["EVENTBUS_E2E_DIR"])


class _Watchdog:
    """Counts handled messages and decides when the consumer has seen enough."""

    def __init__(self) -> None:
        self.expect = int(os.environ.get("EVENTBUS_E2E_EXPECT", "1"))
        self.settle = float(os.environ.get("EVENTBUS_E2E_SETTLE", "1.5"))
        self.deadline = time.monotonic() + float(os.environ.get("EVENTBUS_E2E_BUDGET", "60"))
        self.handled = 0
        self.errors: list[str] = []
        self.last = time.monotonic()
        self.timed_out = False

    def handled_one(self, error: BaseException | None) -> None:
        self.handled += 1
        self.last = time.monotonic()
        if error is not None:
            self.errors.append(repr(error))

    def done(self) -> bool:
        now = time.monotonic()
        if now >= self.deadline:
            self.timed_out = True
            return True
        return self.handled >= self.expect and now - self.last >= self.settle


class BoundedRedisConsumer(RedisEventConsumer):  # type: ignore[misc]
    """The plugin's consumer, stopped by a watchdog (see module docs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the group exists, reading from "$", after this
        self.watchdog = _Watchdog()
        (OUT / "consumer-ready").write_text(self.full_topic)

    def emit_signals_from_message(self, msg: Any) -> None:
        try:
            super().emit_signals_from_message(msg)
        except Exception as exc:
            self.watchdog.handled_one(exc)
            raise
        self.watchdog.handled_one(None)

    def consume_indefinitely(self) -> None:
        threading.Thread(target=self._stop_when_done, daemon=True).start()
        try:
            super().consume_indefinitely()
        finally:
            summary = {
                "handled": self.watchdog.handled,
                "errors": self.watchdog.errors,
                "timed_out": self.watchdog.timed_out,
            }
            (OUT / "consumer-summary.json").write_text(json.dumps(summary))

    def _stop_when_done(self) -> None:
        while not self.watchdog.done():
            time.sleep(0.05)
        self._shut_down()
