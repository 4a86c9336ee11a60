"""Every change to a tracker's configuration takes effect at its next event."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from eventtracking import diagnostics
from eventtracking.backends.routing import RoutingBackend
from eventtracking.exceptions import SerializationError
from eventtracking.locator import ThreadLocalContextLocator
from eventtracking.processors.exceptions import EventEmissionExit
from eventtracking.testing import InMemoryBackend, capture_events
from eventtracking.tracker import Tracker


def names(backend: InMemoryBackend) -> list[str]:
    return backend.names()


def test_backends_added_replaced_and_removed_in_any_way_are_seen_by_the_next_event() -> None:
    first, second, third = InMemoryBackend(), InMemoryBackend(), InMemoryBackend()
    t = Tracker({"a": first})
    t.emit("e1", {})
    t.routing_backend.register_backend("b", second)
    t.emit("e2", {})
    t.backends["c"] = third  # the Open edX property, changed in place
    t.emit("e3", {})
    del t.backends["a"]
    t.emit("e4", {})
    t.backends.pop("b")
    t.emit("e5", {})
    t.routing_backend.backends = {"a": first}  # replaced, as capture_events does
    t.emit("e6", {})
    t.backends.clear()
    t.emit("e7", {})
    t.backends.update(b=second)
    t.emit("e8", {})
    t.routing_backend.backends |= {"a": first}
    t.emit("e9", {})
    assert names(first) == ["e1", "e2", "e3", "e6", "e9"]
    assert names(second) == ["e2", "e3", "e4", "e8", "e9"]
    assert names(third) == ["e3", "e4", "e5"]


def test_processors_added_in_place_or_replaced_run_from_the_next_event() -> None:
    mem = InMemoryBackend()
    t = Tracker({"mem": mem})
    t.emit("kept", {})

    def drop(event: dict[str, Any]) -> None:
        raise EventEmissionExit

    t.processors.append(drop)  # in place: the list is read for every event
    t.emit("dropped", {})
    t.routing_backend.processors = []
    t.emit("kept again", {})
    t.routing_backend.processors = [drop]
    t.emit("dropped again", {})
    assert names(mem) == ["kept", "kept again"]


def test_documenting_a_type_after_the_first_event_turns_validation_on() -> None:
    mem = InMemoryBackend()
    t = Tracker({"mem": mem}, envelope="full")
    t.emit("page.viewed", {"url": "/a"})
    assert "meta" not in mem.events[-1]
    version = t.register("page.viewed", "A page was shown.", {"url": "The page."})
    t.emit("page.viewed", {"url": "/b"})
    assert mem.events[-1]["meta"]["type"] == version.id


def test_changing_strict_envelope_or_locator_after_construction_takes_effect() -> None:
    mem = InMemoryBackend()
    t = Tracker({"mem": mem}, envelope="full")
    t.register("four.keys", "Documented, so a full envelope would carry meta.", {})
    t.envelope = "openedx"
    t.emit("four.keys", {})
    assert set(mem.events[-1]) == {"name", "timestamp", "data", "context"}
    t.envelope = "full"
    t.strict = True
    with pytest.raises(SerializationError, match=r"data\.value"):
        t.emit("strict.now", {"value": object()})
    t.strict = False
    locator = ThreadLocalContextLocator()
    t.context_locator = locator
    locator.enter("request", {"user_id": 7})
    t.emit("located", {})
    assert mem.events[-1]["context"] == {"user_id": 7}
    with pytest.raises(ValueError, match=r"envelope must be one of"):
        t.envelope = "short"  # type: ignore[assignment]


def test_a_closed_tracker_refuses_to_emit() -> None:
    t = Tracker({"mem": InMemoryBackend()})
    t.emit("before", {})
    t.close()
    with pytest.raises(RuntimeError, match="closed"):
        t.emit("after", {})


def test_an_emit_kept_in_a_variable_follows_every_later_change() -> None:
    first, second = InMemoryBackend(), InMemoryBackend()
    t = Tracker({"a": first})
    emit = t.emit  # as modules do at import time
    t.routing_backend.register_backend("b", second)
    emit("after register", {})
    with capture_events(t) as captured:
        emit("captured", {})
    assert names(first) == ["after register", "captured"]
    assert names(second) == ["after register", "captured"]
    assert [e["name"] for e in captured] == ["captured"]
    t.close()
    with pytest.raises(RuntimeError, match="closed"):
        emit("after close", {})


def test_a_mocked_emit_survives_a_configuration_change_and_is_undone_cleanly() -> None:
    first, second = InMemoryBackend(), InMemoryBackend()
    t = Tracker({"a": first})
    with mock.patch.object(t, "emit") as patched:
        t.routing_backend.register_backend("b", second)  # builds a new plan meanwhile
        t.emit("seen by the mock", {})
    patched.assert_called_once_with("seen by the mock", {})
    assert names(first) == names(second) == []
    t.routing_backend.register_backend("c", InMemoryBackend())
    t.emit("after", {})
    assert names(first) == names(second) == ["after"]


def test_patching_emit_on_the_class_reaches_existing_trackers() -> None:
    mem = InMemoryBackend()
    t = Tracker({"mem": mem})
    with mock.patch.object(Tracker, "emit") as patched:
        t.emit("patched", {})
    patched.assert_called_once_with("patched", {})
    assert names(mem) == []
    t.emit("real", {})
    assert names(mem) == ["real"]


def test_a_backend_send_patched_on_the_instance_is_the_one_called() -> None:
    mem = InMemoryBackend()
    t = Tracker({"mem": mem})
    t.emit("first", {})
    with mock.patch.object(mem, "send") as send:
        t.emit("patched", {"n": 1})
    send.assert_called_once()
    assert send.call_args.args[0]["name"] == "patched"
    assert names(mem) == ["first"]


def test_a_failing_lone_backend_is_counted_and_never_raises() -> None:
    class Broken:
        def send(self, event: dict[str, Any]) -> None:
            raise OSError("disk full")

    t = Tracker({"broken": Broken()})
    before = t.stats().get("backend.broken.errors", 0)
    t.emit("lost", {})
    assert t.stats()["backend.broken.errors"] == before + 1


def test_one_failing_backend_among_several_never_stops_the_others() -> None:
    class Broken:
        def send(self, event: dict[str, Any]) -> None:
            raise OSError("disk full")

    first, last = InMemoryBackend(), InMemoryBackend()
    t = Tracker({"a": first, "b": Broken(), "c": last})
    before = t.stats().get("backend.b.errors", 0)
    t.emit("fan.out", {})
    assert names(first) == names(last) == ["fan.out"]
    assert t.stats()["backend.b.errors"] == before + 1


def test_a_routing_backend_subclass_routes_every_event_itself() -> None:
    seen: list[str] = []

    class Counting(RoutingBackend):
        def send(self, event: Any) -> None:
            seen.append(event["name"])
            super().send(event)

    mem = InMemoryBackend()
    t = Tracker()
    t.routing_backend = Counting({"mem": mem})
    t.emit("routed", {})
    assert seen == ["routed"]
    assert names(mem) == ["routed"]


def test_input_of_other_types_is_passed_through() -> None:
    mem = InMemoryBackend()
    t = Tracker({"mem": mem})
    items = {"a": 1}.items()
    t.emit(None, None)
    t.emit("named", items)  # type: ignore[arg-type]
    assert [e["name"] for e in mem.events] == ["unknown", "named"]
    assert mem.events[0]["data"] == {}
    # A backend that keeps events gets a copy, as with Open edX's deepcopy;
    # what cannot be copied is shared (Open edX raised TypeError out of emit).
    assert mem.events[1]["data"] is items
    assert diagnostics.snapshot().get("events.uncopyable", 0) >= 1


def test_a_subclass_may_set_settings_before_calling_tracker_init() -> None:
    class Early(Tracker):
        def __init__(self) -> None:
            self.strict = False  # a setter, before Tracker.__init__ has run
            super().__init__({"mem": InMemoryBackend()})

    t = Early()
    t.emit("works", {})
    assert names(t.get_backend("mem")) == ["works"]


@pytest.mark.parametrize("method", ["send", "send_to_backends"])
def test_a_routing_method_patched_on_the_instance_is_called_until_unpatched(method: str) -> None:
    memory = InMemoryBackend()
    t = Tracker({"m": memory})
    routing = t.routing_backend
    with mock.patch.object(routing, method) as patched:
        t.emit("while.patched", {})
    assert patched.call_count == 1
    assert patched.call_args.args[0]["name"] == "while.patched"
    assert names(memory) == []  # the mock took the event instead of the routes
    t.emit("after", {})
    assert names(memory) == ["after"]


def test_a_routing_method_assigned_and_deleted_on_the_instance() -> None:
    memory = InMemoryBackend()
    t = Tracker({"m": memory})
    seen: list[Any] = []
    t.routing_backend.send_to_backends = seen.append  # type: ignore[method-assign]
    t.emit("assigned", {})
    del t.routing_backend.send_to_backends
    t.emit("deleted", {})
    assert [e["name"] for e in seen] == ["assigned"]
    assert names(memory) == ["deleted"]


def test_a_subclass_that_routes_its_own_way_is_called() -> None:
    class Doubling(RoutingBackend):
        def send_to_backends(self, event: Any) -> None:
            super().send_to_backends(event)
            super().send_to_backends(event)

    memory = InMemoryBackend()
    t = Tracker()
    t.routing_backend = Doubling({"m": memory})
    t.emit("twice", {})
    assert names(memory) == ["twice", "twice"]
