"""The request context middleware, sync and async, and the optional per-request event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client
from django.utils.crypto import salted_hmac

import django_support  # noqa: F401  (configures Django)
from django_support import install, memory
from eventtracking.django.context import SERVER_FIELDS, client_ip, course_context, hash_session
from eventtracking.django.django_tracker import DjangoTracker
from eventtracking.exceptions import ImproperlyConfigured

FIELDS = {
    "user_id",
    "username",
    "session",
    "ip",
    "host",
    "agent",
    "path",
    "referer",
    "accept_language",
    "client_id",
    "request_id",
}


@pytest.fixture
def tracker(settings: Any) -> DjangoTracker:
    return install(settings)


@pytest.fixture
def user(db: None) -> Any:
    return get_user_model().objects.create_user("ada", password="pw")


def test_the_request_context_has_every_open_edx_field(
    tracker: DjangoTracker, client: Client, user: Any
) -> None:
    client.force_login(user)
    client.cookies["_ga"] = "GA1.2.1234567890.1600000000"
    response = client.get(
        "/ctx",
        HTTP_USER_AGENT="Mozilla/5.0 test",
        HTTP_REFERER="http://testserver/prev",
        HTTP_ACCEPT_LANGUAGE="fr-CH, fr;q=0.9",
        REMOTE_ADDR="10.1.2.3",
    )
    context = response.json()
    assert set(context) >= FIELDS
    session_key = client.session.session_key
    assert context["user_id"] == user.pk
    assert context["username"] == "ada"
    assert context["session"] == hash_session(session_key)
    assert (
        context["session"]
        == salted_hmac("eventtracking.django.session", session_key, algorithm="sha256").hexdigest()[
            :32
        ]
    )
    assert session_key not in str(context)
    assert context["ip"] == "10.1.2.3"
    assert context["host"] == "testserver"
    assert context["agent"] == "Mozilla/5.0 test"
    assert context["path"] == "/ctx"
    assert context["referer"] == "http://testserver/prev"
    assert context["accept_language"] == "fr-CH, fr;q=0.9"
    assert context["client_id"] == "1234567890.1600000000"
    assert len(context["request_id"]) == 36
    (event,) = memory(tracker).events
    assert event["name"] == "server.test"
    assert {k: event["context"][k] for k in FIELDS} == {k: context[k] for k in FIELDS}


def test_an_anonymous_request_has_no_user(tracker: DjangoTracker, client: Client, db: None) -> None:
    context = client.get("/ctx").json()
    assert context["user_id"] is None
    assert context["username"] == ""
    assert context["session"] == ""
    assert context["client_id"] == ""


def test_the_session_hash_follows_the_secret_key(settings: Any) -> None:
    first = hash_session("abcdefgh12345678")
    settings.SECRET_KEY = "another-secret"
    assert hash_session("abcdefgh12345678") != first
    assert hash_session(None) == ""


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (0, "1.1.1.1, 2.2.2.2", "9.9.9.9"),
        (1, "1.1.1.1, 2.2.2.2", "2.2.2.2"),
        (2, "6.6.6.6, 1.1.1.1, 2.2.2.2", "1.1.1.1"),
        (3, "1.1.1.1", "1.1.1.1"),
        (1, "", "9.9.9.9"),
    ],
)
def test_the_ip_honours_the_trusted_proxy_count(count: int, forwarded: str, expected: str) -> None:
    meta = {"REMOTE_ADDR": "9.9.9.9", "HTTP_X_FORWARDED_FOR": forwarded}
    assert client_ip(meta, count) == expected


def test_trusted_proxies_setting_reaches_the_context(
    tracker: DjangoTracker, settings: Any, client: Client, db: None
) -> None:
    settings.EVENT_TRACKING_TRUSTED_PROXY_COUNT = 1
    context = client.get("/ctx", HTTP_X_FORWARDED_FOR="6.6.6.6, 5.5.5.5").json()
    assert context["ip"] == "5.5.5.5"


def test_a_request_id_header_is_used_when_configured_and_sane(
    tracker: DjangoTracker, settings: Any, client: Client, db: None
) -> None:
    assert client.get("/ctx", HTTP_X_REQUEST_ID="abc-123").json()["request_id"] != "abc-123"
    settings.EVENT_TRACKING_REQUEST_ID_HEADER = "X-Request-ID"
    assert client.get("/ctx", HTTP_X_REQUEST_ID="abc-123").json()["request_id"] == "abc-123"
    bad = client.get("/ctx", HTTP_X_REQUEST_ID="<script>").json()["request_id"]
    assert bad != "<script>"
    assert len(bad) == 36


def test_long_headers_are_cut(tracker: DjangoTracker, client: Client, db: None) -> None:
    context = client.get("/ctx", HTTP_USER_AGENT="x" * 10_000).json()
    assert len(context["agent"]) == 2048


def test_course_and_org_come_from_the_url(tracker: DjangoTracker, client: Client, db: None) -> None:
    context = client.get("/courses/course-v1:edX+DemoX+2026/ctx").json()
    assert context["course_id"] == "course-v1:edX+DemoX+2026"
    assert context["org_id"] == "edX"
    event = memory(tracker).events[-1]
    assert event["context"]["org_id"] == "edX"
    old = course_context(None, {"course_id": "MITx/6.002x/2012_Fall"})  # type: ignore[arg-type]
    assert old == {"course_id": "MITx/6.002x/2012_Fall", "org_id": "MITx"}
    assert course_context(None, {"slug": "x"}) is None  # type: ignore[arg-type]


def failing_provider(request: Any, view_kwargs: Any) -> dict[str, Any]:
    raise ValueError("provider bug")


def team_provider(request: Any, view_kwargs: Any) -> dict[str, Any]:
    return {"team": "blue"}


def test_custom_providers_add_fields_and_a_failing_one_is_skipped(
    tracker: DjangoTracker, settings: Any, client: Client, db: None
) -> None:
    settings.EVENT_TRACKING_CONTEXT_PROVIDERS = [
        "test_django_middleware.failing_provider",
        "test_django_middleware.team_provider",
    ]
    context = client.get("/ctx").json()
    assert context["team"] == "blue"
    assert tracker.stats()["django.provider_errors"] == 1


def test_the_context_is_gone_after_the_response_and_after_an_exception(
    tracker: DjangoTracker, db: None
) -> None:
    client = Client(raise_request_exception=False)
    client.get("/ctx")
    assert tracker.resolve_context() == {}
    assert client.get("/boom").status_code == 500
    assert tracker.resolve_context() == {}
    raising = Client()
    with pytest.raises(RuntimeError):
        raising.get("/boom")
    assert tracker.resolve_context() == {}
    boom = memory(tracker).events[-1]
    assert boom["name"] == "server.boom"
    assert boom["context"]["path"] == "/boom"


def test_an_outer_request_context_is_restored(
    tracker: DjangoTracker, client: Client, db: None
) -> None:
    with tracker.context("request", {"user_id": "outer"}):
        client.get("/ctx")
        assert tracker.resolve_context() == {"user_id": "outer"}


def test_a_broken_tracker_stops_start_up_with_a_value_error(settings: Any, db: None) -> None:
    settings.EVENT_TRACKING_BACKENDS = {"x": {"ENGINE": "nowhere.Backend"}}
    from eventtracking.django.django_tracker import install_tracker

    with pytest.raises(ValueError, match=r"EVENT_TRACKING_BACKENDS\.x\.ENGINE") as caught:
        install_tracker()
    assert isinstance(caught.value, ImproperlyConfigured)
    install(
        settings,
        EVENT_TRACKING_BACKENDS={"memory": {"ENGINE": "eventtracking.testing.InMemoryBackend"}},
    )


# -- the per-request server event ------------------------------------------------------


def test_the_request_event_masks_passwords_and_skips_ignored_urls(
    tracker: DjangoTracker, settings: Any, client: Client, db: None
) -> None:
    settings.EVENT_TRACKING_REQUEST_EVENT = "server.request"
    settings.TRACKING_IGNORE_URL_PATTERNS = [r"^/log"]
    client.post("/ctx?next=/home", {"username": "ada", "password": "hunter2", "note": "n" * 600})
    client.post("/login", {"username": "ada", "password": "hunter2"})
    requests = [e for e in memory(tracker).events if e["name"] == "server.request"]
    assert len(requests) == 1
    data = requests[0]["data"]
    assert data["method"] == "POST"
    assert data["status"] == 200
    assert data["GET"] == {"next": "/home"}
    assert data["POST"]["password"] == "[REDACTED]"
    assert data["POST"]["username"] == "ada"
    assert len(data["POST"]["note"]) == 512
    assert "hunter2" not in str(memory(tracker).events)
    assert requests[0]["context"]["path"] == "/ctx"


def test_the_request_event_skips_the_browser_endpoint(
    tracker: DjangoTracker, settings: Any, client: Client, db: None
) -> None:
    settings.EVENT_TRACKING_REQUEST_EVENT = "server.request"
    settings.TRACKING_IGNORE_URL_PATTERNS = []
    client.post("/tracking/events", {"name": "client.x"}, content_type="application/json")
    assert memory(tracker).names() == ["client.x"]


def test_a_closed_tracker_does_not_break_responses(
    tracker: DjangoTracker, settings: Any, client: Client, db: None
) -> None:
    # At shutdown the tracker closes before the last requests finish: those
    # requests must still get their own response, not a 500 from the event.
    settings.EVENT_TRACKING_REQUEST_EVENT = "server.request"
    settings.TRACKING_IGNORE_URL_PATTERNS = []
    tracker.close()
    response = client.get("/blank")  # a view that emits nothing itself
    assert response.status_code == 200
    assert memory(tracker).events == []


# -- async ------------------------------------------------------------------------------


class FakeUser:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk

    def get_username(self) -> str:
        return f"user{self.pk}"


class HeaderUserMiddleware:
    """Test stand-in for authentication: the user named by the X-Test-User header."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Any) -> None:
        from asgiref.sync import markcoroutinefunction

        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: Any) -> Any:
        user = FakeUser(int(request.headers["X-Test-User"]))

        async def auser() -> FakeUser:
            return user

        request.auser = auser
        return await self.get_response(request)


ASYNC_MIDDLEWARE = [
    "test_django_middleware.HeaderUserMiddleware",
    "eventtracking.django.middleware.TrackMiddleware",
]


def test_concurrent_async_requests_keep_their_own_context(
    tracker: DjangoTracker, settings: Any
) -> None:
    settings.MIDDLEWARE = ASYNC_MIDDLEWARE

    async def run() -> list[Any]:
        client = AsyncClient()
        # Staggered delays interleave the requests inside one event loop.
        calls = [
            client.get(f"/actx?delay={0.05 * (i % 4)}&user={i}", headers={"X-Test-User": str(i)})
            for i in range(12)
        ]
        return await asyncio.gather(*calls)

    responses = asyncio.run(run())
    for i, response in enumerate(responses):
        body = response.json()
        assert body["before"]["user_id"] == i
        assert body["after"]["user_id"] == i
        assert body["after"]["username"] == f"user{i}"
    events = memory(tracker).events
    assert len(events) == 12
    assert all(e["context"]["user_id"] == int(e["data"]["user"]) for e in events)
    assert len({e["context"]["request_id"] for e in events}) == 12
    assert tracker.resolve_context() == {}


def test_async_context_is_gone_after_an_exception(tracker: DjangoTracker, settings: Any) -> None:
    settings.MIDDLEWARE = ASYNC_MIDDLEWARE

    async def run() -> tuple[int, dict[str, Any]]:
        client = AsyncClient(raise_request_exception=False)
        response = await client.get("/aboom", headers={"X-Test-User": "5"})
        return response.status_code, tracker.resolve_context()

    status, left = asyncio.run(run())
    assert status == 500
    assert left == {}
    assert memory(tracker).events[-1]["context"]["user_id"] == 5


@pytest.mark.django_db(transaction=True)
def test_async_requests_with_real_authentication(tracker: DjangoTracker) -> None:
    user = get_user_model().objects.create_user("grace", password="pw")
    client = AsyncClient()

    async def run() -> dict[str, Any]:
        await client.aforce_login(user)
        response = await client.get("/actx")
        body: dict[str, Any] = response.json()
        return body

    body = asyncio.run(run())
    assert body["after"]["user_id"] == user.pk
    assert body["after"]["username"] == "grace"
    assert len(body["after"]["session"]) == 32


def test_server_fields_cover_the_open_edx_names() -> None:
    openedx = {"user_id", "username", "session", "ip", "host", "agent", "path", "referer"}
    assert openedx | {"accept_language", "client_id", "course_id", "org_id"} <= SERVER_FIELDS
