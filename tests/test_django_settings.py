"""DjangoTracker from settings, the Open edX settings tree, system checks and autodiscovery."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from django.core import checks

import django_support
from django_support import install, memory
from eventtracking.backends.logger import LoggerBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.django import conf as django_conf
from eventtracking.django.checks import check_settings
from eventtracking.django.django_tracker import (
    DjangoTracker,
    install_tracker,
    override_default_tracker,
)
from eventtracking.exceptions import ImproperlyConfigured, ValidationError
from eventtracking.processors.whitelist import NameWhitelistProcessor
from eventtracking.tracker import DEFAULT_TRACKER_NAME, TRACKERS, get_tracker
from http_recorder import HTTPRecorder

OPENEDX_BACKENDS: dict[str, Any] = {
    "tracking_logs": {
        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
        "OPTIONS": {
            "backends": {
                "local": {
                    "ENGINE": "eventtracking.backends.logger.LoggerBackend",
                    "OPTIONS": {"name": "tracking", "max_event_size": 50000},
                }
            },
            "processors": [],
        },
    },
    "segmentio": {
        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
        "OPTIONS": {
            "backends": {
                "segment": {
                    # our batching client, in Open edX's tree (the stock branch, whose
                    # SegmentBackend takes no options, is covered by test_openedx_tree)
                    "ENGINE": "eventtracking.backends.segment_http.SegmentHTTPBackend",
                    "OPTIONS": {"write_key": "test-key", "endpoint": "http://127.0.0.1:9/v1/batch"},
                }
            },
            "processors": [
                {
                    "ENGINE": "eventtracking.processors.whitelist.NameWhitelistProcessor",
                    "OPTIONS": {"whitelist": ["edx.course.enrollment.activated"]},
                }
            ],
        },
    },
}


def test_the_openedx_settings_tree_builds_unchanged(settings: Any) -> None:
    tracker = install(settings, EVENT_TRACKING_BACKENDS=OPENEDX_BACKENDS)
    assert get_tracker() is tracker
    assert isinstance(tracker, DjangoTracker)
    assert list(tracker.backends) == ["segmentio", "tracking_logs"]
    logs = tracker.get_backend("tracking_logs")
    assert isinstance(logs, RoutingBackend)
    local = logs.backends["local"]
    assert isinstance(local, LoggerBackend)
    segment_branch = tracker.get_backend("segmentio")
    assert isinstance(segment_branch.processors[0], NameWhitelistProcessor)
    tracker.close()


def test_openedx_tree_logs_every_event_and_sends_only_whitelisted_ones_to_segment(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with HTTPRecorder() as segment:
        backends = json.loads(json.dumps(OPENEDX_BACKENDS))
        options = backends["segmentio"]["OPTIONS"]["backends"]["segment"]["OPTIONS"]
        options["endpoint"] = segment.url
        tracker = install(settings, EVENT_TRACKING_BACKENDS=backends)
        caplog.set_level(logging.INFO, logger="tracking")
        with tracker.context("request", {"user_id": 7}):
            tracker.emit("edx.course.enrollment.activated", {"course_id": "course-v1:a+b+c"})
            tracker.emit("edx.video.played", {"video_id": "v1"})
        tracker.close()
        logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tracking"]
        assert [e["name"] for e in logged] == [
            "edx.course.enrollment.activated",
            "edx.video.played",
        ]
        assert logged[0]["context"]["user_id"] == 7
        sent = [m["event"] for request in segment.requests for m in request.json()["batch"]]
        assert sent == ["edx.course.enrollment.activated"]


def test_processors_validation_and_catalogue_come_from_settings(
    settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "events.toml").write_text(
        '[events."client.doc"]\ndescription = "Documented."\n'
        '[events."client.doc".fields]\nx = { description = "X.", type = "integer" }\n'
        '[events."noisy.thing"]\ndescription = "Filtered out."\n'
    )
    tracker = install(
        settings,
        BASE_DIR=tmp_path,
        EVENT_TRACKING_CATALOGUE=["events.toml"],
        EVENT_TRACKING_VALIDATION="strict",
        EVENT_TRACKING_PROCESSORS=[
            {
                "ENGINE": "eventtracking.processors.regex_filter.RegexFilter",
                "OPTIONS": {"filter_type": "blocklist", "regular_expressions": [r"^noisy\."]},
            }
        ],
    )
    assert tracker.validation == "strict"
    assert tracker.registry.current("client.doc") is not None
    tracker.emit("client.doc", {"x": 1})
    tracker.emit("noisy.thing", {})
    with pytest.raises(ValidationError, match=r"client\.doc"):
        tracker.emit("client.doc", {"x": "one"})
    assert memory(tracker).names() == ["client.doc"]


def test_the_open_edx_helper_names_exist(settings: Any) -> None:
    settings.EVENT_TRACKING_ENABLED = False
    TRACKERS.pop(DEFAULT_TRACKER_NAME, None)
    override_default_tracker()
    assert DEFAULT_TRACKER_NAME not in TRACKERS  # switched off: nothing installed
    settings.EVENT_TRACKING_ENABLED = True
    assert override_default_tracker() is None  # as Open edX's
    tracker = get_tracker()
    assert isinstance(tracker, DjangoTracker)
    built = tracker.instantiate_from_dict(
        {"ENGINE": "eventtracking.backends.logger.LoggerBackend", "OPTIONS": {"name": "x"}}
    )
    assert isinstance(built, LoggerBackend)


BROKEN = {
    "tracking_logs": {
        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
        "OPTIONS": {
            "backends": {
                "local": {"ENGINE": "eventtracking.backends.nowhere.LoggerBackend"},
            }
        },
    }
}


def test_a_bad_tree_is_an_error_naming_the_setting_path(settings: Any) -> None:
    settings.EVENT_TRACKING_BACKENDS = BROKEN
    with pytest.raises(ImproperlyConfigured) as caught:
        DjangoTracker()
    assert str(caught.value).startswith(
        "EVENT_TRACKING_BACKENDS.tracking_logs.OPTIONS.backends.local.ENGINE: cannot import "
        "'eventtracking.backends.nowhere.LoggerBackend'"
    )


def test_a_tracker_that_cannot_be_built_stops_start_up_with_a_value_error(settings: Any) -> None:
    settings.EVENT_TRACKING_BACKENDS = BROKEN
    with pytest.raises(
        ValueError
    ) as caught:  # what Open edX raises; ours is also ImproperlyConfigured
        install_tracker()
    assert isinstance(caught.value, ImproperlyConfigured)
    assert str(caught.value).startswith(
        "EVENT_TRACKING_BACKENDS.tracking_logs.OPTIONS.backends.local.ENGINE: cannot import"
    )
    assert not [m for m in checks.run_checks(tags=["eventtracking"]) if m.is_serious()]


@pytest.mark.parametrize(
    ("name", "value", "start"),
    [
        ("EVENT_TRACKING_ENABLED", "yes", "EVENT_TRACKING_ENABLED: must be True or False"),
        ("EVENT_TRACKING_VALIDATION", "loud", "EVENT_TRACKING_VALIDATION: must be one of"),
        ("EVENT_TRACKING_TRUSTED_PROXY_COUNT", -1, "EVENT_TRACKING_TRUSTED_PROXY_COUNT: must"),
        ("EVENT_TRACKING_CONTEXT_PROVIDERS", ["no.such.provider"], "EVENT_TRACKING_CONTEXT_"),
        ("TRACKING_IGNORE_URL_PATTERNS", ["("], "TRACKING_IGNORE_URL_PATTERNS[0]: '(' is not"),
        ("EVENT_TRACKING_ON_COMMIT", "edx.*", "EVENT_TRACKING_ON_COMMIT: must be a list"),
        ("EVENT_TRACKING_BROWSER", {"MAX_EVENTS": 0}, "EVENT_TRACKING_BROWSER.MAX_EVENTS: must"),
        ("EVENT_TRACKING_BROWSER", {"MAX_EVENT": 5}, "EVENT_TRACKING_BROWSER: unknown key(s)"),
        (
            "EVENT_TRACKING_BROWSER",
            {"RATE_LIMIT": {"session": "lots"}},
            "EVENT_TRACKING_BROWSER.RATE_LIMIT.session: write a rate as",
        ),
        ("EVENT_TRACKING_BROWSER", {"NAME_PATTERNS": ["["]}, "EVENT_TRACKING_BROWSER.NAME_PAT"),
    ],
)
def test_bad_settings_are_check_errors_naming_the_setting(
    settings: Any, name: str, value: Any, start: str
) -> None:
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured) as caught:
        django_conf.get_conf()
    assert str(caught.value).startswith(start)
    messages = check_settings()
    assert [m.id for m in messages] == ["eventtracking_django.E001"]
    assert messages[0].msg.startswith(start)


def test_rates_are_read_as_count_per_period(settings: Any) -> None:
    settings.EVENT_TRACKING_BROWSER = {"RATE_LIMIT": {"session": "100/5m", "ip": None}}
    browser = django_conf.get_conf().browser
    assert browser.session_rate == django_conf.Rate(100, 100 / 300)
    assert browser.ip_rate is None


def test_checks_warn_about_missing_backends_and_middleware_order(settings: Any) -> None:
    install(settings, EVENT_TRACKING_BACKENDS={})
    settings.MIDDLEWARE = [
        "eventtracking.django.middleware.TrackMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    ids = [m.id for m in check_settings()]
    assert ids == [
        "eventtracking_django.W001",
        "eventtracking_django.W003",
        "eventtracking_django.W003",
    ]
    settings.MIDDLEWARE = []  # Open edX has its own middleware: nothing to report
    assert [m.id for m in check_settings()] == ["eventtracking_django.W001"]
    settings.EVENT_TRACKING_ENABLED = False
    assert check_settings() == []


def test_the_default_settings_pass_the_checks(settings: Any) -> None:
    install(settings)
    assert check_settings() == []


def test_autodiscovery_registered_the_test_apps_events_on_the_django_tracker() -> None:
    tracker = django_support.SETUP_TRACKER
    assert isinstance(tracker, DjangoTracker)
    version = tracker.registry.current("shop.order.placed")
    assert version is not None
    assert version.source.startswith("django_testapp.events:")
