"""The console inside Django: staff only, the same pages and JSON, metrics, replay in-process.

The console is mounted from our URLconf (`eventtracking.django.console_urls`)
under ``console/`` by this module's own `urlpatterns`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")
from django.urls import include, path

import django_support  # noqa: F401  (configures Django)
from console_support import driver, require_driver
from django_support import install
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.delivery.deadletter import DeadLetterStore
from eventtracking.store import Query, open_store

require_driver("prometheus_client", "console")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

__all__ = ["driver"]
urlpatterns = [path("console/", include("eventtracking.django.console_urls"))]
pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

PAGES = ("", "charts", "catalogue", "delivery", "api/events", "api/charts", "static/console.js")
METRICS_TOKEN = "scraper-token-0123456789"


@pytest.fixture
def store(tmp_path: Path, settings: Any) -> Iterator[Path]:
    path = tmp_path / "events.db"
    backend = SQLiteBackend(path)
    for i, name in enumerate(["video.played", "video.played", "page.viewed"]):
        backend.send(
            {
                "id": f"e{i}",
                "name": name,
                "timestamp": datetime.now(UTC).isoformat(),
                "data": {"n": i},
                "context": {"user_id": i},
            }
        )
    backend.close()
    settings.EVENT_TRACKING_CONSOLE = {"STORE": str(path), "METRICS_TOKEN": METRICS_TOKEN}
    yield path


@pytest.fixture
def staff(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("grace", password="pw", is_staff=True)
    client.force_login(user)
    return client


def test_anonymous_visitors_are_sent_to_log_in(client: Client, store: Path) -> None:
    for page in PAGES:
        reply = client.get(f"/console/{page}")
        assert reply.status_code == 302, page
        assert reply["Location"].startswith("/accounts/login/?next=/console/")
    assert client.get("/console/metrics").status_code == 403


def test_users_who_are_not_staff_are_refused(
    client: Client, django_user_model: Any, store: Path
) -> None:
    client.force_login(django_user_model.objects.create_user("ada", password="pw"))
    for page in (*PAGES, "metrics", "api/stream"):
        assert client.get(f"/console/{page}").status_code == 403, page
    assert client.post("/console/delivery/replay", {"store": "x"}).status_code == 403


def test_staff_see_the_same_pages_as_serve(staff: Client, store: Path) -> None:
    for page in PAGES:
        assert staff.get(f"/console/{page}").status_code == 200, page
    live = staff.get("/console/").content.decode()
    assert 'data-base="/console"' in live and 'href="/console/charts"' in live
    assert 'src="/console/static/console.js"' in live
    videos = staff.get("/console/api/events", {"name": "video.*"}).json()["events"]
    assert sorted(e["id"] for e in videos) == ["e0", "e1"]
    user2 = staff.get("/console/api/events", {"where": "user_id=2"}).json()["events"]
    assert [e["id"] for e in user2] == ["e2"]
    charts = staff.get("/console/api/charts", {"range": "1h"}).json()
    assert {name: sum(counts) for name, counts in charts["series"].items()} == {
        "video.played": 2,
        "page.viewed": 1,
    }
    catalogue = staff.get("/console/catalogue").content.decode()
    assert 'data-name="video.played" data-count="2"' in catalogue
    assert staff.get("/console/api/events", {"name": "["}).status_code == 400


def test_the_stream_sends_new_events(staff: Client, store: Path) -> None:
    position = staff.get("/console/api/events").json()["position"]
    reply = staff.get("/console/api/stream", {"after": position, "name": "late.*"})
    assert reply["Content-Type"] == "text/event-stream"
    chunks = iter(reply.streaming_content)
    assert next(chunks).startswith(b"retry:")
    backend = SQLiteBackend(store)
    backend.send({"id": "new", "name": "late.event", "timestamp": "2026-01-01T00:00:00+00:00"})
    backend.close()
    deadline = time.monotonic() + 8
    received = b""
    while b"late.event" not in received and time.monotonic() < deadline:
        received += next(chunks)
    reply.close()
    assert b'"id":"new"' in received


def test_metrics_for_staff_and_for_a_scraper_with_the_token(
    client: Client, staff: Client, store: Path
) -> None:
    text = staff.get("/console/metrics").content.decode()
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("eventtracking_store_events", (("name", "video.played"),))] == 2
    scraper = Client()
    ok = scraper.get("/console/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert ok.status_code == 200 and b"eventtracking_store_events" in ok.content
    wrong = scraper.get("/console/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


def test_a_missing_setting_says_what_to_write(staff: Client, settings: Any) -> None:
    settings.EVENT_TRACKING_CONSOLE = None
    reply = staff.get("/console/")
    assert reply.status_code == 503 and b"EVENT_TRACKING_CONSOLE must be a dict with STORE" in (
        reply.content
    )


def _dead_letter(path: Path) -> None:
    dead = DeadLetterStore(path)
    event = {"id": "dl-1", "name": "late.event", "timestamp": "2026-01-01T00:00:00+00:00"}
    dead.add("store", [event | {"data": {}, "context": {}}], "timeout", 5, time.time(), time.time())
    dead.close()


def test_replay_is_refused_unless_allowed(staff: Client, store: Path, tmp_path: Path) -> None:
    dead = tmp_path / "dead-letters.db"
    _dead_letter(dead)
    settings_value = {"STORE": str(store), "DEAD_LETTERS": [str(dead)]}
    from django.test import override_settings

    with override_settings(EVENT_TRACKING_CONSOLE=settings_value):
        page = staff.get("/console/delivery").content.decode()
        assert "read-only" in page and 'id="dead-letters"' in page
        refused = staff.post("/console/delivery/replay", {"store": str(dead), "id": "1"})
        assert refused.status_code == 403
    kept = DeadLetterStore(dead, create=False)
    assert kept.count() == 1
    kept.close()


def test_replay_goes_back_through_this_process_backend(
    staff: Client, store: Path, tmp_path: Path, settings: Any
) -> None:
    tracker = install(
        settings,
        EVENT_TRACKING_BACKENDS={
            "store": {
                "ENGINE": "eventtracking.backends.sqlite.SQLiteBackend",
                "OPTIONS": {"path": str(store)},
                "DELIVERY": {"max_delay": 0.05},
            }
        },
    )
    dead = tmp_path / "dead-letters.db"
    _dead_letter(dead)
    settings.EVENT_TRACKING_CONSOLE = {
        "STORE": str(store),
        "DEAD_LETTERS": [str(dead)],
        "ALLOW_REPLAY": True,
    }
    try:
        page = staff.get("/console/delivery").content.decode()
        assert 'name="csrfmiddlewaretoken"' in page and 'data-backend="store"' in page
        done = staff.post("/console/delivery/replay", {"store": str(dead), "id": "1"})
        assert done.status_code == 200 and b"1 delivered, 0 failed" in done.content
    finally:
        tracker.close()
    reader = open_store(str(store))
    try:
        assert [e["id"] for e in reader.query(Query(names=("late.event",)))] == ["dl-1"]
    finally:
        reader.close()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_live_view_works_under_the_django_prefix(
    driver: Any, live_server: Any, django_user_model: Any, store: Path
) -> None:
    user = django_user_model.objects.create_user("lin", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    driver.get(f"{live_server.url}/console/static/console.css")  # a page of the host first
    driver.add_cookie({"name": "sessionid", "value": client.cookies["sessionid"].value})
    driver.get(f"{live_server.url}/console/?name=video.*")
    script = "return [...document.querySelectorAll('#events li')].map(li => li.dataset.id)"
    deadline = time.monotonic() + 8
    while sorted(driver.execute_script(script) or []) != ["e0", "e1"]:
        assert time.monotonic() < deadline, driver.execute_script(script)
        time.sleep(0.05)
    status = driver.find_element("id", "live-status")
    while not status.text.startswith("live"):
        assert time.monotonic() < deadline, status.text
        time.sleep(0.05)
    backend = SQLiteBackend(store)
    backend.send({"id": "e9", "name": "video.seeked", "timestamp": datetime.now(UTC).isoformat()})
    backend.close()
    deadline = time.monotonic() + 8
    while "e9" not in (driver.execute_script(script) or []):
        assert time.monotonic() < deadline, driver.execute_script(script)
        time.sleep(0.05)
    assert driver.execute_script(script)[0] == "e9"


def test_replay_says_when_no_backend_of_this_process_can_take_it(
    staff: Client, store: Path, tmp_path: Path, settings: Any
) -> None:
    dead = tmp_path / "dead-letters.db"
    _dead_letter(dead)
    settings.EVENT_TRACKING_CONSOLE = {
        "STORE": str(store),
        "DEAD_LETTERS": [str(dead)],
        "ALLOW_REPLAY": True,
    }
    reply = staff.post("/console/delivery/replay", {"store": str(dead), "id": "1"})
    assert reply.status_code == 503
    assert b"no delivery backend named &#x27;store&#x27; runs in this process" in reply.content
    kept = DeadLetterStore(dead, create=False)
    assert kept.count() == 1
    kept.close()
