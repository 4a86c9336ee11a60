"""What the caller gives emit and what backends do with the event stay apart, as in Open edX.

Open edX 4.x deep-copies every event in `RoutingBackend.send`: a backend
that changes the event, or keeps it while the caller changes its data dict,
can never reach the caller's objects nor the tracker's contexts. We copy
only for the backends that may need it: those that do not declare
``leaves_events_unchanged``; a delivery backend keeps its own copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from eventtracking import Tracker
from eventtracking._copies import isolated_copy, kept_copy
from eventtracking.backends.routing import COPY_NONE, RoutingBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.testing import InMemoryBackend, RecordingBackend


class Changing:
    """A backend of somebody else's that edits what it is given."""

    def send(self, event: dict[str, Any]) -> None:
        event["data"]["added"] = True
        event["context"]["nested"]["touched"] = True


class Lent(InMemoryBackend):
    """Declares it neither changes nor keeps events (the test looks, then forgets)."""

    leaves_events_unchanged: ClassVar[bool] = True


def test_a_backend_that_changes_events_never_reaches_the_caller_or_the_contexts() -> None:
    kept = InMemoryBackend()
    t = Tracker({"a": Changing(), "b": kept})
    data = {"user": "alice"}
    with t.context("c", {"nested": {"k": 1}}):
        t.emit("e", data)
        assert t.resolve_context() == {"nested": {"k": 1}}
    assert data == {"user": "alice"}
    # Siblings share one copy, as they do in Open edX: "b" sees what "a" did.
    assert kept.events[0]["data"] == {"user": "alice", "added": True}


def test_changes_the_caller_makes_after_emit_never_reach_a_kept_event() -> None:
    kept = InMemoryBackend()
    t = Tracker({"kept": kept})
    data = {"user": "alice", "tags": ["a"]}
    t.emit("e", data)
    data["user"] = "bob"
    data["tags"].append("b")
    assert kept.events[0]["data"] == {"user": "alice", "tags": ["a"]}


@pytest.mark.parametrize("mode", ["buffered", "inline", "durable", "sync"])
def test_a_delivery_backend_delivers_the_data_as_it_was_at_emit(mode: str, tmp_path: Path) -> None:
    recorder = RecordingBackend()
    delivery = DeliveryBackend(
        recorder, mode=mode, journal_dir=None if mode == "sync" else tmp_path, max_delay=60
    )
    t = Tracker({"d": delivery})
    data = {"user": "alice", "nested": {"k": 1}}
    t.emit("e", data)
    data["user"] = "bob"
    data["nested"]["k"] = 2
    assert delivery.flush(20)
    delivery.close()
    assert recorder.events[0]["data"] == {"user": "alice", "nested": {"k": 1}}


def test_backends_that_all_declare_it_get_the_event_uncopied() -> None:
    lent = Lent()
    t = Tracker({"a": lent, "b": Lent()})
    data = {"user": "alice"}
    t.emit("e", data)
    assert lent.events[0]["data"] is data  # no copy where nothing could tell


def test_a_nested_routing_backend_copies_for_its_own_backends_only() -> None:
    lent, kept = Lent(), InMemoryBackend()
    t = Tracker({"lent": lent, "tree": RoutingBackend(backends={"kept": kept})})
    data = {"user": "alice"}
    t.emit("e", data)
    assert lent.events[0]["data"] is data
    assert kept.events[0]["data"] == data and kept.events[0]["data"] is not data


def test_a_backend_added_later_is_isolated_too() -> None:
    lent = Lent()
    t = Tracker({"lent": lent})
    t.emit("e", data := {"n": 1})
    assert lent.events[0]["data"] is data
    kept = InMemoryBackend()
    t.routing_backend.register_backend("kept", kept)
    t.emit("e", data)
    data["n"] = 2
    assert kept.events[0]["data"] == {"n": 1}


def test_the_copies_share_only_what_cannot_change() -> None:
    class Custom:
        def __init__(self) -> None:
            self.items = [1]

    data = {"list": [{"a": 1}], "text": "x", "custom": Custom(), "tuple": (1, [2])}
    copy = isolated_copy({"data": data})["data"]
    assert copy == {**data, "custom": copy["custom"]}
    assert copy["list"] is not data["list"] and copy["list"][0] is not data["list"][0]
    assert copy["custom"] is not data["custom"] and copy["custom"].items == [1]
    assert copy["tuple"][1] is not data["tuple"][1]  # deepcopy for the rest
    assert copy["text"] is data["text"]
    del data["custom"]  # compared by identity: no copy could equal it
    event = {"name": "e", "data": data, "context": {"nested": {"k": 1}}}
    kept = kept_copy(event)
    assert kept == event and kept is not event
    assert kept["data"] is not data and kept["data"]["list"] is not data["list"]
    assert kept["context"] is event["context"]  # the tracker's own, for this event or unchanged


def test_open_edx_logger_backend_is_lent_events_unless_a_subclass_replaces_send() -> None:
    from eventtracking.backends.logger import LoggerBackend

    class Annotating(LoggerBackend):
        def send(self, event: Any) -> None:
            event["data"]["annotated"] = True
            super().send(event)

    plain, annotating = LoggerBackend(name="isolation.plain"), Annotating(name="isolation.sub")
    assert plain.leaves_events_unchanged and not annotating.leaves_events_unchanged
    data = {"n": 1}
    Tracker({"a": annotating, "b": plain}).emit("e", data)
    assert data == {"n": 1}
    assert Tracker({"b": plain}).routing_backend._copies == COPY_NONE
