"""SegmentHTTPBackend: the batch API format, the Open edX field mapping and skipped events."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from eventtracking import Tracker, diagnostics, tracker_from_config
from eventtracking.backends.segment_http import (
    DEFAULT_ENDPOINT,
    MAX_MESSAGE_BYTES,
    SegmentHTTPBackend,
)
from eventtracking.exceptions import RetryableError, TerminalError
from http_recorder import HTTPRecorder

WRITE_KEY = "wk_test_123"


@pytest.fixture
def server() -> Iterator[HTTPRecorder]:
    with HTTPRecorder() as recorder:
        yield recorder


@pytest.fixture
def segment(server: HTTPRecorder) -> Iterator[SegmentHTTPBackend]:
    backend = SegmentHTTPBackend(WRITE_KEY, endpoint=server.url + "/v1/batch")
    yield backend
    backend.close()


FULL_CONTEXT = {
    "user_id": 10938,
    "username": "ada",
    "session": "s-1",
    "ip": "203.0.113.9",
    "host": "lms.example.org",
    "agent": "Mozilla/5.0 (X11)",
    "path": "/courses/course-v1:X+Y+Z/about",
    "referer": "https://www.example.org/catalog",
    "accept_language": "en",
    "client_id": "GA1.2.345.678",
    "course_id": "course-v1:X+Y+Z",
    "org_id": "X",
}


def make_event(context: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "0190a000-0000-7000-8000-000000000001",
        "name": "edx.course.enrollment.activated",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "data": {"course_id": "course-v1:X+Y+Z", "mode": "audit"},
        "context": context,
        **extra,
    }


def test_batch_api_format_field_by_field(server: HTTPRecorder, segment: SegmentHTTPBackend) -> None:
    before = datetime.now(UTC)
    segment.send(make_event(FULL_CONTEXT))
    [request] = server.requests
    assert request.path == "/v1/batch"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-encoding"] == "gzip"
    key = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert request.headers["authorization"] == f"Basic {key}"
    body = request.json()
    assert set(body) == {"batch", "sentAt"}
    assert before <= datetime.fromisoformat(body["sentAt"]) <= datetime.now(UTC)
    [message] = body["batch"]
    assert set(message) == {
        "type",
        "userId",
        "event",
        "properties",
        "context",
        "timestamp",
        "messageId",
    }
    assert message["type"] == "track"
    assert message["userId"] == "10938"
    assert message["event"] == "edx.course.enrollment.activated"
    assert message["properties"] == {"course_id": "course-v1:X+Y+Z", "mode": "audit"}
    assert message["timestamp"] == "2026-01-02T03:04:05.678000+00:00"
    assert message["messageId"] == "0190a000-0000-7000-8000-000000000001"
    context = message["context"]
    assert context["ip"] == "203.0.113.9"
    assert context["userAgent"] == "Mozilla/5.0 (X11)"
    assert context["page"] == {
        "path": "/courses/course-v1:X+Y+Z/about",
        "referrer": "https://www.example.org/catalog",
        "url": "https://lms.example.org/courses/course-v1:X+Y+Z/about",
    }
    assert context["Google Analytics"] == {"clientId": "GA1.2.345.678"}
    assert context["library"]["name"] == "eventtracking"
    assert set(context) == {"ip", "userAgent", "page", "Google Analytics", "library"}


def test_context_page_is_the_url_when_given(segment: SegmentHTTPBackend) -> None:
    message = segment.message(make_event({"user_id": 1, "page": "https://x.org/p?q=1"}))
    assert message is not None
    assert message["context"]["page"] == {"url": "https://x.org/p?q=1"}
    message = segment.message(
        make_event({"user_id": 1, "host": "h.org", "path": "/a", "page": "https://x.org/p"})
    )
    assert message is not None
    assert message["context"]["page"] == {"path": "/a", "url": "https://x.org/p"}


def test_minimal_context_maps_only_what_exists(segment: SegmentHTTPBackend) -> None:
    message = segment.message(make_event({"user_id": "u-1", "path": "/only-path"}))
    assert message is not None
    assert message["userId"] == "u-1"
    assert message["context"] == {
        "library": message["context"]["library"],
        "page": {"path": "/only-path"},  # no host: no url
    }


def test_events_without_user_id_are_skipped_counted_and_warned_once(
    server: HTTPRecorder, segment: SegmentHTTPBackend, caplog: pytest.LogCaptureFixture
) -> None:
    anonymous = {k: v for k, v in FULL_CONTEXT.items() if k != "user_id"}
    with caplog.at_level(logging.WARNING, logger="eventtracking"):
        segment.send(make_event(anonymous))
        segment.send(make_event({"user_id": None}))
        segment.send_batch([make_event({}), make_event({"user_id": ""})])
    assert server.requests == []  # nothing to send, no request at all
    assert diagnostics.snapshot()["segment.skipped_no_user_id"] == 4
    warnings = [r for r in caplog.records if "user_id" in r.getMessage()]
    assert len(warnings) == 1
    assert "203.0.113.9" not in caplog.text  # never the payload


def test_a_mixed_batch_sends_only_the_events_with_a_user(
    server: HTTPRecorder, segment: SegmentHTTPBackend
) -> None:
    events = [
        make_event({"user_id": 1}, id="a"),
        make_event({}, id="b"),
        make_event({"user_id": 0}, id="c"),  # 0 is a user id, not a missing one
    ]
    segment.send_batch(events)
    [request] = server.requests
    assert [m["messageId"] for m in request.json()["batch"]] == ["a", "c"]
    assert [m["userId"] for m in request.json()["batch"]] == ["1", "0"]
    assert diagnostics.snapshot()["segment.skipped_no_user_id"] == 1


def test_from_a_tracker_with_contexts(server: HTTPRecorder, segment: SegmentHTTPBackend) -> None:
    tracker = Tracker({"segment": segment})
    with tracker.context("request", {"user_id": 5, "ip": "198.51.100.1", "agent": "curl"}):
        tracker.emit("edx.video.played", {"video_id": "v1"})
    tracker.emit("edx.video.played", {"video_id": "anonymous"})
    [request] = server.requests
    [message] = request.json()["batch"]
    assert message["userId"] == "5"
    assert message["properties"] == {"video_id": "v1"}
    assert message["context"]["ip"] == "198.51.100.1"
    assert message["context"]["userAgent"] == "curl"
    assert len(message["messageId"]) == 36


def test_properties_event_sends_the_whole_event_like_open_edx(server: HTTPRecorder) -> None:
    backend = SegmentHTTPBackend(WRITE_KEY, endpoint=server.url, properties="event")
    backend.send(make_event({"user_id": 1, "course_id": "c"}))
    [message] = server.requests[0].json()["batch"]
    assert message["properties"]["name"] == "edx.course.enrollment.activated"
    assert message["properties"]["data"] == {"course_id": "course-v1:X+Y+Z", "mode": "audit"}
    assert message["properties"]["context"] == {"user_id": 1, "course_id": "c"}


def test_events_without_id_get_a_stable_message_id(segment: SegmentHTTPBackend) -> None:
    event = make_event({"user_id": 1})
    del event["id"]
    first, again = segment.message(event), segment.message(dict(event))
    other = segment.message({**event, "data": {"mode": "verified"}})
    assert first is not None and again is not None and other is not None
    assert first["messageId"] == again["messageId"] != other["messageId"]


def test_oversize_messages_are_skipped_and_counted(
    server: HTTPRecorder, segment: SegmentHTTPBackend
) -> None:
    big = make_event({"user_id": 1}, data={"blob": "x" * MAX_MESSAGE_BYTES})
    segment.send_batch([big, make_event({"user_id": 2})])
    [request] = server.requests
    assert [m["userId"] for m in request.json()["batch"]] == ["2"]
    assert diagnostics.snapshot()["segment.oversize_dropped"] == 1


def test_batches_split_at_batch_size(server: HTTPRecorder) -> None:
    backend = SegmentHTTPBackend(WRITE_KEY, endpoint=server.url, batch_size=2)
    backend.send_batch([make_event({"user_id": i}, id=str(i)) for i in range(5)])
    assert [[m["messageId"] for m in r.json()["batch"]] for r in server.requests] == [
        ["0", "1"],
        ["2", "3"],
        ["4"],
    ]


def test_http_failures_use_the_shared_transport_rules(
    server: HTTPRecorder, segment: SegmentHTTPBackend
) -> None:
    server.reply(429, headers={"Retry-After": "2"})
    server.reply(500)
    server.reply(400)
    event = make_event({"user_id": 1})
    with pytest.raises(RetryableError) as info:
        segment.send(event)
    assert info.value.retry_after == 2.0
    with pytest.raises(RetryableError):
        segment.send(event)
    with pytest.raises(TerminalError, match="HTTP 400") as terminal:
        segment.send(event)
    assert WRITE_KEY not in str(terminal.value)


def test_write_key_from_the_environment_and_missing_key(
    server: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "from-env")
    backend = SegmentHTTPBackend(endpoint=server.url)
    backend.send(make_event({"user_id": 1}))
    key = base64.b64encode(b"from-env:").decode()
    assert server.requests[0].headers["authorization"] == f"Basic {key}"
    monkeypatch.delenv("SEGMENT_WRITE_KEY")
    with pytest.raises(ValueError, match="SEGMENT_WRITE_KEY"):
        SegmentHTTPBackend()


def test_defaults_and_bad_options() -> None:
    backend = SegmentHTTPBackend(WRITE_KEY)
    assert backend.transport.url == DEFAULT_ENDPOINT == "https://api.segment.io/v1/batch"
    with pytest.raises(ValueError, match="properties"):
        SegmentHTTPBackend(WRITE_KEY, properties="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        SegmentHTTPBackend(WRITE_KEY, batch_size=0)


def test_configured_like_open_edx(server: HTTPRecorder) -> None:
    tracker = tracker_from_config(
        {
            "backends": {
                "segmentio": {
                    "ENGINE": "eventtracking.backends.routing.RoutingBackend",
                    "OPTIONS": {
                        "backends": {
                            "segment": {
                                "ENGINE": "eventtracking.backends.segment_http.SegmentHTTPBackend",
                                "OPTIONS": {"write_key": WRITE_KEY, "endpoint": server.url},
                            }
                        },
                        "processors": [
                            {
                                "ENGINE": "eventtracking.processors.whitelist."
                                "NameWhitelistProcessor",
                                "OPTIONS": {"whitelist": ["edx.video.played"]},
                            }
                        ],
                    },
                }
            }
        }
    )
    with tracker.context("request", {"user_id": 9}):
        tracker.emit("edx.video.played", {"v": 1})
        tracker.emit("edx.other", {"v": 2})
    tracker.close()
    assert [m["event"] for r in server.requests for m in r.json()["batch"]] == ["edx.video.played"]


def test_close_is_idempotent_and_send_after_close_raises(segment: SegmentHTTPBackend) -> None:
    assert segment.flush(0.0) is True
    segment.close()
    segment.close()
    with pytest.raises(RuntimeError, match="closed"):
        segment.send(make_event({"user_id": 1}))
