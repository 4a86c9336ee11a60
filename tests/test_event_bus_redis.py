"""End to end on a real Redis: an event emitted in one process reaches another over the bus.

Two interpreters, started by `eventbus_support.EventBusRun`, both with the
Django settings in `eventbus_settings`:

1. the consumer: Open edX's ``consume_events`` management command running
   edx-event-bus-redis's consumer (stopped by a watchdog once it has handled
   the expected message and a quiet second and a half followed; see
   `eventbus_consumer`), whose consumer group is created before anything is
   produced;
2. the producer: emits through `eventtracking.tracker.emit`; the
   DjangoTracker's ``event_bus`` backend publishes ``TRACKING_EVENT_EMITTED``,
   openedx-events hands it to the Redis producer (``EVENT_BUS_PRODUCER_CONFIG``),
   which adds it to the stream ``<prefix>-analytics``.

In the consumer, the signal reaches `eventtracking.handlers`, which gives the
event to the ``event_bus`` backend's nested JSON-lines backend. The test then
compares what each side wrote. Every name is unique to the run and the stream
is deleted afterwards.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from eventbus_support import EventBusRun
from services import redis_url, require_driver, unique

pytestmark = pytest.mark.services

require_driver("redis", "redis")
for _module in ("django", "openedx_events", "edx_toggles"):
    require_driver(_module, "openedx")
require_driver("edx_event_bus_redis", "test")

import redis  # noqa: E402

LISTED = "edx.e2e.bus.crossed"  # eventbus_settings.EVENT_NAME
NOT_LISTED = "edx.e2e.bus.not_listed"

# Seconds. The suite runs with --timeout 120: these add up to less in the worst case.
CONSUMER_START = 30.0
PRODUCE = 30.0
CONSUMER_BUDGET = 40.0


def test_an_emitted_event_crosses_redis_once_with_its_data_and_context(tmp_path: Path) -> None:
    url = redis_url()
    run = EventBusRun(url, unique("et-bus"), tmp_path)
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        run.start_consumer(expect=1, budget=CONSUMER_BUDGET)
        if not run.wait_until_consumer_ready(CONSUMER_START):
            pytest.fail(f"the consumer did not start:\n{run.consumer_log()}")

        produced = run.produce(PRODUCE)
        assert produced.returncode == 0, produced.stderr
        # One entry: the unlisted event never went onto the bus.
        assert client.xlen(run.stream) == 1, produced.stderr

        code = run.wait_for_consumer(CONSUMER_BUDGET + 10)
        log = run.consumer_log()
        assert code == 0, log
        assert run.summary() == {"handled": 1, "errors": [], "timed_out": False}, log
        assert client.xpending(run.stream, run.group)["pending"] == 0  # acknowledged

        emitted = run.lines("emitted", "producer")
        assert [event["name"] for event in emitted] == [LISTED, NOT_LISTED]
        sent = emitted[0]
        received = run.lines("received", "consumer")
        assert len(received) == 1, log  # exactly once
        got = received[0]
        assert got["name"] == LISTED
        assert got["data"] == sent["data"]
        assert got["data"] == {
            "answer": 42,
            "text": "héllo wörld",
            "nested": {"list": [1, 2.5, None, True]},
        }
        assert got["context"] == sent["context"]
        assert got["context"]["user_id"] == 7
        assert got["context"]["course_id"] == "course-v1:Org+E2E+Run"
        assert datetime.fromisoformat(got["timestamp"]) == datetime.fromisoformat(sent["timestamp"])
        # The producer published without delivering locally; the consumer did not re-emit.
        assert run.lines("received", "producer") == []
        assert run.lines("emitted", "consumer") == []
    finally:
        run.stop()
        client.delete(run.stream)
        client.close()
