"""The stock Open edX tracker tree, built from settings by DjangoTracker, routes as 4.0.2 does.

The tree (tests/upstream/openedx_standins.py) is what an LMS with
event-routing-backends configures: `event_bus`, `event_transformer`,
`segmentio` and `tracking_logs`. Each branch's destination is replaced at the
module global the original's own tests patch (the `analytics` module, the
Celery task, the openedx-events signal, the `tracking` logger), and each test
states what the original 4.0.2 does with the event. The last test runs the
others with the original (build/upstream-venv), to keep them honest.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command

import django_support  # noqa: F401  (configures Django)
from eventtracking import tracker
from eventtracking.backends.async_routing import AsyncRoutingBackend
from eventtracking.backends.event_bus import EventBusRoutingBackend
from eventtracking.backends.logger import LoggerBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.backends.segment import SegmentBackend
from eventtracking.django.django_tracker import DjangoTracker
from eventtracking.processors.whitelist import NameWhitelistProcessor
from upstream import openedx_standins as standins
from upstream import upstream_venv
from upstream.openedx_standins import COURSE, REQUEST_CONTEXT

MODULE = "upstream.openedx_standins"
ALLOWED = ["edx.course.enrollment.activated", "edx.video.played"]
OTHER = "edx.ui.lms.link_clicked"  # on no whitelist
NOW = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
BRANCHES = ["event_bus", "event_transformer", "segmentio", "tracking_logs"]


@dataclass
class Sinks:
    """What reached each branch's destination, in arrival order (deep copies at arrival)."""

    order: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    segment: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    queued: list[tuple[Any, ...]] = field(default_factory=list)
    bus: list[Any] = field(default_factory=list)
    analytics: Any = None
    send_event: Any = None


class _Lines(logging.Handler):
    def __init__(self, sinks: Sinks) -> None:
        super().__init__(logging.INFO)
        self.sinks = sinks

    def emit(self, record: logging.LogRecord) -> None:
        self.sinks.order.append("tracking_logs")
        self.sinks.log_lines.append(record.getMessage())


@pytest.fixture
def edx(settings: Any) -> Iterator[DjangoTracker]:
    """The Open edX tree as the default tracker, built by DjangoTracker from settings."""
    settings.EVENT_TRACKING_ENABLED = True
    # Stock edx-platform sets none of our own settings (the test settings opt in to some).
    for ours in ("EVENT_TRACKING_ENVELOPE", "EVENT_TRACKING_AUTODISCOVER"):
        if hasattr(settings, ours):
            delattr(settings, ours)
    settings.EVENT_TRACKING_BACKENDS = standins.openedx_backends(MODULE, ALLOWED)
    settings.EVENT_TRACKING_PROCESSORS = []
    settings.EVENT_BUS_TRACKING_LOGS = ALLOWED
    settings.SEND_TRACKING_EVENT_EMITTED_SIGNAL = True
    standins.RECORDED.clear()
    built = DjangoTracker()
    tracker.register_tracker(built)
    yield built
    close = getattr(built, "close", None)  # ours has one; the original has none
    if close is not None:
        close()


@pytest.fixture
def frozen() -> Iterator[None]:
    """Emit's clock fixed at NOW, the way the original's own tests fix it."""
    with mock.patch("eventtracking.tracker.datetime") as clock:
        clock.now.return_value = NOW
        yield


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    """Every branch's destination replaced by a recorder."""
    seen = Sinks()

    def track(*args: Any, **kwargs: Any) -> None:
        seen.order.append("segmentio")
        seen.segment.append(copy.deepcopy((args, kwargs)))

    def delay(*args: Any) -> None:
        seen.order.append("event_transformer")
        seen.queued.append(copy.deepcopy(args))

    def bus(**kwargs: Any) -> None:
        seen.order.append("event_bus")
        seen.bus.append(kwargs["tracking_log"])

    handler = _Lines(seen)
    log = logging.getLogger("tracking")
    saved_level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        with (
            mock.patch("eventtracking.backends.segment.analytics") as analytics,
            mock.patch("eventtracking.backends.async_routing.send_event") as send_event,
            mock.patch(
                "eventtracking.backends.event_bus.TRACKING_EVENT_EMITTED.send_event",
                side_effect=bus,
            ),
        ):
            analytics.track.side_effect = track
            send_event.delay.side_effect = delay
            seen.analytics, seen.send_event = analytics, send_event
            yield seen
    finally:
        log.removeHandler(handler)
        log.setLevel(saved_level)


def envelope(name: str, data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "timestamp": NOW, "data": data, "context": context}


def test_the_tree_builds_from_settings(edx: DjangoTracker) -> None:
    assert list(edx.backends) == BRANCHES  # sorted by name
    logs = edx.get_backend("tracking_logs")
    assert type(logs) is RoutingBackend
    assert list(logs.backends) == ["local"]
    assert isinstance(logs.backends["local"], LoggerBackend)
    assert [type(p) for p in logs.processors] == [
        standins.Stamper,
        standins.HalfDoneCrasher,
        standins.LegacyShaper,
        standins.NameDropper,
    ]
    segmentio = edx.get_backend("segmentio")
    assert type(segmentio) is RoutingBackend
    assert isinstance(segmentio.backends["segment"], SegmentBackend)
    assert isinstance(segmentio.processors[0], NameWhitelistProcessor)
    transformer = edx.get_backend("event_transformer")
    assert isinstance(transformer, AsyncRoutingBackend)
    assert isinstance(transformer, RoutingBackend)
    assert transformer.backend_name == "event_transformer"
    assert isinstance(transformer.processors[0], NameWhitelistProcessor)
    assert list(transformer.backends) == ["caliper", "xapi"]
    for nested in transformer.backends.values():
        assert type(nested) is RoutingBackend
        assert isinstance(nested.backends["recorder"], standins.RecordingBackend)
    assert isinstance(edx.get_backend("event_bus"), EventBusRoutingBackend)
    assert isinstance(edx.get_backend("event_bus"), RoutingBackend)


def test_every_branch_gets_the_event_in_sorted_name_order(edx: DjangoTracker, sinks: Sinks) -> None:
    with edx.context("edx.request", REQUEST_CONTEXT):
        edx.emit("edx.course.enrollment.activated", {"course_id": COURSE})
    assert sinks.order == BRANCHES


def test_tracking_logs_writes_the_originals_json_line(
    edx: DjangoTracker, sinks: Sinks, frozen: None
) -> None:
    with edx.context("edx.request", REQUEST_CONTEXT):
        edx.emit("edx.video.played", {"id": "v1", "items": []})
        edx.emit(OTHER, {"href": "/dashboard"})  # no whitelist on this branch
        edx.emit(standins.DROPPED_NAME, {"never": "logged"})
    expected = [
        {
            "name": name,
            "timestamp": "2024-02-29T23:59:58.123456+00:00",
            "data": data,
            "context": {**REQUEST_CONTEXT, "processed_by": "tracking_logs"},
            "event_type": name,
            "event_source": "server",
        }
        for name, data in [
            ("edx.video.played", {"id": "v1", "items": ["tracking_logs"]}),
            (OTHER, {"href": "/dashboard"}),
        ]
    ]
    assert sinks.log_lines == [json.dumps(event) for event in expected]


def test_segment_tracks_only_whitelisted_events_of_a_known_user(
    edx: DjangoTracker, sinks: Sinks, frozen: None
) -> None:
    with edx.context("edx.request", REQUEST_CONTEXT):
        edx.emit("edx.course.enrollment.activated", {"course_id": COURSE, "items": []})
        edx.emit(OTHER, {"href": "/dashboard"})
    edx.emit("edx.video.played", {"id": "v1"})  # no user_id in the context: not sent
    processed = {
        **envelope(
            "edx.course.enrollment.activated",
            {"course_id": COURSE, "items": ["segmentio"]},
            {**REQUEST_CONTEXT, "segment_only": "segmentio"},
        ),
        "label": COURSE,
        "nonInteraction": 1,
    }
    segment_context = {
        "Google Analytics": {"clientId": REQUEST_CONTEXT["client_id"]},
        "ip": REQUEST_CONTEXT["ip"],
        "userAgent": REQUEST_CONTEXT["agent"],
        "page": {
            "path": REQUEST_CONTEXT["path"],
            "referrer": REQUEST_CONTEXT["referer"],
            "url": f"https://{REQUEST_CONTEXT['host']}{REQUEST_CONTEXT['path']}",
        },
    }
    assert sinks.segment == [
        ((10938, "edx.course.enrollment.activated", processed), {"context": segment_context})
    ]


def test_async_branch_queues_one_task_per_whitelisted_event(
    edx: DjangoTracker, sinks: Sinks, frozen: None
) -> None:
    with edx.context("edx.request", REQUEST_CONTEXT):
        edx.emit("edx.video.played", {"id": "v1", "items": []})
        edx.emit(OTHER, {"href": "/dashboard"})
    assert sinks.queued == [
        (
            "event_transformer",
            envelope("edx.video.played", {"id": "v1", "items": []}, dict(REQUEST_CONTEXT)),
        )
    ]


def test_the_queued_task_runs_the_nested_routers(edx: DjangoTracker, sinks: Sinks) -> None:
    from eventtracking.tasks import send_event as task

    sinks.send_event.delay.side_effect = lambda name, event: task.apply(args=(name, event)).get()
    edx.emit("edx.video.played", {"id": "v1", "items": []})
    (caliper,) = standins.RECORDED["caliper"]
    (xapi,) = standins.RECORDED["xapi"]
    assert caliper["data"] == {"id": "v1", "items": ["caliper"]}
    assert caliper["context"]["caliper_only"] == "caliper"
    assert xapi["data"] == {"id": "v1", "items": []}  # the earlier sibling's change is not seen
    assert "caliper_only" not in xapi["context"]


def test_event_bus_sends_tracking_event_emitted_for_listed_names(
    edx: DjangoTracker, sinks: Sinks, frozen: None, settings: Any
) -> None:
    from openedx_events.analytics.data import TrackingLogData

    data = {"course_id": COURSE, "when": datetime(2024, 1, 1, 12, 0)}
    with edx.context("edx.request", REQUEST_CONTEXT):
        edx.emit("edx.course.enrollment.activated", data)
        edx.emit(OTHER, {"href": "/dashboard"})
        settings.SEND_TRACKING_EVENT_EMITTED_SIGNAL = False
        edx.emit("edx.course.enrollment.activated", data)
    assert sinks.bus == [
        TrackingLogData(
            name="edx.course.enrollment.activated",
            timestamp=NOW,
            data=json.dumps({"course_id": COURSE, "when": "2024-01-01T12:00:00+00:00"}),
            context=json.dumps(REQUEST_CONTEXT),
        )
    ]


def test_no_branch_sees_a_siblings_change_and_the_caller_sees_none(
    edx: DjangoTracker, sinks: Sinks
) -> None:
    data: dict[str, Any] = {"course_id": COURSE, "items": []}
    context = dict(REQUEST_CONTEXT)
    with edx.context("edx.request", context):
        edx.emit("edx.course.enrollment.activated", data)
    assert data == {"course_id": COURSE, "items": []}
    assert context == REQUEST_CONTEXT
    assert edx.resolve_context() == {}
    ((_, queued),) = sinks.queued
    assert queued["data"]["items"] == []
    assert set(queued["context"]) == set(REQUEST_CONTEXT)
    ((args, _),) = sinks.segment
    assert args[2]["data"]["items"] == ["segmentio"]
    assert "processed_by" not in args[2]["context"]
    (line,) = sinks.log_lines
    logged = json.loads(line)
    assert logged["data"]["items"] == ["tracking_logs"]
    assert "segment_only" not in logged["context"]
    assert "label" not in logged
    (message,) = sinks.bus
    assert json.loads(message.data)["items"] == []


def test_system_checks_pass_without_warnings(edx: DjangoTracker) -> None:
    out = io.StringIO()
    call_command("check", fail_level="WARNING", stdout=out, stderr=out)
    assert "System check identified no issues" in out.getvalue()


# Run by the test below in place of django_support, which needs ours.
ORIGINAL_DJANGO_SUPPORT = '''"""Django for the original 4.0.2 (written by test_openedx_tree.py)."""
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="openedx-tree",
    USE_TZ=True,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "eventtracking.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()
'''


def test_the_tests_above_hold_for_the_original_too(tmp_path: Path) -> None:
    """Runs this module's other tests with the original 4.0.2, so they cannot drift to ours."""
    from conftest import service_unavailable  # here: the copy run below has no conftest

    try:
        original_python = upstream_venv.ensure()
    except upstream_venv.UpstreamVenvError as exc:
        service_unavailable(f"the package registry ({upstream_venv.ORIGINAL})", str(exc))
    here = Path(__file__).parent
    shutil.copy(__file__, tmp_path / "test_openedx_tree.py")
    shutil.copytree(
        here / "upstream", tmp_path / "upstream", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "django_support.py").write_text(ORIGINAL_DJANGO_SUPPORT)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run(
        [
            *(str(original_python), "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--timeout", "30", "-k", "not hold_for_the_original", "test_openedx_tree.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
