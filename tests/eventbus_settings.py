"""Django settings for the two processes of the event-bus test (test_event_bus_redis.py).

One settings module for both sides, as an Open edX deployment has: the web
process that emits (``EVENTBUS_E2E_ROLE=producer``) and the
``manage.py consume_events`` process (``consumer``). The test passes what
differs per run in the environment: the Redis URL, a topic prefix unique to
the run, and the directory the JSON-lines files go to.

Each process writes two files, named after its role:

* ``emitted-<role>.jsonl``: every event the tracker emits (a top-level
  backend beside ``event_bus``);
* ``received-<role>.jsonl``: what the ``event_bus`` backend's nested backend
  receives, which only the consumer side should ever write.
"""

from __future__ import annotations

import os
from pathlib import Path

ROLE = os.environ["EVENTBUS_E2E_ROLE"]
OUT = Path(os.environ["EVENTBUS_E2E_DIR"])

SECRET_KEY = "eventtracking-event-bus-test-not-for-production"
DEBUG = False
USE_TZ = True
DATABASES: dict[str, object] = {}
INSTALLED_APPS = [
    "eventtracking.django",
    "openedx_events",  # connects EVENT_BUS_PRODUCER_CONFIG; has the consume_events command
    "edx_event_bus_redis",
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
}

# -- eventtracking -------------------------------------------------------------------

TOPIC = "analytics"
EVENT_NAME = "edx.e2e.bus.crossed"  # published; the test emits one more name that is not

EVENT_TRACKING_ENABLED = True
EVENT_TRACKING_BACKENDS = {
    "emitted": {
        "ENGINE": "eventtracking.backends.jsonl.JSONLinesBackend",
        "OPTIONS": {"path": str(OUT / f"emitted-{ROLE}.jsonl"), "autoflush": True},
    },
    "event_bus": {
        "ENGINE": "eventtracking.backends.event_bus.EventBusRoutingBackend",
        "OPTIONS": {
            "backend_name": "event_bus",
            "backends": {
                "received": {
                    "ENGINE": "eventtracking.backends.jsonl.JSONLinesBackend",
                    "OPTIONS": {"path": str(OUT / f"received-{ROLE}.jsonl"), "autoflush": True},
                },
            },
        },
    },
}
SEND_TRACKING_EVENT_EMITTED_SIGNAL = True
EVENT_BUS_TRACKING_LOGS = [EVENT_NAME]

# -- openedx-events and edx-event-bus-redis ------------------------------------------

EVENT_BUS_PRODUCER = "edx_event_bus_redis.create_producer"
# The plugin's consumer, made to stop by itself (see eventbus_consumer).
EVENT_BUS_CONSUMER = "eventbus_consumer.BoundedRedisConsumer"
EVENT_BUS_REDIS_CONNECTION_URL = os.environ["EVENTBUS_E2E_REDIS"]
EVENT_BUS_TOPIC_PREFIX = os.environ["EVENTBUS_E2E_PREFIX"]
# Seconds a poll waits for a message: the longest the consumer takes to see its stop flag.
EVENT_BUS_REDIS_CONSUMER_POLL_TIMEOUT = 1
EVENT_BUS_REDIS_CONSUMER_CONSECUTIVE_ERRORS_LIMIT = 5
EVENT_BUS_PRODUCER_CONFIG = {
    "org.openedx.analytics.tracking.event.emitted.v1": {
        TOPIC: {"event_key_field": "tracking_log.name", "enabled": True},
    },
}
