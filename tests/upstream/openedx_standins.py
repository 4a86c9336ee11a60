"""The stock Open edX tracker tree, as settings, with stand-ins for edx-platform's processors.

edx-platform's settings route every event to `tracking_logs` (a RoutingBackend:
the platform's own processors, then LoggerBackend `tracking`, max_event_size
50000) and `segmentio` (a RoutingBackend: a name whitelist, a Google Analytics
processor, then SegmentBackend with no options); event-routing-backends adds
`event_transformer` (AsyncRoutingBackend: a name whitelist, then one Celery
task per event to nested routers) and `event_bus` (EventBusRoutingBackend).
The processors here are ours and only do what the platform's kind of
processors do to an event: change it in place, return a new one, drop it with
EventEmissionExit, or fail.

This module runs in both implementations (the original 4.0.2 and ours), so it
uses only what both offer. `module` is the dotted name this module is imported
under (``openedx_standins`` in the corpus script, ``upstream.openedx_standins``
in pytest), which ENGINE paths need.
"""

from __future__ import annotations

import copy
from typing import Any

from eventtracking.processors.exceptions import EventEmissionExit

TRACK_MAX_EVENT = 50000  # edx-platform's max_event_size for tracking.log
COURSE = "course-v1:edX+DemoX+Demo_Course"
REQUEST_CONTEXT = {  # what edx-platform's middleware puts in the context of a request
    "user_id": 10938,
    "username": "staff",
    "session": "2987lkjdyoioey",
    "ip": "203.0.113.7",
    "host": "lms.example.com",
    "agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "path": "/courses/course-v1:edX+DemoX+Demo_Course/courseware",
    "referer": "https://lms.example.com/dashboard",
    "accept_language": "fr-CA,fr;q=0.9,en;q=0.8",
    "client_id": "1234567.7654321",
    "course_id": COURSE,
    "org_id": "edX",
}
DROPPED_NAME = "edx.dropped.by.processor"
CRASH_NAME = "edx.processor.crash"


class Stamper:
    """Adds `key` to the event's context in place, and to a list under data['items'] if any.

    Returns None (the event is changed, not replaced), as many of the
    platform's processors do.
    """

    def __init__(self, key: str = "processed_by", value: Any = "tracking_logs") -> None:
        self.key = key
        self.value = value

    def __call__(self, event: dict[str, Any]) -> None:
        event["context"][self.key] = self.value
        data = event.get("data")
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            data["items"].append(self.value)


class LegacyShaper:
    """Like edx-platform's legacy field mapping: a new event with `event_type`, `event_source`."""

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        shaped = dict(event)
        shaped["event_type"] = event.get("name")
        shaped["event_source"] = "server"
        return shaped


class NameDropper:
    """Drops the events with the given names (EventEmissionExit)."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("name") in self.names:
            raise EventEmissionExit()
        return event


class HalfDoneCrasher:
    """For the given names, changes the context and then raises: a buggy processor.

    The original logs the error and runs the next processors on the event as
    the failing processor left it.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("name") in self.names:
            event["context"]["half_done"] = True
            raise RuntimeError("stand-in processor failed half way")


class GoogleAnalyticsLabeler:
    """Like edx-platform's Google Analytics processor: a shallow copy labelled with the course."""

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        labelled = dict(event)
        course_id = event.get("context", {}).get("course_id")
        if course_id:
            labelled["label"] = course_id
            labelled["nonInteraction"] = 1
        return labelled


# Events each RecordingBackend received, by label (deep copies, in arrival order).
RECORDED: dict[str, list[dict[str, Any]]] = {}


class RecordingBackend:
    """A backend that keeps a deep copy of every event it is sent under RECORDED[label]."""

    def __init__(self, label: str) -> None:
        self.label = label

    def send(self, event: dict[str, Any]) -> None:
        RECORDED.setdefault(self.label, []).append(copy.deepcopy(event))


def tracking_logs_processors(module: str) -> list[dict[str, Any]]:
    """The `tracking_logs` branch's processor settings."""
    return [
        {"ENGINE": f"{module}.Stamper"},
        {"ENGINE": f"{module}.HalfDoneCrasher", "OPTIONS": {"names": [CRASH_NAME]}},
        {"ENGINE": f"{module}.LegacyShaper"},
        {"ENGINE": f"{module}.NameDropper", "OPTIONS": {"names": [DROPPED_NAME]}},
    ]


def tracking_logs(module: str) -> dict[str, Any]:
    """The `tracking_logs` branch: processors, then LoggerBackend `tracking` (max 50000)."""
    return {
        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
        "OPTIONS": {
            "backends": {
                "local": {
                    "ENGINE": "eventtracking.backends.logger.LoggerBackend",
                    "OPTIONS": {"name": "tracking", "max_event_size": TRACK_MAX_EVENT},
                }
            },
            "processors": tracking_logs_processors(module),
        },
    }


def whitelist(names: list[str]) -> dict[str, Any]:
    return {
        "ENGINE": "eventtracking.processors.whitelist.NameWhitelistProcessor",
        "OPTIONS": {"whitelist": list(names)},
    }


def openedx_backends(module: str, allowed: list[str]) -> dict[str, Any]:
    """EVENT_TRACKING_BACKENDS of an Open edX LMS with event-routing-backends installed.

    `allowed` is the whitelist of segmentio, event_transformer and event_bus
    (as EVENT_BUS_TRACKING_LOGS is in the platform). Under event_transformer,
    two nested routers (`caliper` with a processor of its own, called first,
    and `xapi` without) record what they receive in RECORDED.
    """
    return {
        "tracking_logs": tracking_logs(module),
        "segmentio": {
            "ENGINE": "eventtracking.backends.routing.RoutingBackend",
            "OPTIONS": {
                "backends": {
                    "segment": {"ENGINE": "eventtracking.backends.segment.SegmentBackend"}
                },
                "processors": [
                    whitelist(allowed),
                    {
                        "ENGINE": f"{module}.Stamper",
                        "OPTIONS": {"key": "segment_only", "value": "segmentio"},
                    },
                    {"ENGINE": f"{module}.GoogleAnalyticsLabeler"},
                ],
            },
        },
        "event_transformer": {
            "ENGINE": "eventtracking.backends.async_routing.AsyncRoutingBackend",
            "OPTIONS": {
                "backend_name": "event_transformer",
                "processors": [whitelist(allowed)],
                "backends": {
                    "caliper": {
                        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
                        "OPTIONS": {
                            "processors": [
                                {
                                    "ENGINE": f"{module}.Stamper",
                                    "OPTIONS": {"key": "caliper_only", "value": "caliper"},
                                }
                            ],
                            "backends": {
                                "recorder": {
                                    "ENGINE": f"{module}.RecordingBackend",
                                    "OPTIONS": {"label": "caliper"},
                                }
                            },
                        },
                    },
                    "xapi": {
                        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
                        "OPTIONS": {
                            "backends": {
                                "recorder": {
                                    "ENGINE": f"{module}.RecordingBackend",
                                    "OPTIONS": {"label": "xapi"},
                                }
                            },
                        },
                    },
                },
            },
        },
        "event_bus": {
            "ENGINE": "eventtracking.backends.event_bus.EventBusRoutingBackend",
            "OPTIONS": {"backend_name": "event_bus", "processors": [whitelist(allowed)]},
        },
    }
