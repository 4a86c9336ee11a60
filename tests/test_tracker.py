"""The tracker's public API and its Open edX compatibility."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventtracking import track, tracker
from eventtracking.backends.routing import RoutingBackend
from eventtracking.exceptions import EventError, SerializationError
from eventtracking.locator import DefaultContextLocator, ThreadLocalContextLocator
from eventtracking.testing import InMemoryBackend, capture_events


def make(**kwargs: Any) -> tuple[tracker.Tracker, InMemoryBackend]:
    mem = InMemoryBackend()
    return tracker.Tracker({"mem": mem}, **kwargs), mem


def test_readme_example_verbatim_gives_the_documented_contexts() -> None:
    mem = InMemoryBackend()
    track.register_tracker(track.Tracker({"mem": mem}))
    t = track.get_tracker()
    t.enter_context("outer", {"user_id": 10938})
    t.emit("navigation.request", {"url": "http://www.edx.org/some/path/1"})
    with t.context({"user_id": 11111, "session_id": "2987lkjdyoioey"}):
        t.emit("navigation.request", {"url": "http://www.edx.org/some/path/2"})
    t.emit("navigation.request", {"url": "http://www.edx.org/some/path/3"})
    assert [e["context"] for e in mem.events] == [
        {"user_id": 10938},
        {"user_id": 11111, "session_id": "2987lkjdyoioey"},
        {"user_id": 10938},
    ]
    assert [e["data"]["url"][-1] for e in mem.events] == ["1", "2", "3"]


def test_event_shape_full_envelope() -> None:
    t, mem = make(envelope="full")
    before = datetime.now(UTC)
    t.emit("a.b", {"x": 1})
    (event,) = mem.events
    assert list(event) == ["id", "name", "timestamp", "data", "context"]
    assert event["name"] == "a.b" and event["data"] == {"x": 1} and event["context"] == {}
    assert event["timestamp"].tzinfo is not None
    assert event["timestamp"].utcoffset() == timedelta(0)
    assert before <= event["timestamp"] <= datetime.now(UTC)
    parsed = uuid.UUID(event["id"])
    assert parsed.version == 7 and str(parsed) == event["id"]


def test_the_default_envelope_is_open_edx_four_keys_in_their_order() -> None:
    t, mem = make()
    t.emit("a.b", {"x": 1})
    assert list(mem.events[0]) == ["name", "timestamp", "data", "context"]
    assert t.envelope == "openedx"


def test_bad_envelope_is_rejected() -> None:
    with pytest.raises(ValueError, match="envelope"):
        tracker.Tracker({}, envelope="mini")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [None, ""])
def test_missing_name_is_unknown_and_missing_data_is_empty(name: str | None) -> None:
    t, mem = make()
    t.emit(name)
    assert mem.events[0]["name"] == "unknown"
    assert mem.events[0]["data"] == {}


def test_module_level_emit_and_registry() -> None:
    mem = InMemoryBackend()
    tracker.register_tracker(tracker.Tracker({"mem": mem}))
    tracker.emit("x.y", {"a": 1})
    track.emit("x.z")
    assert mem.names() == ["x.y", "x.z"]
    other = tracker.Tracker()
    tracker.register_tracker(other, "other")
    assert tracker.get_tracker("other") is other
    with pytest.raises(KeyError):
        tracker.get_tracker("missing")


def test_default_tracker_logs_json_to_tracking_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tracking"):
        track.get_tracker().emit("navigation.request", {"url": "/x"})
    records = [r for r in caplog.records if r.name == "tracking"]
    assert len(records) == 1
    assert records[0].getMessage().startswith('{"name": "navigation.request", "timestamp": "')
    assert track.get_tracker() is tracker.get_tracker()


def test_track_module_mirrors_tracker_module() -> None:
    lazy = {"emit", "get_tracker"}  # track builds the default tracker on first use
    for name in tracker.__all__:
        if name in track.__all__ and name not in lazy:
            assert getattr(track, name) is getattr(tracker, name)
    assert track.get_tracker is not tracker.get_tracker  # the one that builds on first use


def test_tracker_get_tracker_raises_key_error_until_one_is_registered() -> None:
    with pytest.raises(KeyError):
        tracker.get_tracker()
    with pytest.raises(KeyError):
        tracker.emit("x")
    built = track.get_tracker()
    assert tracker.get_tracker() is built


def test_contexts_override_in_entry_order_and_exit_in_any_order() -> None:
    t, mem = make()
    t.enter_context("a", {"k": "a", "only_a": 1})
    t.enter_context("b", {"k": "b"})
    t.enter_context("c", {"k": "c", "only_c": 3})
    t.emit("e1")
    t.exit_context("c")
    t.emit("e2")
    t.exit_context("a")
    t.emit("e3")
    t.exit_context("b")
    t.emit("e4")
    assert [e["context"] for e in mem.events] == [
        {"k": "c", "only_a": 1, "only_c": 3},
        {"k": "b", "only_a": 1},
        {"k": "b"},
        {},
    ]


def test_exit_unknown_context_raises_key_error() -> None:
    t, _ = make()
    with pytest.raises(KeyError):
        t.exit_context("nope")


def test_context_manager_two_forms_and_restores_shadowed_context() -> None:
    t, mem = make()
    t.enter_context("page", {"p": 1})
    with t.context("page", {"p": 2}):
        t.emit("inner")
    t.emit("after")
    with pytest.raises(RuntimeError), t.context({"tmp": True}):
        raise RuntimeError("boom")
    t.emit("after-error")
    assert [e["context"] for e in mem.events] == [{"p": 2}, {"p": 1}, {"p": 1}]


def test_context_rejects_bad_arguments() -> None:
    t, _ = make()
    with pytest.raises(TypeError), t.context("only-a-name"):  # type: ignore[arg-type]
        pass
    with pytest.raises(TypeError, match="mapping"):
        t.enter_context("x", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scope"):
        t.enter_context("x", {}, scope="galaxy")  # type: ignore[arg-type]


def test_resolve_context_is_a_fresh_dict() -> None:
    t, _ = make()
    t.enter_context("a", {"k": 1})
    first = t.resolve_context()
    first["k"] = 99
    assert t.resolve_context() == {"k": 1}


def test_located_context_is_the_live_openedx_mapping() -> None:
    t, mem = make()
    t.located_context["legacy"] = {"via": "mapping"}
    assert dict(t.located_context) == {"legacy": {"via": "mapping"}}
    t.emit("e")
    del t.located_context["legacy"]
    t.emit("f")
    assert [e["context"] for e in mem.events] == [{"via": "mapping"}, {}]


class DictLocator:
    """A custom locator with only the Open edX `get()` method."""

    def __init__(self) -> None:
        self.contexts: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        return self.contexts


def test_custom_openedx_style_locator_is_supported() -> None:
    t, mem = make(context_locator=DictLocator())
    with t.context("a", {"x": 1}):
        t.emit("e")
    assert mem.events[0]["context"] == {"x": 1}
    with pytest.raises(ValueError, match="scope"):
        t.enter_context("p", {}, scope="process")


def test_backends_processors_and_get_backend() -> None:
    mem_b, mem_a = InMemoryBackend(), InMemoryBackend()

    def proc(event: dict[str, Any]) -> None:
        return None

    t = tracker.Tracker({"b": mem_b, "a": mem_a}, processors=[proc])
    assert list(t.backends) == ["a", "b"]
    assert t.processors == [proc]
    assert t.get_backend("a") is mem_a
    with pytest.raises(KeyError):
        t.get_backend("zzz")
    assert isinstance(t.routing_backend, RoutingBackend)


def test_backend_without_send_is_value_error() -> None:
    with pytest.raises(ValueError, match="send"):
        tracker.Tracker({"bad": object()})


def test_caller_data_is_not_changed_by_processors() -> None:
    def mutate(event: dict[str, Any]) -> dict[str, Any]:
        event["data"]["added"] = True
        event["context"]["added"] = True
        return event

    t, mem = make(processors=[mutate])
    data = {"x": 1}
    t.enter_context("c", {"k": 1})
    t.emit("e", data)
    assert data == {"x": 1}
    assert t.resolve_context() == {"k": 1}
    assert mem.events[0]["data"] == {"x": 1, "added": True}


class Boom:
    def send(self, event: dict[str, Any]) -> None:
        raise OSError("disk on fire")


def test_failing_backend_never_reaches_the_caller_and_is_counted() -> None:
    mem = InMemoryBackend()
    t = tracker.Tracker({"a-boom": Boom(), "b-mem": mem})
    t.emit("e1")
    t.emit("e2")
    assert mem.names() == ["e1", "e2"]
    assert t.stats()["backend.a-boom.errors"] == 2


def test_each_tracker_counts_its_own_failures_and_the_process_keeps_the_totals() -> None:
    from eventtracking import diagnostics
    from eventtracking.backends.logger import LoggerBackend
    from eventtracking.processors.sample import Sampler

    def failing_processor(event: dict[str, Any]) -> None:
        raise ValueError("processor bug")

    nested = RoutingBackend(backends={"boom": Boom()}, processors=[failing_processor])
    logging.getLogger("eventtracking.tests.small").setLevel(logging.INFO)  # else nothing is encoded
    small = LoggerBackend("eventtracking.tests.small", max_event_size=10)
    a = tracker.Tracker({"boom": Boom(), "nested": nested, "small": small})
    b = tracker.Tracker({"boom": Boom()}, processors=[Sampler({"drop.*": 0.0})])
    for _ in range(3):
        a.emit("e")
    b.emit("e")
    b.emit("drop.me")

    stats_a, stats_b = a.stats(), b.stats()
    assert stats_a["backend.boom.errors"] == 6  # 3 top-level + 3 in the nested tree
    assert stats_a["processor.errors"] == 3
    assert stats_a["logger.oversize_dropped"] == 3
    assert "sampler.dropped" not in stats_a
    assert stats_b["backend.boom.errors"] == 1
    assert stats_b["sampler.dropped"] == 1
    assert not {"processor.errors", "logger.oversize_dropped"} & set(stats_b)
    totals = diagnostics.snapshot()
    assert totals["backend.boom.errors"] == 7 and totals["processor.errors"] == 3
    assert totals["logger.oversize_dropped"] == 3 and totals["sampler.dropped"] == 1


def test_flush_close_context_manager_and_use_after_close() -> None:
    mem = InMemoryBackend()
    with tracker.Tracker({"mem": mem}) as t:
        t.emit("e")
        assert t.flush(1.0) is True
    assert t.closed and mem.closed
    t.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        t.emit("late")


def test_flush_reports_a_backend_that_cannot_finish() -> None:
    class Slow(InMemoryBackend):
        def flush(self, timeout: float = 10.0) -> bool:
            return False

    t = tracker.Tracker({"slow": Slow(), "mem": InMemoryBackend()})
    assert t.flush(0.1) is False


class Unencodable:
    def __repr__(self) -> str:
        return "Unencodable()"


def test_strict_mode_raises_naming_event_and_field_path() -> None:
    t, mem = make(strict=True)
    with pytest.raises(SerializationError) as info:
        t.emit("bad.event", {"outer": {"inner": [1, Unencodable()]}})
    assert info.value.event_name == "bad.event"
    assert info.value.path == "data.outer.inner.1"
    assert "bad.event" in str(info.value) and "data.outer.inner.1" in str(info.value)
    assert mem.events == []
    with pytest.raises(EventError, match="name must be a str"):
        t.emit(42)  # type: ignore[arg-type]
    with pytest.raises(EventError, match="data must be a mapping"):
        t.emit("x", ["list"])  # type: ignore[arg-type]


def test_names_and_data_of_any_type_are_kept_as_given_as_in_open_edx() -> None:
    t, mem = make()
    marker = ("a", "tuple")  # not a str: kept as given (a copy, for a backend that keeps it)
    t.emit(42, ["a"])  # type: ignore[arg-type]
    t.emit(marker, "answer=3")  # type: ignore[arg-type]
    t.emit("page_close", "")  # browsers send '' as data: 'data or {}' gives {}
    t.emit(0, 0)  # type: ignore[arg-type]
    assert [e["name"] for e in mem.events] == [42, marker, "page_close", "unknown"]
    assert [e["data"] for e in mem.events] == [["a"], "answer=3", {}, {}]
    assert "events.repaired_name" not in t.stats()


def test_mapping_data_is_accepted_as_dict() -> None:
    from types import MappingProxyType

    t, mem = make(strict=True)
    t.emit("e", MappingProxyType({"a": 1}))
    assert mem.events[0]["data"] == {"a": 1}


def test_capture_events_on_default_tracker() -> None:
    t = tracker.Tracker()
    tracker.register_tracker(t)
    with capture_events() as events:
        tracker.emit("captured", {"n": 1})
    tracker.emit("not-captured")
    assert [e["name"] for e in events] == ["captured"]
    assert "capture" not in t.backends
    with capture_events(t) as again, pytest.raises(ValueError), capture_events(t):
        pass
    assert again == []


def test_strict_must_be_bool() -> None:
    with pytest.raises(TypeError):
        tracker.Tracker(strict="yes")  # type: ignore[arg-type]


def test_locators_are_exported_with_openedx_names() -> None:
    assert tracker.Tracker().context_locator.__class__ is DefaultContextLocator
    t = tracker.Tracker(context_locator=ThreadLocalContextLocator())
    t.enter_context("a", {"x": 1})
    assert t.resolve_context() == {"x": 1}
