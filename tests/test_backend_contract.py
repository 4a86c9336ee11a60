"""Every backend under the one contract (see backend_contract.py).

Each entry of `BACKENDS` builds a fresh backend with a way to read back what
reached its sink, and declares what of the protocol it offers; a backend
that offers less says why. PostgreSQL and Redis run against the real servers
(skipped locally when they are absent, required in CI); HTTP against a local
recording server; Celery in eager mode; Segment's ``analytics`` module and
the event bus through stand-ins for what the host application provides.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import pkgutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest

from backend_contract import CHECKS, FULL, STORE, STORE_CHECKS, Capabilities, Subject
from eventtracking.backends.jsonl import JSONLinesBackend, read_jsonl
from eventtracking.backends.logger import LoggerBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.testing import (
    BlockingBackend,
    DownBackend,
    FlakyBackend,
    InMemoryBackend,
    RecordingBackend,
    RejectingBackend,
)
from eventtracking.tracker import Tracker, register_tracker
from services import pg_table, redis_stream, require_driver, table_url

Factory = Callable[[Path], contextlib.AbstractContextManager[Subject]]

OPEN_EDX_ROUTING = (
    "Open edX's routing backends keep routing after close: their closed backends "
    "refuse, which is logged and counted (backend.<name>.errors); Tracker.emit raises "
    "after Tracker.close"
)


@dataclass(frozen=True)
class Entry:
    """The class a factory builds, the factory, what the class offers, and pytest marks."""

    cls: str
    factory: Factory
    caps: Capabilities = FULL
    marks: tuple[Any, ...] = field(default=())


# -- in memory and on local disk ------------------------------------------------------------


def recorded(backend: Any) -> contextlib.AbstractContextManager[Subject]:
    """A backend of `eventtracking.testing` that records into `events`."""

    @contextlib.contextmanager
    def subject() -> Iterator[Subject]:
        yield Subject(backend, lambda: list(backend.events))

    return subject()


def memory_subject(tmp: Path) -> contextlib.AbstractContextManager[Subject]:
    return recorded(InMemoryBackend())


def recording_subject(tmp: Path) -> contextlib.AbstractContextManager[Subject]:
    return recorded(RecordingBackend())


def recovered_subject(tmp: Path) -> contextlib.AbstractContextManager[Subject]:
    backend = DownBackend()
    backend.recover()
    return recorded(backend)


def flaky_subject(tmp: Path) -> contextlib.AbstractContextManager[Subject]:
    return recorded(FlakyBackend(failures=0))


def rejecting_subject(tmp: Path) -> contextlib.AbstractContextManager[Subject]:
    return recorded(RejectingBackend(lambda e: False))


def released_subject(tmp: Path) -> contextlib.AbstractContextManager[Subject]:
    backend = BlockingBackend()
    backend.release()
    return recorded(backend)


@contextlib.contextmanager
def sqlite_subject(tmp: Path) -> Iterator[Subject]:
    path = tmp / "events.db"
    backend = SQLiteBackend(path, batch_size=2)
    reader = SQLiteStore(path)
    try:
        yield Subject(backend, lambda: reader.query(Query(limit=None)), STORE)
    finally:
        backend.close()
        reader.close()


@contextlib.contextmanager
def jsonl_subject(tmp: Path) -> Iterator[Subject]:
    path = tmp / "events.jsonl"
    backend = JSONLinesBackend(path)
    try:
        yield Subject(backend, lambda: read_jsonl(path)[0])
    finally:
        backend.close()


LOGGER_CAPS = Capabilities(
    send_batch=False,
    flush=False,
    close=False,
    refuses_after_close=False,
    why="Open edX's LoggerBackend has only send: Python logging owns the handlers",
)


@contextlib.contextmanager
def logger_subject(tmp: Path) -> Iterator[Subject]:
    name = f"eventtracking.contract.{uuid.uuid4().hex[:8]}"
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = Keep()
    logger.addHandler(handler)
    try:
        yield Subject(LoggerBackend(name), lambda: [json.loads(x) for x in lines], LOGGER_CAPS)
    finally:
        logger.removeHandler(handler)


# -- routing ----------------------------------------------------------------------------------

ROUTING_CAPS = Capabilities(refuses_after_close=False, why=OPEN_EDX_ROUTING)


def scribble(event: Any) -> None:
    """A processor that changes the event at every depth: the caller must never see it."""
    event["data"]["nested"]["list"].append("processed")
    event["context"]["processed"] = True


@contextlib.contextmanager
def routing_subject(tmp: Path) -> Iterator[Subject]:
    sink = InMemoryBackend()
    backend = RoutingBackend(backends={"sink": sink}, processors=[scribble])
    yield Subject(backend, lambda: list(sink.events), ROUTING_CAPS)


def async_routing_subject(batch: bool) -> Factory:
    @contextlib.contextmanager
    def subject(tmp: Path) -> Iterator[Subject]:
        require_driver("celery", "celery")
        from celery import Celery

        from eventtracking.backends.async_routing import AsyncRoutingBackend

        app = Celery("contract", broker="memory://", set_as_current=False)
        app.conf.update(task_always_eager=True, task_eager_propagates=False)
        sink = InMemoryBackend()
        backend = AsyncRoutingBackend(
            backends={"sink": sink}, backend_name="contract", batch=batch, app=app
        )
        register_tracker(Tracker({"contract": backend}))  # where the (eager) task finds it
        try:
            yield Subject(backend, lambda: list(sink.events))
        finally:
            backend.close()

    return subject


EVENT_BUS_CAPS = Capabilities(
    refuses_after_close=False,
    why=f"publishing holds nothing that close releases; {OPEN_EDX_ROUTING}",
)


@contextlib.contextmanager
def event_bus_subject(tmp: Path) -> Iterator[Subject]:
    require_driver("openedx_events", "openedx")
    require_driver("edx_toggles", "openedx")
    from django.test import override_settings
    from openedx_events.analytics.signals import TRACKING_EVENT_EMITTED

    import django_support  # noqa: F401  (configures Django)
    from eventtracking.backends.event_bus import EventBusRoutingBackend

    published: list[dict[str, Any]] = []

    def listen(sender: Any, signal: Any, **kwargs: Any) -> None:
        log = kwargs["tracking_log"]
        published.append({"name": log.name, "data": json.loads(log.data)})

    TRACKING_EVENT_EMITTED.connect(listen, weak=False)
    try:
        with override_settings(
            SEND_TRACKING_EVENT_EMITTED_SIGNAL=True, EVENT_BUS_TRACKING_LOGS=["contract.test"]
        ):
            backend = EventBusRoutingBackend(backends={"sink": InMemoryBackend()})
            yield Subject(backend, lambda: list(published), EVENT_BUS_CAPS)
    finally:
        TRACKING_EVENT_EMITTED.disconnect(listen)


# -- the delivery wrapper ---------------------------------------------------------------------

DELIVERY_CAPS = Capabilities(
    close_delivers=False,
    why="close(timeout=0.0) waits for nothing: Tracker.close flushes first, and what is "
    "left is journaled (or counted as dropped)",
)


def delivery_subject(**options: Any) -> Factory:
    @contextlib.contextmanager
    def subject(tmp: Path) -> Iterator[Subject]:
        journal = {"journal_dir": tmp / "journal"} if options.get("mode") == "durable" else {}
        sink = RecordingBackend()
        backend = DeliveryBackend(sink, name="contract", max_delay=60, **options, **journal)
        caps = FULL if options.get("mode") == "sync" else DELIVERY_CAPS
        try:
            yield Subject(backend, lambda: list(sink.events), caps)
        finally:
            backend.close()

    return subject


# -- network services -------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_subject(tmp: Path) -> Iterator[Subject]:
    from eventtracking.backends.postgres import PostgresBackend
    from eventtracking.store.postgres import PostgresStore

    with pg_table("et_contract") as (dsn, table):
        backend = PostgresBackend(dsn, table, batch_size=2)
        reader = PostgresStore(table_url(dsn, table), create=False)
        try:
            yield Subject(backend, lambda: reader.query(Query(limit=None)), STORE)
        finally:
            backend.close()
            reader.close()


@contextlib.contextmanager
def redis_subject(tmp: Path) -> Iterator[Subject]:
    import redis

    from eventtracking.backends.redis_stream import RedisStreamBackend

    with redis_stream("et-contract") as (url, stream):
        backend = RedisStreamBackend(url, stream, batch_size=2)
        client = redis.Redis.from_url(url)

        def read() -> list[dict[str, Any]]:
            return [orjson.loads(fields[b"event"]) for _, fields in client.xrange(stream)]

        try:
            yield Subject(backend, read)
        finally:
            backend.close()
            client.close()


@contextlib.contextmanager
def http_subject(tmp: Path) -> Iterator[Subject]:
    require_driver("httpx", "http")
    from eventtracking.backends.http import HTTPBackend
    from http_recorder import HTTPRecorder

    with HTTPRecorder() as server:
        backend = HTTPBackend(server.url)

        def read() -> list[dict[str, Any]]:
            return [event for request in server.requests for event in request.json()]

        try:
            yield Subject(backend, read)
        finally:
            backend.close()


@contextlib.contextmanager
def segment_http_subject(tmp: Path) -> Iterator[Subject]:
    require_driver("httpx", "http")
    from eventtracking.backends.segment_http import SegmentHTTPBackend
    from http_recorder import HTTPRecorder

    with HTTPRecorder() as server:
        backend = SegmentHTTPBackend("wk_contract", endpoint=server.url)

        def read() -> list[dict[str, Any]]:
            # Back from Segment's vocabulary to the event's, for the contract's reader.
            return [
                {"id": m["messageId"], "name": m["event"], "data": m["properties"]}
                for request in server.requests
                for m in request.json()["batch"]
            ]

        try:
            yield Subject(backend, read)
        finally:
            backend.close()


SEGMENT_CAPS = Capabilities(
    send_batch=False,
    flush=False,
    close=False,
    refuses_after_close=False,
    why="Open edX's SegmentBackend has only send: the host's analytics module owns "
    "its queue, flush and shutdown",
)


class Analytics:
    """Stands in for the ``analytics`` module the host application configures."""

    def __init__(self) -> None:
        self.tracked: list[dict[str, Any]] = []

    def track(self, user_id: Any, name: str, properties: dict[str, Any], **kwargs: Any) -> None:
        self.tracked.append(properties)


@contextlib.contextmanager
def segment_subject(tmp: Path) -> Iterator[Subject]:
    from eventtracking.backends import segment

    analytics = Analytics()
    with patch.object(segment, "analytics", analytics):
        yield Subject(segment.SegmentBackend(), lambda: list(analytics.tracked), SEGMENT_CAPS)


SERVICE = (pytest.mark.services,)
BACKENDS: dict[str, Entry] = {
    "memory": Entry("InMemoryBackend", memory_subject),
    "recording": Entry("RecordingBackend", recording_subject),
    "down-recovered": Entry("DownBackend", recovered_subject),
    "flaky": Entry("FlakyBackend", flaky_subject),
    "rejecting": Entry("RejectingBackend", rejecting_subject),
    "blocking-released": Entry("BlockingBackend", released_subject),
    "logger": Entry("LoggerBackend", logger_subject, LOGGER_CAPS),
    "jsonl": Entry("JSONLinesBackend", jsonl_subject),
    "sqlite": Entry("SQLiteBackend", sqlite_subject, STORE),
    "routing": Entry("RoutingBackend", routing_subject, ROUTING_CAPS),
    "async-routing": Entry("AsyncRoutingBackend", async_routing_subject(batch=False)),
    "async-routing-batched": Entry("AsyncRoutingBackend", async_routing_subject(batch=True)),
    "event-bus": Entry("EventBusRoutingBackend", event_bus_subject, EVENT_BUS_CAPS),
    "delivery-buffered": Entry("DeliveryBackend", delivery_subject(), DELIVERY_CAPS),
    "delivery-durable": Entry("DeliveryBackend", delivery_subject(mode="durable"), DELIVERY_CAPS),
    "delivery-sync": Entry("DeliveryBackend", delivery_subject(mode="sync")),
    "delivery-inline": Entry("DeliveryBackend", delivery_subject(mode="inline"), DELIVERY_CAPS),
    "http": Entry("HTTPBackend", http_subject),
    "segment-http": Entry("SegmentHTTPBackend", segment_http_subject),
    "segment": Entry("SegmentBackend", segment_subject, SEGMENT_CAPS),
    "postgres": Entry("PostgresBackend", postgres_subject, STORE, SERVICE),
    "redis": Entry("RedisStreamBackend", redis_subject, FULL, SERVICE),
}


# Known failures, by case id: each names its cause; strict, so a fix makes them fail.
KNOWN_BUGS: dict[str, Any] = {}


def cases() -> list[Any]:
    out = []
    for name, entry in BACKENDS.items():
        for check in CHECKS + (STORE_CHECKS if entry.caps.store else ()):
            label = f"{name}-{check.__name__.removeprefix('check_')}"
            marks = (*entry.marks, *([KNOWN_BUGS[label]] if label in KNOWN_BUGS else []))
            out.append(pytest.param(entry, check, id=label, marks=marks))
    return out


@pytest.mark.parametrize(("entry", "check"), cases())
def test_backend_honours_the_contract(
    entry: Entry, check: Callable[[Subject], None], tmp_path: Path
) -> None:
    with entry.factory(tmp_path) as subject:
        assert type(subject.backend).__name__ == entry.cls
        assert subject.caps == entry.caps, "the subject must declare what its entry declares"
        check(subject)


def test_every_backend_the_library_ships_is_under_the_contract() -> None:
    """A backend module added under eventtracking.backends must be added to BACKENDS too."""
    import eventtracking.backends as package

    shipped = set()
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"eventtracking.backends.{info.name}")
        except ImportError as exc:  # an extra that is not installed
            pytest.skip(f"eventtracking.backends.{info.name}: {exc}")
        shipped |= {
            name
            for name, value in vars(module).items()
            if isinstance(value, type)
            and value.__module__ == module.__name__
            and name.endswith("Backend")
        }
    covered = {entry.cls for entry in BACKENDS.values()}
    assert shipped <= covered, f"add these to BACKENDS: {sorted(shipped - covered)}"
