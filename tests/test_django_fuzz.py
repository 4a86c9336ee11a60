"""Fuzzing the browser endpoint: no input, however strange, gives a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import django_support  # noqa: F401  (configures Django)
from django_support import install
from eventtracking.django.django_tracker import DjangoTracker

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=40,
)
names = st.sampled_from(
    ["client.a", "client.doc", "server.x", "", "client." + "x" * 200]
) | st.text(max_size=20)
keys = st.sampled_from(["name", "data", "context", "page", "timestamp", "user_id", "ip", "x"])
events = st.dictionaries(keys, json_values | names, max_size=6) | st.fixed_dictionaries(
    {"name": names, "data": json_values}
)
documents = (
    json_values
    | events
    | st.lists(events, max_size=60)
    | st.fixed_dictionaries({"events": st.lists(events, max_size=5)})
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "",
    ]
)


@pytest.fixture
def tracker(settings: Any, db: None) -> DjangoTracker:
    tracker = install(
        settings,
        EVENT_TRACKING_VALIDATION="strict",
        EVENT_TRACKING_MAX_EVENT_SIZE=4000,
        EVENT_TRACKING_BROWSER={"RATE_LIMIT": None, "MAX_BODY_BYTES": 8192},
    )
    tracker.register("client.doc", "Doc.", {"x": {"type": "integer", "required": True}})
    return tracker


def answer_is_sane(response: Any) -> None:
    assert response.status_code < 500, response.content
    body = response.json()
    assert ("accepted" in body) if response.status_code == 200 else ("error" in body)


@FUZZ
@given(document=documents)
def test_no_json_document_gives_a_500(tracker: DjangoTracker, document: Any) -> None:
    response = Client().post(
        "/tracking/events", json.dumps(document), content_type="application/json"
    )
    answer_is_sane(response)


@FUZZ
@given(body=st.binary(max_size=300), content_type=content_types)
def test_no_body_gives_a_500(tracker: DjangoTracker, body: bytes, content_type: str) -> None:
    response = Client().generic("POST", "/tracking/events", body, content_type=content_type)
    answer_is_sane(response)


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["event_type", "event", "page", "events", "csrfmiddlewaretoken"]),
        st.text(max_size=40) | json_values.map(json.dumps),
    ),
    url=st.sampled_from(["/event", "/tracking/events"]),
)
def test_no_form_gives_a_500(tracker: DjangoTracker, fields: dict[str, str], url: str) -> None:
    answer_is_sane(Client().post(url, fields))


@FUZZ
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    length=st.sampled_from(["", "abc", "-1", "99999999999"]),
)
def test_no_method_or_length_gives_a_500(tracker: DjangoTracker, method: str, length: str) -> None:
    answer_is_sane(Client().generic(method, "/tracking/events", b"{}", CONTENT_LENGTH=length))
