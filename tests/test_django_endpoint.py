"""The browser endpoint and the legacy /event view: accepted input, and every bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

import django_support  # noqa: F401  (configures Django)
from django_support import install, memory
from eventtracking.django.django_tracker import DjangoTracker
from eventtracking.testing import InMemoryBackend

URL = "/tracking/events"


@pytest.fixture
def tracker(settings: Any, db: None) -> DjangoTracker:
    return install(settings)


@pytest.fixture
def stored(tracker: DjangoTracker) -> InMemoryBackend:
    return memory(tracker)


def post(client: Client, body: Any, **extra: Any) -> Any:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(URL, data, content_type="application/json", **extra)


def ok(response: Any) -> bool:
    """True for a 200 answer that accepted events."""
    assert response.status_code == 200, response.content
    return "accepted" in response.json()


def reject(response: Any, status: int, code: str, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


# -- accepted ----------------------------------------------------------------------------


def test_one_event_is_emitted_with_the_server_context(
    client: Client, stored: InMemoryBackend
) -> None:
    response = post(
        client,
        {"name": "client.video.played", "data": {"video_id": "v1"}},
        HTTP_REFERER="http://testserver/course",
        REMOTE_ADDR="10.0.0.7",
    )
    assert response.status_code == 200
    assert response.json() == {"accepted": 1}
    (event,) = stored.events
    assert event["name"] == "client.video.played"
    assert event["data"] == {"video_id": "v1"}
    context = event["context"]
    assert context["ip"] == "10.0.0.7"
    assert context["path"] == URL
    assert context["event_source"] == "browser"
    assert context["page"] == "http://testserver/course"
    assert context["client"] == {}


@pytest.mark.parametrize("shape", ["list", "object"])
def test_a_batch_is_emitted_in_order(client: Client, stored: InMemoryBackend, shape: str) -> None:
    events = [{"name": f"client.n{i}", "data": {"i": i}} for i in range(5)]
    response = post(client, events if shape == "list" else {"events": events})
    assert response.json() == {"accepted": 5}
    assert stored.names() == [f"client.n{i}" for i in range(5)]


def test_browser_context_goes_under_client_and_cannot_replace_server_fields(
    client: Client, stored: InMemoryBackend, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user("ada", password="pw")
    client.force_login(user)
    response = post(
        client,
        {
            "name": "client.x",
            "context": {"user_id": 999, "ip": "6.6.6.6", "section": "a"},
            "page": "http://testserver/p",
            "timestamp": "2026-11-25T10:00:00Z",
        },
    )
    assert response.status_code == 200
    context = stored.events[0]["context"]
    assert context["user_id"] == user.pk
    assert context["username"] == "ada"
    assert context["ip"] == "127.0.0.1"
    assert len(context["session"]) == 32
    assert context["client"] == {"user_id": 999, "ip": "6.6.6.6", "section": "a"}
    assert context["page"] == "http://testserver/p"
    assert context["client_time"] == "2026-11-25T10:00:00Z"


def test_the_endpoint_works_without_the_middleware(
    client: Client, stored: InMemoryBackend, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "eventtracking" not in m]
    post(client, {"name": "client.x"}, REMOTE_ADDR="10.9.9.9")
    assert stored.events[0]["context"]["ip"] == "10.9.9.9"
    assert stored.events[0]["context"]["event_source"] == "browser"


def test_other_name_patterns_can_be_allowed(
    client: Client, stored: InMemoryBackend, settings: Any
) -> None:
    settings.EVENT_TRACKING_BROWSER = {"NAME_PATTERNS": [r"^edx\.ui\.", r"^play_video$"]}
    assert ok(post(client, [{"name": "edx.ui.lms.link_clicked"}, {"name": "play_video"}]))
    reject(post(client, {"name": "client.x"}), 400, "bad_name", "^edx\\\\.ui\\\\.")


def test_registered_types_are_validated_and_annotated(
    client: Client, tracker: DjangoTracker, stored: InMemoryBackend
) -> None:
    version = tracker.register("client.doc", "Doc.", {"x": {"type": "integer"}})
    assert ok(post(client, {"name": "client.doc", "data": {"x": 1}}))
    assert stored.events[0]["meta"]["type"] == version.id
    # warn policy: kept and marked
    assert ok(post(client, {"name": "client.doc", "data": {"x": "one"}}))
    assert stored.events[1]["meta"]["problems"][0]["rule"] == "wrong_type"


# -- bad input: a 4xx JSON error, and nothing stored ---------------------------------------


GOOD = {"name": "client.ok", "data": {}}


def test_wrong_method(client: Client, stored: InMemoryBackend) -> None:
    response = client.get(URL)
    reject(response, 405, "method_not_allowed", "POST")
    assert response["Allow"] == "POST"
    reject(client.put(URL, "{}"), 405, "method_not_allowed")


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"NaN", b" ", b"[1,]"])
def test_bad_json(client: Client, stored: InMemoryBackend, body: bytes) -> None:
    reject(post(client, body), 400, "bad_json", "not valid JSON")
    assert stored.events == []


def test_too_big(client: Client, stored: InMemoryBackend, settings: Any) -> None:
    settings.EVENT_TRACKING_BROWSER = {"MAX_BODY_BYTES": 1000}
    body = [GOOD, {"name": "client.big", "data": {"x": "y" * 2000}}]
    reject(post(client, body), 413, "too_large", "at most 1000")
    assert stored.events == []


def test_too_deep(client: Client, stored: InMemoryBackend) -> None:
    deep: Any = {"leaf": 1}
    for _ in range(8):
        deep = {"next": deep}
    reject(post(client, [GOOD, {"name": "client.deep", "data": deep}]), 400, "too_deep", "[1].data")
    deep_list: Any = 1
    for _ in range(8):
        deep_list = [deep_list]
    reject(post(client, {"name": "client.d", "context": {"x": deep_list}}), 400, "too_deep")
    assert stored.events == []
    shallow: Any = {"leaf": 1}
    for _ in range(7):
        shallow = {"next": shallow}
    assert ok(post(client, {"name": "client.ok", "data": shallow}))


def test_too_many_events(client: Client, stored: InMemoryBackend) -> None:
    reject(post(client, [GOOD] * 51), 413, "too_many_events", "51 events", "at most 50")
    assert stored.events == []


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("server.admin", ["not allowed from browsers", "^client\\\\."]),
        ("", ["required"]),
        (None, ["required"]),
        (7, ["required", "a number"]),
        ("client." + "x" * 200, ["at most 128"]),
    ],
)
def test_bad_name(client: Client, stored: InMemoryBackend, name: Any, words: list[str]) -> None:
    reject(post(client, [GOOD, {"name": name}]), 400, "bad_name", "events[1].name", *words)
    assert stored.events == []


@pytest.mark.parametrize("field", ["user_id", "ip", "session", "username", "host", "agent"])
def test_an_attempt_to_send_server_fields_is_refused(
    client: Client, stored: InMemoryBackend, field: str
) -> None:
    body = [GOOD, {"name": "client.x", field: "forged"}]
    reject(post(client, body), 400, "server_field", f"events[1].{field}", "the server sets")
    assert stored.events == []


def test_unknown_keys_are_refused(client: Client, stored: InMemoryBackend) -> None:
    reject(post(client, {"name": "client.x", "colour": 1}), 400, "unknown_key", "event.colour")
    reject(post(client, {"events": [GOOD], "more": 1}), 400, "bad_shape", "more")


@pytest.mark.parametrize("data", [[1, 2], "text", 3, True, None])
def test_non_object_data(client: Client, stored: InMemoryBackend, data: Any) -> None:
    reject(post(client, [GOOD, {"name": "client.x", "data": data}]), 400, "bad_data", "JSON object")
    assert stored.events == []


@pytest.mark.parametrize("body", [[], b'"text"', 5, [1], {"events": "x"}])
def test_bad_shapes(client: Client, stored: InMemoryBackend, body: Any) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert response.json()["error"] in {"bad_shape", "no_events"}
    assert stored.events == []


def test_bad_context_page_and_timestamp(client: Client, stored: InMemoryBackend) -> None:
    reject(post(client, {"name": "client.x", "context": [1]}), 400, "bad_context")
    reject(post(client, {"name": "client.x", "page": 5}), 400, "bad_page")
    reject(post(client, {"name": "client.x", "timestamp": {"t": 1}}), 400, "bad_timestamp")
    assert stored.events == []


def test_unsupported_media_type(client: Client, stored: InMemoryBackend) -> None:
    response = client.post(URL, b"<xml/>", content_type="application/xml")
    reject(response, 415, "unsupported_media_type", "application/json")


def test_missing_or_wrong_csrf_token(stored: InMemoryBackend) -> None:
    client = Client(enforce_csrf_checks=True)
    reject(post(client, GOOD), 403, "csrf_failed", "CSRF cookie not set", "X-CSRFToken")
    client.get("/page")
    token = client.cookies["csrftoken"].value
    reject(post(client, GOOD), 403, "csrf_failed", "CSRF token missing")
    reject(post(client, GOOD, HTTP_X_CSRFTOKEN="x" * 32), 403, "csrf_failed", "incorrect")
    assert stored.events == []
    assert ok(post(client, GOOD, HTTP_X_CSRFTOKEN=token))
    # the shape navigator.sendBeacon sends: a form with the token and the events
    form = {"csrfmiddlewaretoken": token, "events": json.dumps({"events": [GOOD]})}
    assert client.post(URL, form).json() == {"accepted": 1}
    reject(client.post(URL, {"csrfmiddlewaretoken": token}), 400, "bad_shape", "'events'")
    assert len(stored.events) == 2


def test_csrf_is_checked_even_without_the_csrf_middleware(
    stored: InMemoryBackend, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "csrf" not in m]
    reject(post(Client(enforce_csrf_checks=True), GOOD), 403, "csrf_failed")


def test_rate_limit_per_session(
    client: Client, stored: InMemoryBackend, settings: Any, django_user_model: Any
) -> None:
    settings.EVENT_TRACKING_BROWSER = {"RATE_LIMIT": {"session": "5/m", "ip": None}}
    client.force_login(django_user_model.objects.create_user("ada"))
    assert ok(post(client, [GOOD] * 3))
    response = post(client, [GOOD] * 3)
    reject(response, 429, "rate_limited", "retry in")
    assert int(response["Retry-After"]) >= 1
    assert len(stored.events) == 3  # nothing of the refused batch
    assert ok(post(client, [GOOD] * 2))  # what is left of the burst
    reject(post(client, [GOOD] * 6), 429, "rate_limited", "more events in one request")
    other = Client()
    other.force_login(django_user_model.objects.create_user("bob"))
    assert ok(post(other, [GOOD] * 5))  # another session has its own bucket


def test_rate_limit_per_ip(client: Client, stored: InMemoryBackend, settings: Any) -> None:
    settings.EVENT_TRACKING_BROWSER = {"RATE_LIMIT": {"ip": "4/h"}}
    assert ok(post(client, [GOOD] * 4, REMOTE_ADDR="10.0.0.1"))
    reject(post(client, GOOD, REMOTE_ADDR="10.0.0.1"), 429, "rate_limited")
    assert ok(post(client, GOOD, REMOTE_ADDR="10.0.0.2"))
    assert len(stored.events) == 5


def test_strict_validation_failure_is_a_400_and_stores_nothing(
    client: Client, stored: InMemoryBackend, settings: Any
) -> None:
    tracker = install(settings, EVENT_TRACKING_VALIDATION="strict")
    stored = memory(tracker)
    tracker.register("client.doc", "Doc.", {"x": {"type": "integer", "required": True}})
    body = [{"name": "client.doc", "data": {"x": 1}}, {"name": "client.doc", "data": {"x": "a"}}]
    reject(post(client, body), 400, "validation_failed", "client.doc", "data.x", "wrong_type")
    reject(post(client, [body[0], {"name": "client.undocumented"}]), 400, "validation_failed")
    assert stored.events == []
    assert ok(post(client, body[0]))
    assert len(stored.events) == 1


def test_a_per_type_strict_policy_applies_under_warn(
    client: Client, tracker: DjangoTracker, stored: InMemoryBackend
) -> None:
    tracker.register("client.doc", "Doc.", {"x": {"type": "integer"}}, policy="strict")
    reject(
        post(client, [GOOD, {"name": "client.doc", "data": {"x": "a"}}]), 400, "validation_failed"
    )
    assert stored.events == []


def test_strict_size_limit_is_checked_before_anything_is_emitted(
    client: Client, settings: Any
) -> None:
    tracker = install(
        settings, EVENT_TRACKING_VALIDATION="strict", EVENT_TRACKING_MAX_EVENT_SIZE=900
    )
    stored = memory(tracker)
    tracker.register("client.doc", "Doc.", {"x": "X."})
    body = [
        {"name": "client.doc", "data": {"x": "a"}},
        {"name": "client.doc", "data": {"x": "b" * 900}},
    ]
    reject(post(client, body), 400, "validation_failed", "too_large")
    assert stored.events == []


# -- the legacy /event view --------------------------------------------------------------


def test_legacy_form_is_accepted(client: Client, stored: InMemoryBackend, settings: Any) -> None:
    settings.EVENT_TRACKING_BROWSER = {"NAME_PATTERNS": [r"^client\.", r"^play_video$"]}
    response = client.post(
        "/event",
        {"event_type": "play_video", "event": json.dumps({"id": "v1"}), "page": "http://x/p"},
    )
    assert response.json() == {"accepted": 1}
    (event,) = stored.events
    assert event["name"] == "play_video"
    assert event["data"] == {"id": "v1"}
    assert event["context"]["page"] == "http://x/p"
    assert event["context"]["event_source"] == "browser"
    body = {"event_type": "client.y", "event": {"a": 1}}
    assert ok(client.post("/event", body, content_type="application/json"))
    assert ok(client.post("/tracking/event", {"event_type": "client.z"}))
    assert stored.names() == ["play_video", "client.y", "client.z"]


def test_legacy_bad_input(client: Client, stored: InMemoryBackend) -> None:
    reject(client.get("/event"), 405, "method_not_allowed")
    reject(client.post("/event", {"event": "{}"}), 400, "bad_name", "event_type: required")
    reject(
        client.post("/event", {"event_type": "client.x", "event": "{"}), 400, "bad_json", "event:"
    )
    reject(
        client.post("/event", {"event_type": "client.x", "event": "[1]"}), 400, "bad_data", "event:"
    )
    reject(client.post("/event", {"event_type": "server.x"}), 400, "bad_name", "event_type:")
    reject(client.post("/event", b"[]", content_type="application/json"), 400, "bad_shape")
    reject(client.post("/event", b"x", content_type="image/png"), 415, "unsupported_media_type")
    reject(
        Client(enforce_csrf_checks=True).post("/event", {"event_type": "client.x"}),
        403,
        "csrf_failed",
    )
    assert stored.events == []


def test_a_closed_tracker_answers_503_not_500(
    client: Client, tracker: DjangoTracker, stored: InMemoryBackend
) -> None:
    tracker.close()
    response = post(client, {"name": "client.video.played", "data": {}})
    body = reject(response, 503, "unavailable", "shut down")
    assert response["Retry-After"] == "5" and body["detail"]
    assert stored.events == []
