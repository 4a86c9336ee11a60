"""Shared set-up for the console tests: a filled store (SQLite or PostgreSQL) and a real server.

`fixture_store` fills a store with a known set of events (`EXPECTED`), written
through the library's own backends with ``envelope='full'`` and one
documented type, at fixed offsets before now. `serve` runs the console's
ASGI app under uvicorn on a free 127.0.0.1 port in a thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from browser_support import chromium
from services import pg_table, require_driver, table_url

require_driver("starlette", "console")
require_driver("prometheus_client", "console")

import uvicorn  # noqa: E402

from eventtracking.console import Console  # noqa: E402
from eventtracking.console.app import create_app  # noqa: E402
from eventtracking.console.factory import open_console  # noqa: E402
from eventtracking.tracker import Tracker  # noqa: E402

# (name, minutes before now, context, data): the store every console test reads.
EVENTS: list[tuple[str, int, dict[str, Any], dict[str, Any]]] = [
    ("video.played", 10, {"user_id": 7}, {"video_id": "v1"}),
    ("video.played", 10, {"user_id": 7}, {"video_id": "v2"}),
    ("video.played", 12, {"user_id": 8}, {"video_id": "v1"}),
    ("page.viewed", 5, {"user_id": 8}, {"path": "/a"}),
    ("page.viewed", 5, {"user_id": 9}, {"path": "/b"}),
    ("page.viewed", 90, {"user_id": 7}, {"path": "/c"}),  # outside the last hour
]


class At:
    """A processor that stamps each event with `when` (so tests choose the times)."""

    def __init__(self) -> None:
        self.when: datetime | None = None

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.when is not None:
            event["timestamp"] = self.when
        return event


@dataclass
class Filled:
    """A filled store: where it is, the tracker that writes to it, and the time it was filled."""

    location: str
    tracker: Tracker
    clock: At
    now: datetime

    def emit(self, name: str, data: dict[str, Any], **context: Any) -> None:
        """Write one more event now (stored before this returns)."""
        self.clock.when = None
        with self.tracker.context("request", context):
            self.tracker.emit(name, data)


def _tracker(backend: Any) -> tuple[Tracker, At]:
    clock = At()
    tracker = Tracker({"store": backend}, processors=[clock], envelope="full")
    tracker.register("video.played", "A learner played a video", {"video_id": "Which video"})
    return tracker, clock


def fill(tracker: Tracker, clock: At, now: datetime) -> None:
    """Emit `EVENTS` at their times before `now`."""
    for name, minutes, context, data in EVENTS:
        clock.when = now - timedelta(minutes=minutes)
        with tracker.context("request", context):
            tracker.emit(name, data)
    clock.when = None


@pytest.fixture(params=["sqlite", "postgres"])
def filled(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Filled]:
    """The `EVENTS` store, once in SQLite and once in the real PostgreSQL."""
    now = datetime.now(UTC)
    if request.param == "sqlite":
        from eventtracking.backends.sqlite import SQLiteBackend

        path = str(tmp_path / "events.db")
        tracker, clock = _tracker(SQLiteBackend(path))
        fill(tracker, clock, now)
        yield Filled(path, tracker, clock, now)
        tracker.close()
        return
    require_driver("psycopg", "postgres")
    from eventtracking.backends.postgres import PostgresBackend

    with pg_table("et_console") as (dsn, table):
        tracker, clock = _tracker(PostgresBackend(dsn, table))
        fill(tracker, clock, now)
        yield Filled(table_url(dsn, table), tracker, clock, now)
        tracker.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(console: Console, token: str | None = None) -> Iterator[str]:
    """Run the console's app under uvicorn on 127.0.0.1; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(console, token),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the console's server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def console_over(location: str, **options: Any) -> Iterator[Console]:
    """A started console over `location`, closed afterwards."""
    console = open_console(location, **options)
    try:
        yield console
    finally:
        console.close()


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver (skips, or fails in CI, without it)."""
    with chromium(tmp_path / "profile", monkeypatch, "--window-size=1280,900") as browser:
        yield browser
