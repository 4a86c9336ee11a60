"""End to end in real headless Chromium: a page emits, events reach the store with server context.

Chromium (Debian ``chromium``) is driven through Selenium and Debian's
``chromium-driver`` against pytest-django's live server on 127.0.0.1. One
event is sent by fetch, one by ``navigator.sendBeacon`` when the page is left.
Without Chromium or its driver the tests skip (fail when
``EVENTTRACKING_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

import django_support  # noqa: F401  (configures Django)
from browser_support import chromium
from django_support import install
from django_testapp import views as testapp_views
from eventtracking.django.context import hash_session
from eventtracking.django.django_tracker import DjangoTracker
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with chromium(tmp_path / "profile", monkeypatch) as browser:
        yield browser


@pytest.fixture
def tracker(settings: Any, tmp_path: Path) -> Iterator[DjangoTracker]:
    testapp_views.RECORDED.clear()
    testapp_views.FAIL_NEXT[0] = 0
    tracker = install(
        settings,
        EVENT_TRACKING_BACKENDS={
            "store": {
                "ENGINE": "eventtracking.backends.sqlite.SQLiteBackend",
                "OPTIONS": {"path": str(tmp_path / "events.db")},
                "DELIVERY": {"max_delay": 0.05},
            }
        },
    )
    yield tracker
    tracker.close()


def stored_events(tracker: DjangoTracker, path: Path, count: int) -> list[dict[str, Any]]:
    """Wait (up to 15 s) until the store holds `count` events; return them oldest first."""
    deadline = time.monotonic() + 15
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        tracker.flush(2.0)
        if path.exists():
            store = SQLiteStore(path, create=False)
            try:
                events = store.query(Query(limit=None))
            finally:
                store.close()
            if len(events) >= count:
                return events
        time.sleep(0.1)
    pytest.fail(f"expected {count} events in the store, found {len(events)}: {events}")


def log_in(driver: Any, live_server: Any, django_user_model: Any) -> tuple[Any, str]:
    user = django_user_model.objects.create_user("ada", password="pw")
    client = Client()
    client.force_login(user)
    session_key = client.cookies["sessionid"].value
    driver.get(f"{live_server.url}/blank")
    driver.add_cookie({"name": "sessionid", "value": session_key, "path": "/"})
    return user, session_key


def wait_for_ready(driver: Any) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if driver.find_element("id", "status").text == "ready":
            return
        time.sleep(0.05)
    pytest.fail(f"the page never became ready; console: {driver.get_log('browser')}")


def test_page_events_reach_the_store_with_the_server_context(
    driver: Any,
    live_server: Any,
    tracker: DjangoTracker,
    tmp_path: Path,
    django_user_model: Any,
) -> None:
    assert live_server.url.startswith("http://127.0.0.1:")
    user, session_key = log_in(driver, live_server, django_user_model)
    driver.get(f"{live_server.url}/page?endpoint=/recorded/events")
    wait_for_ready(driver)
    assert driver.execute_script("return eventtracking.pending()") == 1
    driver.get(f"{live_server.url}/blank")  # leaving the page sends the rest by beacon

    events = stored_events(tracker, tmp_path / "events.db", 2)
    assert [e["name"] for e in events] == ["client.page.loaded", "client.page.left"]
    for event in events:
        context = event["context"]
        assert context["user_id"] == user.pk
        assert context["username"] == "ada"
        assert context["session"] == hash_session(session_key)
        assert context["ip"] == "127.0.0.1"
        assert context["event_source"] == "browser"
        assert context["page"] == f"{live_server.url}/page?endpoint=/recorded/events"
        assert context["client"] == {"section": "test", "user_id": "forged"}
        assert context["agent"].startswith("Mozilla/5.0")
    assert events[0]["data"] == {"title": "eventtracking test page"}
    assert events[1]["data"] == {"reason": "navigate"}
    # the first by fetch (JSON), the second by sendBeacon (a form)
    assert testapp_views.RECORDED == ["application/json", "application/x-www-form-urlencoded"]


def test_a_failed_send_is_retried(
    driver: Any, live_server: Any, tracker: DjangoTracker, tmp_path: Path
) -> None:
    testapp_views.FAIL_NEXT[0] = 1
    driver.get(f"{live_server.url}/page?endpoint=/recorded/events")
    wait_for_ready(driver)
    deadline = time.monotonic() + 15
    stats = driver.execute_script("return eventtracking.stats")
    # The retry takes both events: the second was queued while the first waited.
    while stats["sent"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = driver.execute_script("return eventtracking.stats")
    assert stats["retries"] == 1
    assert stats["sent"] == 2
    events = stored_events(tracker, tmp_path / "events.db", 2)
    assert [e["name"] for e in events] == ["client.page.loaded", "client.page.left"]
    assert events[0]["context"]["user_id"] is None
    assert testapp_views.RECORDED == ["application/json", "application/json"]
