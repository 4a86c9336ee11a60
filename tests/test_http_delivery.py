"""HTTPBackend behind the shared delivery worker: its errors drive retries and dead letters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventtracking import serialization
from eventtracking.backends.http import HTTPBackend
from eventtracking.delivery import DeliveryBackend
from http_recorder import HTTPRecorder

FAST_RETRY = {"initial_backoff": 0.01, "max_backoff": 0.02, "max_attempts": 5}


@pytest.fixture
def server() -> Iterator[HTTPRecorder]:
    with HTTPRecorder() as recorder:
        yield recorder


def make_event(i: int, **data: Any) -> dict[str, Any]:
    return {
        "id": f"0190a000-0000-7000-8000-{i:012d}",
        "name": "delivery.test",
        "timestamp": datetime(2026, 1, 2, tzinfo=UTC),
        "data": {"i": i, **data},
        "context": {"user_id": 1},
    }


def ids(body: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in body]


def test_buffered_delivery_retries_a_503_after_its_retry_after(
    server: HTTPRecorder, tmp_path: Path
) -> None:
    http = HTTPBackend(server.url)
    # Warm up: the delivery worker times Retry-After from the start of an attempt,
    # and a first attempt also opens the client and the connection.
    http.send(make_event(99))
    server.requests.clear()
    server.reply(503, headers={"Retry-After": "0.4"})
    delivery = DeliveryBackend(
        http,
        name="http",
        max_delay=0.05,
        retry=FAST_RETRY,
        dead_letters=tmp_path / "dead.db",
    )
    try:
        for i in range(3):
            delivery.send(make_event(i))
        assert delivery.flush(10.0) is True
    finally:
        delivery.close()
    first, retried = server.requests[0], server.requests[1]
    assert ids(retried.json()) == ids(first.json())  # the same batch, sent again
    assert retried.at - first.at >= 0.35  # not before the server's Retry-After
    delivered = {i for request in server.requests[1:] for i in ids(request.json())}
    assert delivered == {make_event(i)["id"] for i in range(3)}
    assert delivery.dead_letters is not None and delivery.dead_letters.count() == 0


def test_a_400_goes_to_dead_letters_without_a_retry(server: HTTPRecorder, tmp_path: Path) -> None:
    server.reply(400)
    delivery = DeliveryBackend(
        HTTPBackend(server.url),
        name="http",
        mode="sync",
        retry=FAST_RETRY,
        dead_letters=tmp_path / "dead.db",
    )
    try:
        delivery.send(make_event(1, password="hunter2-secret"))
        assert len(server.requests) == 1
        assert delivery.dead_letters is not None
        [letter] = delivery.dead_letters.select()
    finally:
        delivery.close()
    assert letter.event_id == make_event(1)["id"]
    assert letter.backend == "http"
    assert "HTTP 400" in letter.reason and "hunter2" not in letter.reason


def test_a_timeout_is_retried_until_delivered(server: HTTPRecorder, tmp_path: Path) -> None:
    server.reply(hang=True)
    delivery = DeliveryBackend(
        HTTPBackend(server.url, timeout=0.3),
        name="http",
        mode="sync",
        retry=FAST_RETRY,
        dead_letters=tmp_path / "dead.db",
    )
    try:
        delivery.send(make_event(7))
    finally:
        delivery.close()
    assert [ids(r.json()) for r in server.wait_for(2)] == [[make_event(7)["id"]]] * 2
    assert delivery.dead_letters is not None and delivery.dead_letters.count() == 0


class WorkerEncodings:
    """`orjson` for `eventtracking.serialization`, counting the worker thread's dumps calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(orjson, name)

    def dumps(self, *args: Any, **kwargs: Any) -> bytes:
        if threading.current_thread().name.startswith("eventtracking-delivery"):
            self.calls += 1
        return orjson.dumps(*args, **kwargs)


def test_durable_delivery_posts_the_journal_bytes_without_encoding_again(
    server: HTTPRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = WorkerEncodings()
    monkeypatch.setattr(serialization, "orjson", counting)
    delivery = DeliveryBackend(
        HTTPBackend(server.url),
        name="http",
        mode="durable",
        journal_dir=tmp_path / "j",
        max_delay=60.0,  # nothing goes out before the flush
    )
    sent = [make_event(i) for i in range(10)]
    emitted = [serialization.dumps(e) for e in sent]  # each one's journal record
    try:
        for e in sent:
            delivery.send(e)
        for e in sent:
            e["data"]["i"] = -1  # changed after emit: what was emitted still goes out
        assert delivery.flush(10.0) is True
    finally:
        delivery.close()
    [request] = server.requests
    assert request.body == b"[" + b",".join(emitted) + b"]"
    assert counting.calls == 0  # the worker encoded nothing
