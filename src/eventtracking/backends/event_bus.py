"""Send events over Open edX's event bus (``pip install 'event-tracking[openedx]'``).

`EventBusRoutingBackend` is the Open edX backend of that name. In the
emitting process its `send` publishes the event as openedx-events'
``TRACKING_EVENT_EMITTED`` signal; the event bus plugin configured for that
signal (``EVENT_BUS_PRODUCER_CONFIG``: Redis Streams, Kafka) carries it to
its consumers. There, `eventtracking.handlers` turns the signal back into an
event and runs this backend's processors and nested backends. So the
processors and nested backends of an ``EventBusRoutingBackend`` work on the
consumer side, never in the emitting process.

An event is published only when the setting
``SEND_TRACKING_EVENT_EMITTED_SIGNAL`` is true and its name is listed in
``EVENT_BUS_TRACKING_LOGS``; every other event is ignored. ``data`` and
``context`` travel as JSON text, encoded as the original 4.x encodes them
(`json.dumps` with `DateTimeJSONEncoder`), so consumers of either version
read the same messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..exceptions import MissingExtraError
from ..logsafe import safe_logger

try:
    from django.conf import settings
    from openedx_events.analytics.data import TrackingLogData
    from openedx_events.analytics.signals import TRACKING_EVENT_EMITTED
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError((exc.name or "openedx_events").split(".")[0], "openedx") from exc

from .._toggles import SEND_TRACKING_EVENT_EMITTED_SIGNAL
from .logger import DateTimeJSONEncoder
from .routing import Processor, RoutingBackend

__all__ = ["TIMESTAMP_FORMAT", "EventBusRoutingBackend"]

logger = safe_logger(__name__)  # outside input in messages cannot forge lines

# How a timestamp given as text is read (an event revived from JSON, say): the
# ISO form `datetime.isoformat` writes for an aware time with microseconds.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"


class EventBusRoutingBackend(RoutingBackend):
    """Publish selected events on the event bus; its backends receive them on the consumer side.

    `processors` and `backends` are those of a `RoutingBackend`; they are used
    by `eventtracking.handlers` in the process that consumes the bus, not by
    `send`. `backend_name` is kept as an attribute, for configurations that
    name their backends.

    `send` publishes nothing unless the Django setting
    ``SEND_TRACKING_EVENT_EMITTED_SIGNAL`` is true and the event's name is
    in ``EVENT_BUS_TRACKING_LOGS``. A ``timestamp`` given as text must have
    the form of `TIMESTAMP_FORMAT` (ValueError otherwise; a tracker counts
    and logs it like any failing backend).
    """

    def __init__(
        self,
        processors: Iterable[Processor] | None = None,
        backends: Mapping[str, Any] | None = None,
        backend_name: str = "",
    ) -> None:
        if not isinstance(backend_name, str):
            raise TypeError(f"backend_name must be a str, not {type(backend_name).__name__}")
        self.backend_name = backend_name
        super().__init__(backends=backends, processors=processors)

    def send(self, event: dict[str, Any]) -> None:
        """Publish `event` as ``TRACKING_EVENT_EMITTED`` when it is switched on and listed."""
        if not SEND_TRACKING_EVENT_EMITTED_SIGNAL.is_enabled():
            return
        name = event.get("name")
        if name not in getattr(settings, "EVENT_BUS_TRACKING_LOGS", []):
            return
        timestamp = event.get("timestamp")
        if isinstance(timestamp, str):
            timestamp = datetime.strptime(timestamp, TIMESTAMP_FORMAT)
        tracking_log = TrackingLogData(
            name=name,
            timestamp=timestamp,
            data=json.dumps(event.get("data"), cls=DateTimeJSONEncoder),
            context=json.dumps(event.get("context"), cls=DateTimeJSONEncoder),
        )
        TRACKING_EVENT_EMITTED.send_event(tracking_log=tracking_log)
        logger.info(f"Tracking log {tracking_log.name} emitted to the event bus.")

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        """Publish each event as `send` would (never to the nested backends directly)."""
        for event in events:
            self.send(event)
