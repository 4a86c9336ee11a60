"""The consumer side of the event bus: deliver ``TRACKING_EVENT_EMITTED`` to our backends.

A process that consumes Open edX's event bus (``manage.py consume_events``)
receives each event an `EventBusRoutingBackend` published as the
``TRACKING_EVENT_EMITTED`` signal. `send_tracking_log_to_backends` turns it
back into an event and hands it to every `EventBusRoutingBackend` of the
default tracker: through that backend's processors, then to its nested
backends. The event is published once and fanned out here, so adding a
destination never adds traffic on the bus.

The signal sent in the emitting process itself (not from the bus) is ignored:
that copy is the one on its way to the bus. `eventtracking.django`'s app
imports this module at start-up when openedx-events is installed
(``pip install 'event-tracking[openedx]'``).
"""

from __future__ import annotations

import json
from typing import Any

from .exceptions import MissingExtraError
from .logsafe import safe_logger

try:
    from django.dispatch import receiver
    from openedx_events.analytics.signals import TRACKING_EVENT_EMITTED
    from openedx_events.tooling import SIGNAL_PROCESSED_FROM_EVENT_BUS
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError((exc.name or "openedx_events").split(".")[0], "openedx") from exc

from .backends.event_bus import EventBusRoutingBackend
from .processors.exceptions import EventEmissionExit
from .tracker import get_tracker

__all__ = ["send_tracking_log_to_backends"]

logger = safe_logger(__name__)  # outside input in messages cannot forge lines


@receiver(TRACKING_EVENT_EMITTED)
def send_tracking_log_to_backends(sender: Any, signal: Any, **kwargs: Any) -> None:
    """Deliver a tracking log that arrived over the event bus to the event-bus backends.

    Connected to ``TRACKING_EVENT_EMITTED``. Signals not marked as coming
    from the bus are skipped. The event is rebuilt from the ``tracking_log``
    (``data`` and ``context`` decoded from JSON); each `EventBusRoutingBackend`
    of `get_tracker()` runs its processors on it, then sends it to its
    backends. A processor that raises `EventEmissionExit` drops the event for
    that backend only. Other errors propagate to the signal's sender (the
    event bus consumer logs them with the message). Log lines are the
    original's, formatted before the call, as tests that mock `logger` expect.
    """
    if not kwargs.get(SIGNAL_PROCESSED_FROM_EVENT_BUS, False):
        logger.debug("Event received from a non-event bus backend, skipping...")
        return
    tracking_log = kwargs["tracking_log"]
    event = {
        "name": tracking_log.name,
        "timestamp": tracking_log.timestamp,
        "data": json.loads(tracking_log.data),
        "context": json.loads(tracking_log.context),
    }
    # A snapshot: a backend added while we deliver waits for the next event.
    backends = list(get_tracker().backends.values())
    for backend in backends:
        if not isinstance(backend, EventBusRoutingBackend):
            continue
        try:
            processed = backend.process_event(event)
            logger.info(f'Successfully processed event "{event["name"]}"')
            # A copy per backend: what one backend's backends do to the
            # top level of the event is not seen by the next one.
            backend.send_to_backends(processed.copy())
        except EventEmissionExit:
            logger.info(f"[EventEmissionExit] skipping event {event['name']}")
