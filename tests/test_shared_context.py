"""One merged-context dict for every event, when every backend leaves events unchanged.

Emit hands each event a copy of the merged contexts, so that a backend that
changes ``event["context"]`` changes that event only (as Open edX, which
builds a new dict per event). When every backend of the tracker declares
``leaves_events_unchanged`` the copy is skipped: the events of one context
state share the merged dict, which is never changed once built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eventtracking import serialization
from eventtracking.backends.jsonl import JSONLinesBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.testing import InMemoryBackend
from eventtracking.tracker import Tracker


class Keeper:
    """Keeps the events it is given and promises never to change them."""

    leaves_events_unchanged = True

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.events.append(event)


class Stamper:
    """Changes each event's context in place, as a careless third-party backend might."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.seen.append(dict(event["context"]))
        event["context"]["stamped"] = len(self.seen)


def emit_three(tracker: Tracker) -> None:
    tracker.enter_context("outer", {"user_id": 1})
    tracker.emit("a", {})
    tracker.emit("b", {})
    with tracker.context("inner", {"course_id": "c1"}):
        tracker.emit("c", {})


def test_backends_that_leave_events_unchanged_share_one_context_per_state() -> None:
    keeper = Keeper()
    tracker = Tracker({"k": keeper})
    emit_three(tracker)
    a, b, c = keeper.events
    assert a["context"] is b["context"] == {"user_id": 1}
    assert c["context"] == {"user_id": 1, "course_id": "c1"}
    assert a["context"] == {"user_id": 1}  # entering a context built a new dict


def test_a_backend_that_may_change_events_gets_a_copy_per_event() -> None:
    keeper, stamper = Keeper(), Stamper()
    tracker = Tracker({"k": keeper, "s": stamper})  # one backend without the promise
    emit_three(tracker)
    a, b, _ = keeper.events
    assert a["context"] is not b["context"]
    # Each change stayed in its own event: the next one started clean.
    assert stamper.seen == [{"user_id": 1}, {"user_id": 1}, {"user_id": 1, "course_id": "c1"}]


def test_the_decision_follows_the_backends_as_they_change() -> None:
    keeper, memory = Keeper(), InMemoryBackend()
    tracker = Tracker({"k": keeper})
    tracker.enter_context("outer", {"user_id": 1})
    tracker.emit("a", {})
    tracker.emit("b", {})
    assert keeper.events[0]["context"] is keeper.events[1]["context"]
    tracker.routing_backend.register_backend("memory", memory)  # keeps events: no promise
    tracker.emit("c", {})
    tracker.emit("d", {})
    assert keeper.events[2]["context"] is not keeper.events[3]["context"]
    memory.events[0]["context"]["user_id"] = 99  # a test changing what it kept
    assert keeper.events[3]["context"] == {"user_id": 1}
    del tracker.routing_backend.backends["memory"]
    tracker.emit("e", {})
    tracker.emit("f", {})
    assert keeper.events[4]["context"] is keeper.events[5]["context"]


def test_processors_change_a_private_copy_of_a_shared_context() -> None:
    def stamp(event: dict[str, Any]) -> dict[str, Any]:
        event["context"]["stamped"] = True
        return event

    keeper, seen = Keeper(), Keeper()
    tracker = Tracker({"k": keeper, "branch": RoutingBackend({"seen": seen}, [stamp])})
    tracker.enter_context("outer", {"user_id": 1})
    tracker.emit("a", {})
    tracker.emit("b", {})
    assert [e["context"] for e in seen.events] == [{"user_id": 1, "stamped": True}] * 2
    assert [e["context"] for e in keeper.events] == [{"user_id": 1}] * 2


def test_a_delivery_backend_answers_for_the_backend_it_wraps(tmp_path: Path) -> None:
    jsonl = JSONLinesBackend(tmp_path / "events.jsonl")
    tracker = Tracker({"d": DeliveryBackend(jsonl, mode="inline", journal_dir=False)})
    assert tracker.routing_backend.shares_context
    tracker.enter_context("outer", {"user_id": 1})
    for n in range(3):
        tracker.emit("a", {"n": n})
    tracker.close()
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    events = [serialization.loads(line) for line in lines]
    assert [e["context"] for e in events] == [{"user_id": 1}] * 3
    assert [e["data"]["n"] for e in events] == [0, 1, 2]
    wrapped_memory = Tracker({"d": DeliveryBackend(InMemoryBackend(), mode="sync")})
    assert not wrapped_memory.routing_backend.shares_context
