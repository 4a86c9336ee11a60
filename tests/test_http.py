"""HTTPBackend against a local recording server: bodies, headers, auth and status handling."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from eventtracking import Tracker, diagnostics, tracker_from_config
from eventtracking.backends.http import (
    USER_AGENT,
    HTTPBackend,
    HTTPRetryableError,
    HTTPTerminalError,
    chunks,
    parse_retry_after,
)
from eventtracking.exceptions import ImproperlyConfigured, RetryableError, TerminalError
from eventtracking.serialization import dumps, loads
from http_recorder import HTTPRecorder


@pytest.fixture
def server() -> Iterator[HTTPRecorder]:
    with HTTPRecorder() as recorder:
        yield recorder


def make_event(n: int = 0, **data: Any) -> dict[str, Any]:
    return {
        "id": f"0190a000-0000-7000-8000-{n:012d}",
        "name": "edx.video.played",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "data": {"n": n, **data},
        "context": {"user_id": 7, "path": "/courses"},
    }


# -- bodies, headers and auth ------------------------------------------------------


def test_send_batch_is_one_gzip_json_post_with_headers_and_bearer_auth(
    server: HTTPRecorder,
) -> None:
    backend = HTTPBackend(
        server.url + "/ingest?source=lms", headers={"X-Source": "lms"}, auth="s3cret-token"
    )
    backend.send_batch([make_event(1), make_event(2), make_event(3)])
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/ingest?source=lms"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["x-source"] == "lms"
    assert request.headers["authorization"] == "Bearer s3cret-token"
    assert request.raw[:2] == b"\x1f\x8b"  # really gzip on the wire
    body = request.json()
    assert [e["data"]["n"] for e in body] == [1, 2, 3]
    assert body[0] == {
        "id": "0190a000-0000-7000-8000-000000000001",
        "name": "edx.video.played",
        "timestamp": "2026-01-02T03:04:05.678000+00:00",
        "data": {"n": 1},
        "context": {"user_id": 7, "path": "/courses"},
    }
    backend.close()


def test_send_is_a_batch_of_one_and_basic_auth_works(server: HTTPRecorder) -> None:
    backend = HTTPBackend(server.url, auth=("ingest", "pa:ss"), gzip=False)
    backend.send(make_event(5))
    [request] = server.requests
    assert "content-encoding" not in request.headers
    assert request.raw == request.body
    expected = base64.b64encode(b"ingest:pa:ss").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert [e["data"]["n"] for e in request.json()] == [5]
    backend.close()


def test_auth_from_toml_list_and_config_tree(server: HTTPRecorder) -> None:
    tracker = tracker_from_config(
        {
            "backends": {
                "http": {
                    "ENGINE": "eventtracking.backends.http.HTTPBackend",
                    "OPTIONS": {"url": server.url, "auth": ["u", "p"], "timeout": 2},
                }
            }
        }
    )
    with tracker.context("request", {"user_id": 3}):
        tracker.emit("a.b", {"x": 1})
    tracker.close()
    [event] = server.requests[0].json()
    assert event["name"] == "a.b" and event["data"] == {"x": 1}
    assert event["context"] == {"user_id": 3}
    assert server.requests[0].headers["authorization"].startswith("Basic ")


def test_large_batches_split_by_count_and_bytes_in_order(server: HTTPRecorder) -> None:
    HTTPBackend(server.url, batch_size=2).send_batch([make_event(i) for i in range(5)])
    assert [[e["data"]["n"] for e in r.json()] for r in server.requests] == [[0, 1], [2, 3], [4]]
    server.requests.clear()
    size = len(dumps(make_event(0)))  # every event below encodes to this many bytes
    two = 2 * size + len(b"[,]")
    HTTPBackend(server.url, max_batch_bytes=two).send_batch([make_event(i) for i in range(4)])
    assert [[e["data"]["n"] for e in r.json()] for r in server.requests] == [[0, 1], [2, 3]]
    assert all(len(r.body) <= two for r in server.requests)


def test_chunks_respects_count_bytes_and_overhead() -> None:
    items = [b"aaaa", b"bb", b"cccccc", b"d"]
    assert list(chunks(items, 10, None)) == [items]
    assert list(chunks(items, 3, None)) == [items[:3], items[3:]]
    # "[aaaa,bb]" is 9 bytes; adding ",cccccc" would make 16 > 12
    assert list(chunks(items, 10, 12)) == [[b"aaaa", b"bb"], [b"cccccc", b"d"]]
    assert list(chunks([b"x" * 50, b"y"], 10, 12)) == [[b"x" * 50], [b"y"]]
    assert list(chunks([], 3, 10)) == []


# -- status handling ---------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_and_408_are_retryable(server: HTTPRecorder, status: int) -> None:
    server.reply(status)
    with pytest.raises(RetryableError) as info:
        HTTPBackend(server.url).send(make_event())
    assert isinstance(info.value, HTTPRetryableError)
    assert info.value.status_code == status
    assert info.value.retry_after is None
    assert f"HTTP {status}" in str(info.value)


def test_429_with_retry_after_seconds(server: HTTPRecorder) -> None:
    server.reply(429, headers={"Retry-After": "7"})
    with pytest.raises(RetryableError) as info:
        HTTPBackend(server.url).send(make_event())
    assert info.value.retry_after == 7.0
    assert "429" in str(info.value) and "retry after 7s" in str(info.value)


def test_503_with_retry_after_http_date(server: HTTPRecorder) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    server.reply(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(RetryableError) as info:
        HTTPBackend(server.url).send(make_event())
    assert info.value.retry_after is not None
    assert 115 <= info.value.retry_after <= 120


def test_400_is_terminal_and_never_shows_the_payload(server: HTTPRecorder) -> None:
    server.reply(400, body=b'{"error": "bad"}')
    with pytest.raises(TerminalError) as info:
        HTTPBackend(server.url + "/v1?key=hidden").send(make_event(password="hunter2-secret"))
    error = info.value
    assert isinstance(error, HTTPTerminalError) and error.status_code == 400
    assert not error.retryable
    text = str(error)
    assert "HTTP 400 Bad Request" in text
    assert "hunter2" not in text and "edx.video.played" not in text and "hidden" not in text


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "credentials"), (404, "check the URL"), (413, "batch_size"), (422, "rejected")],
)
def test_other_4xx_are_terminal_with_a_hint(server: HTTPRecorder, status: int, hint: str) -> None:
    server.reply(status)
    with pytest.raises(HTTPTerminalError, match=hint):
        HTTPBackend(server.url).send(make_event())


def test_redirects_are_not_followed_and_say_where_to(server: HTTPRecorder) -> None:
    server.reply(301, headers={"Location": "https://elsewhere.example/v2"})
    with pytest.raises(HTTPTerminalError, match=r"elsewhere\.example/v2"):
        HTTPBackend(server.url).send(make_event())
    assert len(server.requests) == 1


def test_timeout_is_retryable(server: HTTPRecorder) -> None:
    server.reply(hang=True)
    backend = HTTPBackend(server.url, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(HTTPRetryableError, match="timed out") as info:
        backend.send(make_event())
    assert time.monotonic() - started < 5
    assert info.value.status_code is None
    assert isinstance(info.value.__cause__, Exception)
    backend.send(make_event(1))  # the next request gets the default 200
    backend.close()


def test_connection_refused_is_retryable() -> None:
    with HTTPRecorder() as gone:
        url = gone.url
    with pytest.raises(HTTPRetryableError) as info:
        HTTPBackend(url, timeout=2).send(make_event())
    assert info.value.__cause__ is not None


def test_tracker_never_raises_and_counts_backend_errors(server: HTTPRecorder) -> None:
    server.reply(500)
    tracker = Tracker({"http": HTTPBackend(server.url)})
    tracker.emit("a.b", {})
    tracker.emit("a.b", {})
    assert diagnostics.snapshot()["backend.http.errors"] == 1
    assert len(server.requests) == 2
    tracker.close()


# -- lifecycle and configuration ---------------------------------------------------


def test_flush_close_and_use_after_close(server: HTTPRecorder) -> None:
    backend = HTTPBackend(server.url)
    backend.send(make_event())
    assert backend.flush(0.1) is True
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.send(make_event())
    with pytest.raises(RuntimeError, match="closed"):
        backend.send_batch([make_event()])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(server: HTTPRecorder) -> None:
    backend = HTTPBackend(server.url)
    backend.send(make_event(1))  # the parent now holds a pooled connection
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            backend.send(make_event(2))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    backend.send(make_event(3))
    assert sorted(r.json()[0]["data"]["n"] for r in server.wait_for(3)) == [1, 2, 3]
    backend.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://example.com/x"}, "absolute http:// or https:// URL"),
        ({"url": "/relative"}, "absolute http"),
        ({"url": "http://h:99999/"}, "invalid port"),
        ({"url": "http://h/", "timeout": 0}, "timeout must be a positive number"),
        ({"url": "http://h/", "batch_size": 0}, "batch_size must be a positive int"),
        ({"url": "http://h/", "auth": ["only-user"]}, "auth must be"),
        ({"url": "http://h/", "auth": ""}, "auth token must not be empty"),
        ({"url": "http://h/", "headers": {"Content-Encoding": "br"}}, "gzip=True or False"),
        (
            {"url": "http://h/", "auth": "t", "headers": {"authorization": "x"}},
            "either auth or an Authorization header",
        ),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HTTPBackend(**options)


def test_bad_options_from_config_name_the_path() -> None:
    spec = {"ENGINE": "eventtracking.backends.http.HTTPBackend", "OPTIONS": {"url": "nope"}}
    with pytest.raises(ImproperlyConfigured, match=r"backends\.web: .*absolute http"):
        tracker_from_config({"backends": {"web": spec}})


# -- Retry-After parsing -------------------------------------------------------------


NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
        ("Sunday, 01-Mar-26 12:01:00 GMT", 60.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_events_are_encoded_like_every_other_sink(server: HTTPRecorder) -> None:
    from decimal import Decimal

    event = make_event(0, price=Decimal("1.10"), tags={"b", "a"}, raw=b"\x00\x01")
    HTTPBackend(server.url).send(event)
    [body] = server.requests[0].json()
    assert body["data"] == {"n": 0, "price": "1.10", "tags": ["a", "b"], "raw": "AAE="}
    assert loads(server.requests[0].body)[0]["id"] == event["id"]


def test_missing_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from eventtracking.exceptions import MissingExtraError

    monkeypatch.setitem(sys.modules, "httpx", None)  # makes `import httpx` fail
    for module in ("eventtracking.backends.http", "eventtracking.backends.segment_http"):
        monkeypatch.delitem(sys.modules, module, raising=False)
        with pytest.raises(MissingExtraError, match=r"pip install 'event-tracking\[http\]'"):
            importlib.import_module(module)
    spec = {"ENGINE": "eventtracking.backends.segment_http.SegmentHTTPBackend", "OPTIONS": {}}
    with pytest.raises(
        ImproperlyConfigured, match=r"backends\.s\.ENGINE: .*event-tracking\[http\]"
    ):
        tracker_from_config({"backends": {"s": spec}})


# -- the http.client fast path -----------------------------------------------------


def test_a_proxy_setting_for_the_url_is_honoured(
    server: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)  # the recorder plays the proxy
    backend = HTTPBackend("http://collector.invalid/ingest", gzip=False)
    backend.send(make_event(1))
    [request] = server.requests
    assert request.path == "http://collector.invalid/ingest"  # absolute form: via the proxy
    assert request.json()[0]["data"]["n"] == 1
    backend.close()


def test_a_kept_alive_connection_the_server_closed_is_opened_again() -> None:
    """The server answers as HTTP/1.1 (keep-alive) and then hangs up: the next POST still works."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                headers, _, body = head.partition(b"\r\n\r\n")
                length = int(headers.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                received.append(body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    backend = HTTPBackend(f"http://127.0.0.1:{port}/events", gzip=False)
    backend.send(make_event(1))
    time.sleep(0.05)  # let the hang-up arrive before the next request
    backend.send(make_event(2))
    thread.join(10)
    listener.close()
    backend.close()
    assert [loads(body)[0]["data"]["n"] for body in received] == [1, 2]


def test_a_batch_body_is_the_array_of_each_events_dumps_bytes() -> None:
    from decimal import Decimal

    from eventtracking.serialization import dumps_array

    native = [make_event(n, tags=["a", "b"], ratio=0.5, at=datetime(2026, 1, 1)) for n in range(3)]
    others = [make_event(0, price=Decimal("1.10"), seen={3, 1}, raw=b"\x00\x01")]
    int_keys = [{"name": "k", "data": {1: "one"}}]  # dumps' slower path (non-string keys)
    for events in (native, others, native + others, int_keys, native + int_keys, []):
        assert dumps_array(events) == b"[" + b",".join(dumps(e) for e in events) + b"]"
    assert loads(dumps_array(others))[0]["data"]["price"] == "1.10"  # converted by the one encoder
