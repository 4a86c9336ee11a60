"""EventBusRoutingBackend, the event-bus toggle and eventtracking.handlers, in one process.

The signal is openedx-events' real ``TRACKING_EVENT_EMITTED``: the tests
listen to it as an event bus producer would, and send it the way the bus
consumer does (`send_event_with_custom_metadata`). The trip through Redis is
in test_event_bus_redis.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services import require_driver

require_driver("openedx_events", "openedx")
require_driver("edx_toggles", "openedx")

from openedx_events.analytics.data import TrackingLogData  # noqa: E402
from openedx_events.analytics.signals import TRACKING_EVENT_EMITTED  # noqa: E402
from openedx_events.data import EventsMetadata  # noqa: E402

import django_support  # noqa: E402,F401  (configures Django)
from eventtracking import config  # noqa: E402
from eventtracking.backends.event_bus import EventBusRoutingBackend  # noqa: E402
from eventtracking.backends.logger import DateTimeJSONEncoder  # noqa: E402
from eventtracking.config import instantiate  # noqa: E402
from eventtracking.processors.exceptions import EventEmissionExit  # noqa: E402
from eventtracking.processors.whitelist import NameWhitelistProcessor  # noqa: E402
from eventtracking.testing import InMemoryBackend  # noqa: E402
from eventtracking.tracker import Tracker, register_tracker  # noqa: E402

LISTED = "edx.bus.listed"
WHEN = datetime(2024, 5, 17, 8, 30, 15, 250000, tzinfo=UTC)


@pytest.fixture
def switched_on(settings: Any) -> Any:
    """The toggle on and `LISTED` in EVENT_BUS_TRACKING_LOGS (pytest-django restores both)."""
    settings.SEND_TRACKING_EVENT_EMITTED_SIGNAL = True
    settings.EVENT_BUS_TRACKING_LOGS = [LISTED]
    return settings


@pytest.fixture
def published() -> Iterator[list[TrackingLogData]]:
    """The tracking logs sent on TRACKING_EVENT_EMITTED in this process (not from the bus)."""
    logs: list[TrackingLogData] = []

    def listen(sender: Any, signal: Any, **kwargs: Any) -> None:
        if not kwargs["from_event_bus"]:
            logs.append(kwargs["tracking_log"])

    TRACKING_EVENT_EMITTED.connect(listen, weak=False)
    try:
        yield logs
    finally:
        TRACKING_EVENT_EMITTED.disconnect(listen)


def event(name: str = LISTED, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "timestamp": WHEN,
        "data": {"answer": 42},
        "context": {"user_id": 7, "course_id": "course-v1:Org+C+R"},
    }
    return {**base, **overrides}


def from_bus(log: TrackingLogData) -> None:
    """Send `log` as the event bus consumer does after reading it from the broker."""
    metadata = EventsMetadata(event_type=TRACKING_EVENT_EMITTED.event_type, minorversion=0)
    TRACKING_EVENT_EMITTED.send_event_with_custom_metadata(metadata, tracking_log=log)


# -- the toggle --------------------------------------------------------------------


def test_the_toggle_is_a_setting_toggle_off_by_default(settings: Any) -> None:
    from edx_toggles.toggles import SettingToggle

    toggle = config.SEND_TRACKING_EVENT_EMITTED_SIGNAL
    assert isinstance(toggle, SettingToggle)
    assert toggle.name == "SEND_TRACKING_EVENT_EMITTED_SIGNAL"
    assert toggle.default is False
    assert toggle.module_name == "eventtracking.config"
    assert config.SEND_TRACKING_EVENT_EMITTED_SIGNAL is toggle  # built once
    del settings.SEND_TRACKING_EVENT_EMITTED_SIGNAL
    assert not toggle.is_enabled()
    settings.SEND_TRACKING_EVENT_EMITTED_SIGNAL = True
    assert toggle.is_enabled()


def test_the_backend_reads_the_same_toggle() -> None:
    from eventtracking.backends import event_bus

    assert event_bus.SEND_TRACKING_EVENT_EMITTED_SIGNAL is config.SEND_TRACKING_EVENT_EMITTED_SIGNAL


def test_config_still_has_no_other_unknown_attributes() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NOT_A_TOGGLE'"):
        _ = config.NOT_A_TOGGLE


def run_without(blocked: list[str], script: str) -> list[str]:
    """Run `script` in a new interpreter where importing any of `blocked` fails."""
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    done = subprocess.run(
        [sys.executable, "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_without_the_openedx_extra_config_imports_and_the_toggle_names_the_extra() -> None:
    script = (
        "from eventtracking.exceptions import MissingExtraError\n"
        "import eventtracking.config as config\n"
        "print(config.build_backends({}))\n"
        "for attempt in ('toggle', 'toggle'):\n"  # twice: a failure is not cached
        "    try:\n"
        "        config.SEND_TRACKING_EVENT_EMITTED_SIGNAL\n"
        "    except MissingExtraError as exc:\n"
        "        print(exc)\n"
    )
    out = run_without(["edx_toggles", "django"], script)
    assert out[0] == "{}"
    assert (
        out[1:]
        == ["edx_toggles is not installed; install it with: pip install 'event-tracking[openedx]'"]
        * 2
    )


@pytest.mark.parametrize("module", ["eventtracking.backends.event_bus", "eventtracking.handlers"])
@pytest.mark.parametrize("missing", ["openedx_events", "edx_toggles", "django"])
def test_without_the_openedx_extra_the_modules_name_it(module: str, missing: str) -> None:
    script = (
        "from eventtracking.exceptions import MissingExtraError\n"
        "try:\n"
        f"    import {module}\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
        "    print(isinstance(exc.__cause__, ImportError))\n"
    )
    out = run_without([missing], script)
    assert len(out) == 2, out
    # The package found missing is named: the top-level module, not a submodule.
    assert (
        out[0]
        == f"{missing} is not installed; install it with: pip install 'event-tracking[openedx]'"
    )
    assert out[1] == "True"  # raised from the ImportError it replaces


START_DJANGO = (
    "import django\n"
    "from django.conf import settings\n"
    "settings.configure(INSTALLED_APPS=['eventtracking.django'], EVENT_TRACKING_ENABLED=True)\n"
    "django.setup()\n"
    "print('eventtracking.handlers' in sys.modules)\n"
)


def test_the_django_app_connects_the_handler_at_start_up() -> None:
    assert run_without([], START_DJANGO) == ["True"]


@pytest.mark.parametrize("missing", ["openedx_events", "edx_toggles"])
def test_the_django_app_starts_without_the_openedx_extra(missing: str) -> None:
    assert run_without([missing], START_DJANGO) == ["False"]


# -- EventBusRoutingBackend.send: what goes onto the bus ---------------------------


def test_nothing_is_published_while_the_toggle_is_off(
    settings: Any, published: list[TrackingLogData]
) -> None:
    settings.EVENT_BUS_TRACKING_LOGS = [LISTED]
    settings.SEND_TRACKING_EVENT_EMITTED_SIGNAL = False
    EventBusRoutingBackend().send(event())
    del settings.SEND_TRACKING_EVENT_EMITTED_SIGNAL  # the default is off too
    EventBusRoutingBackend().send(event())
    assert published == []


def test_only_listed_names_are_published(
    switched_on: Any, published: list[TrackingLogData]
) -> None:
    backend = EventBusRoutingBackend()
    backend.send(event("edx.bus.other"))
    assert published == []
    del switched_on.EVENT_BUS_TRACKING_LOGS  # no list at all: nothing is listed
    backend.send(event())
    assert published == []


def test_a_listed_event_is_published_once_as_json_text(
    switched_on: Any, published: list[TrackingLogData], caplog: pytest.LogCaptureFixture
) -> None:
    data = {"text": "héllo", "when": WHEN, "day": date(2024, 5, 17), "items": [1, 2.5, None]}
    context = {"user_id": 7, "path": "/courses/x"}
    with caplog.at_level(logging.INFO, logger="eventtracking.backends.event_bus"):
        EventBusRoutingBackend().send(event(data=data, context=context))

    assert len(published) == 1
    log = published[0]
    assert log.name == LISTED
    assert log.timestamp == WHEN
    # json.dumps's defaults: ", " and ": " separators, non-ASCII escaped, dates in ISO form.
    assert log.data == (
        '{"text": "h\\u00e9llo", "when": "2024-05-17T08:30:15.250000+00:00", '
        '"day": "2024-05-17", "items": [1, 2.5, null]}'
    )
    assert log.data == json.dumps(data, cls=DateTimeJSONEncoder)
    assert log.context == '{"user_id": 7, "path": "/courses/x"}'
    assert caplog.messages == [f"Tracking log {LISTED} emitted to the event bus."]


def test_missing_data_and_context_travel_as_json_null(
    switched_on: Any, published: list[TrackingLogData]
) -> None:
    EventBusRoutingBackend().send({"name": LISTED, "timestamp": WHEN})
    assert (published[0].data, published[0].context) == ("null", "null")


def test_a_text_timestamp_is_read_back_into_an_aware_datetime(
    switched_on: Any, published: list[TrackingLogData]
) -> None:
    backend = EventBusRoutingBackend()
    backend.send(event(timestamp="2020-01-01T12:12:12.000000+00:00"))
    backend.send(event(timestamp="2024-05-17T10:30:15.250000+02:00"))
    assert [log.timestamp for log in published] == [
        datetime(2020, 1, 1, 12, 12, 12, tzinfo=UTC),
        WHEN,
    ]
    assert published[1].timestamp.utcoffset().total_seconds() == 7200


def test_a_timestamp_in_another_text_form_is_refused(
    switched_on: Any, published: list[TrackingLogData]
) -> None:
    with pytest.raises(ValueError):
        EventBusRoutingBackend().send(event(timestamp="2020-01-01T12:12:12Z"))
    assert published == []


def test_send_publishes_and_does_not_deliver_to_the_nested_backends(
    switched_on: Any, published: list[TrackingLogData]
) -> None:
    nested = InMemoryBackend()
    dropped: list[Any] = []

    def processor(e: Any) -> Any:
        dropped.append(e)
        raise EventEmissionExit

    backend = EventBusRoutingBackend(processors=[processor], backends={"nested": nested})
    backend.send(event())
    # Processors and nested backends belong to the consumer side of the bus.
    assert len(published) == 1
    assert nested.events == [] and dropped == []


def test_send_batch_publishes_each_event(
    switched_on: Any, published: list[TrackingLogData]
) -> None:
    nested = InMemoryBackend()
    backend = EventBusRoutingBackend(backends={"nested": nested})
    backend.send_batch([event(data={"n": 1}), event("edx.bus.other"), event(data={"n": 2})])
    assert [log.data for log in published] == ['{"n": 1}', '{"n": 2}']
    assert nested.events == []


def test_a_tracker_emit_publishes_the_event_it_built(
    switched_on: Any, published: list[TrackingLogData]
) -> None:
    tracker = Tracker({"event_bus": EventBusRoutingBackend(), "local": InMemoryBackend()})
    with tracker.context("request", {"user_id": 99}):
        tracker.emit(LISTED, {"page": 3})
    tracker.emit("edx.bus.other", {})
    local = tracker.get_backend("local").events
    assert len(published) == 1 and len(local) == 2
    log = published[0]
    assert log.name == LISTED
    assert log.timestamp == local[0]["timestamp"]
    assert json.loads(log.data) == {"page": 3}
    assert json.loads(log.context) == local[0]["context"]
    assert json.loads(log.context)["user_id"] == 99


# -- construction -------------------------------------------------------------------


def test_arguments_keep_the_original_order() -> None:
    processor = NameWhitelistProcessor(whitelist=[LISTED])
    nested = InMemoryBackend()
    backend = EventBusRoutingBackend([processor], {"nested": nested}, "bus")
    assert backend.processors == [processor]
    assert backend.backends == {"nested": nested}
    assert backend.backend_name == "bus"
    assert EventBusRoutingBackend().backend_name == ""


def test_backend_name_must_be_text() -> None:
    with pytest.raises(TypeError, match="backend_name must be a str"):
        EventBusRoutingBackend(backend_name=3)  # type: ignore[arg-type]


def test_built_from_an_open_edx_settings_tree() -> None:
    backend = instantiate(
        {
            "ENGINE": "eventtracking.backends.event_bus.EventBusRoutingBackend",
            "OPTIONS": {
                "backend_name": "event_bus",
                "processors": [
                    {
                        "ENGINE": "eventtracking.processors.whitelist.NameWhitelistProcessor",
                        "OPTIONS": {"whitelist": [LISTED]},
                    }
                ],
                "backends": {"memory": {"ENGINE": "eventtracking.testing.InMemoryBackend"}},
            },
        },
        "backends.event_bus",
    )
    assert isinstance(backend, EventBusRoutingBackend)
    assert backend.backend_name == "event_bus"
    assert isinstance(backend.processors[0], NameWhitelistProcessor)
    assert isinstance(backend.backends["memory"], InMemoryBackend)


# -- eventtracking.handlers: what comes off the bus ---------------------------------


def consumer_tracker(**backends: Any) -> Tracker:
    tracker = Tracker(backends)
    register_tracker(tracker)
    return tracker


def log_of(**overrides: Any) -> TrackingLogData:
    fields: dict[str, Any] = {
        "name": LISTED,
        "timestamp": WHEN,
        "data": '{"answer": 42, "text": "h\\u00e9llo"}',
        "context": '{"user_id": 7}',
    }
    return TrackingLogData(**{**fields, **overrides})


def test_an_event_from_the_bus_reaches_the_nested_backends() -> None:
    nested = InMemoryBackend()
    outside = InMemoryBackend()
    consumer_tracker(bus=EventBusRoutingBackend(backends={"nested": nested}), local=outside)
    from_bus(log_of())
    assert nested.events == [
        {
            "name": LISTED,
            "timestamp": WHEN,
            "data": {"answer": 42, "text": "héllo"},
            "context": {"user_id": 7},
        }
    ]
    assert outside.events == []  # only EventBusRoutingBackends take events from the bus


def test_the_signal_sent_in_the_emitting_process_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nested = InMemoryBackend()
    consumer_tracker(bus=EventBusRoutingBackend(backends={"nested": nested}))
    with caplog.at_level(logging.DEBUG, logger="eventtracking.handlers"):
        TRACKING_EVENT_EMITTED.send_event(tracking_log=log_of())
    assert nested.events == []
    assert caplog.messages == ["Event received from a non-event bus backend, skipping..."]


def test_an_event_round_trips_through_the_signal(switched_on: Any) -> None:
    # The producer side publishes; the consumer side (here, the same process)
    # rebuilds the event from the published tracking log.
    captured: list[TrackingLogData] = []

    def relay(sender: Any, signal: Any, **kwargs: Any) -> None:
        if not kwargs["from_event_bus"]:
            captured.append(kwargs["tracking_log"])

    TRACKING_EVENT_EMITTED.connect(relay, weak=False)
    try:
        original = event(data={"nested": {"list": [1, "two", None]}, "flag": True})
        EventBusRoutingBackend().send(original)
    finally:
        TRACKING_EVENT_EMITTED.disconnect(relay)
    nested = InMemoryBackend()
    consumer_tracker(bus=EventBusRoutingBackend(backends={"nested": nested}))
    from_bus(captured[0])
    assert nested.events == [original]


def test_each_bus_backend_runs_its_own_processors(caplog: pytest.LogCaptureFixture) -> None:
    kept, dropped, renamed = InMemoryBackend(), InMemoryBackend(), InMemoryBackend()

    def rename(e: dict[str, Any]) -> dict[str, Any]:
        e["name"] = "renamed"
        e["data"]["added"] = True
        return e

    consumer_tracker(
        a=EventBusRoutingBackend(
            processors=[NameWhitelistProcessor(whitelist=["other"])], backends={"d": dropped}
        ),
        b=EventBusRoutingBackend(processors=[rename], backends={"r": renamed}),
        c=EventBusRoutingBackend(backends={"k": kept}),
    )
    with caplog.at_level(logging.INFO, logger="eventtracking.handlers"):
        from_bus(log_of())
    assert dropped.events == []
    assert renamed.events[0]["name"] == "renamed" and renamed.events[0]["data"]["added"]
    # What b's processor changed is not seen by c, which comes after it.
    assert kept.events[0]["name"] == LISTED and "added" not in kept.events[0]["data"]
    assert caplog.messages == [
        f"[EventEmissionExit] skipping event {LISTED}",
        f'Successfully processed event "{LISTED}"',
        f'Successfully processed event "{LISTED}"',
    ]


def test_a_failing_nested_backend_does_not_stop_the_others() -> None:
    class Broken:
        def send(self, e: Any) -> None:
            raise RuntimeError("down")

    nested = InMemoryBackend()
    consumer_tracker(bus=EventBusRoutingBackend(backends={"a_broken": Broken(), "b": nested}))
    from_bus(log_of())
    assert len(nested.events) == 1


def test_the_default_tracker_is_read_for_every_event() -> None:
    first, second = InMemoryBackend(), InMemoryBackend()
    consumer_tracker(bus=EventBusRoutingBackend(backends={"n": first}))
    from_bus(log_of())
    consumer_tracker(bus=EventBusRoutingBackend(backends={"n": second}))
    from_bus(log_of())
    assert (len(first.events), len(second.events)) == (1, 1)
