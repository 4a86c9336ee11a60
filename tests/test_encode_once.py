"""Encode once: sibling sinks share one encoding, and never the bytes of a changed event.

The property checked everywhere: whatever a backend receives through
`dumps`/`dumps_line`/`send_line`, it equals a fresh encoding of the event as
the backend sees it at that moment, however processors (in their branches)
and other backends (in place, at any depth) changed it before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventtracking import serialization
from eventtracking.backends import leaves_events_unchanged
from eventtracking.backends.jsonl import JSONLinesBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.config import build_backends
from eventtracking.tracker import Tracker

EXAMPLES = int(os.environ.get("EVENTTRACKING_FUZZ_EXAMPLES", "200"))
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def fresh(event: Any) -> bytes:
    """The encoding of `event` now, never a remembered one."""
    return orjson.dumps(event, option=orjson.OPT_NAIVE_UTC | orjson.OPT_APPEND_NEWLINE)


class Recorder:
    """A sink that leaves events unchanged and writes `dumps_line`: records (got, fresh)."""

    leaves_events_unchanged = True

    def __init__(self) -> None:
        self.lines: list[tuple[bytes, bytes]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.lines.append((serialization.dumps_line(event), fresh(event)))


class LineRecorder(Recorder):
    """The same, taking the line from the fan-out as JSONLinesBackend does."""

    def send_line(self, event: dict[str, Any], line: bytes) -> None:
        self.lines.append((line, fresh(event)))


class BodyRecorder(Recorder):
    """The same through `dumps` (stores use the body without a newline)."""

    def send(self, event: dict[str, Any]) -> None:
        self.lines.append((serialization.dumps(event) + b"\n", fresh(event)))


# -- events and the changes made to them ----------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
events = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=10),
        "data": st.dictionaries(st.text(max_size=4), values, max_size=4),
        "context": st.dictionaries(st.text(max_size=4), values, max_size=4),
    }
)
# Replacements include values equal to common ones but encoded differently (1, True, 1.0).
replacements = st.one_of(values, st.sampled_from([1, True, 1.0, 0.0, -0.0, "1", None]))


def containers(value: Any) -> list[Any]:
    """Every dict and list inside `value` (itself included), outermost first."""
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            found.append(item)
            stack.extend(item)
    return found


@st.composite
def changes(draw: st.DrawFn) -> Any:
    """A function that changes an event in place, somewhere at any depth."""
    pick, key, kind = draw(st.integers(0, 50)), draw(st.text(max_size=4)), draw(st.integers(0, 3))
    new = draw(replacements)

    def change(event: dict[str, Any]) -> None:
        targets = containers(event)
        target = targets[pick % len(targets)]
        if isinstance(target, dict):
            if kind == 0 or not target:
                target[key] = new
            elif kind == 1:  # replace an existing value, keeping the key's place
                target[list(target)[pick % len(target)]] = new
            elif kind == 2:  # move a key to the end: same content, another order
                first = next(iter(target))
                target[first] = target.pop(first)
            else:
                del target[list(target)[pick % len(target)]]
        elif kind == 0 or not target:
            target.append(new)
        else:
            target[pick % len(target)] = new

    return change


class Mutator:
    """A backend that changes each event it is given (it does not declare otherwise)."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def send(self, event: dict[str, Any]) -> None:
        self.change(event)


def assert_all_fresh(*recorders: Recorder) -> None:
    for recorder in recorders:
        for got, expected in recorder.lines:
            assert got == expected


# -- properties ------------------------------------------------------------------------------


@PROPERTY
@given(event=events, change=changes(), position=st.integers(0, 4))
def test_a_backend_changing_the_event_never_lets_siblings_reuse_old_bytes(
    event: dict[str, Any], change: Any, position: int
) -> None:
    recorders: list[Recorder] = [LineRecorder(), Recorder(), LineRecorder(), BodyRecorder()]
    recorders.append(LineRecorder())
    names = ["a", "b", "c", "d", "e"]
    backends: dict[str, Any] = dict(zip(names, recorders, strict=True))
    backends[names[position % 5] + "_mutator"] = Mutator(change)
    routing = RoutingBackend(backends)
    assert routing._shared is not None  # the fan-out shares encodings
    routing.send(event)
    assert_all_fresh(*recorders)
    assert all(len(r.lines) == 1 for r in recorders)


@PROPERTY
@given(event=events, first=changes(), second=changes())
def test_processors_change_only_their_branch_and_get_their_own_encoding(
    event: dict[str, Any], first: Any, second: Any
) -> None:
    def processor(change: Any) -> Any:
        def process(e: dict[str, Any]) -> None:
            change(e)

        return process

    left, right, top = (
        [Recorder(), Recorder()],
        [LineRecorder(), BodyRecorder()],
        [
            Recorder(),
            LineRecorder(),
        ],
    )
    branch_a = RoutingBackend({"x": left[0], "y": left[1]}, [processor(first)])
    branch_b = RoutingBackend({"x": right[0], "y": right[1]}, [processor(second)])
    root = RoutingBackend({"a": branch_a, "b": branch_b, "c": top[0], "d": top[1]})
    before = fresh(event)
    root.send(event)
    assert_all_fresh(*left, *right, *top)
    assert all(len(r.lines) == 1 for r in (*left, *right, *top))
    # The root's own sinks saw the event as emitted: the branches changed copies.
    assert [got for got, _ in top[0].lines] == [before]
    assert [got for got, _ in top[1].lines] == [before]


@PROPERTY
@given(event=events, change=changes())
def test_outside_a_fan_out_every_call_encodes_the_event_as_it_is(
    event: dict[str, Any], change: Any
) -> None:
    first = serialization.dumps_line(event)
    change(event)
    assert serialization.dumps_line(event) == fresh(event)
    assert serialization.dumps(event) + b"\n" == fresh(event)
    assert first is not serialization.dumps_line(event)


@PROPERTY
@given(batch=st.lists(events, min_size=1, max_size=5), change=changes())
def test_send_batch_shares_and_a_changing_backend_forces_a_new_encoding(
    batch: list[dict[str, Any]], change: Any
) -> None:
    class BatchRecorder(Recorder):
        def send_batch(self, events: list[dict[str, Any]]) -> None:
            for event in events:
                self.send(event)

    class BatchMutator(Mutator):
        def send_batch(self, events: list[dict[str, Any]]) -> None:
            for event in events:
                self.change(event)

    recorders = [BatchRecorder(), BatchRecorder()]
    routing = RoutingBackend({"a": recorders[0], "b": BatchMutator(change), "c": recorders[1]})
    routing.send_batch(batch)
    assert_all_fresh(*recorders)


# -- what is shared, and when ------------------------------------------------------------------


def test_siblings_share_one_encoding_and_the_scope_ends_with_the_fan_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encodes: list[Any] = []
    real = serialization._encode_line

    def counted(event: Any) -> bytes:
        encodes.append(event)
        return real(event)

    monkeypatch.setattr(serialization, "_encode_line", counted)
    recorders = [LineRecorder() for _ in range(3)] + [Recorder() for _ in range(3)]
    tracker = Tracker({f"r{i}": r for i, r in enumerate(recorders)})
    for i in range(5):
        tracker.emit("e", {"n": i})
    assert len(encodes) == 5  # one per event, for six sinks
    assert_all_fresh(*recorders)
    assert serialization._sharing.cache is None  # nothing is remembered between emits


def test_a_replaced_send_on_the_instance_is_called() -> None:
    sinks = [LineRecorder(), LineRecorder()]
    seen: list[Any] = []
    sinks[1].send = seen.append  # type: ignore[method-assign,assignment]
    RoutingBackend({"a": sinks[0], "b": sinks[1]}).send({"name": "e"})
    assert seen == [{"name": "e"}]
    assert sinks[1].lines == []


def test_send_replaced_after_the_routes_were_built_is_called_and_restored() -> None:
    sinks = [LineRecorder(), LineRecorder()]
    routing = RoutingBackend({"a": sinks[0], "b": sinks[1]})
    routing.send({"name": "before"})
    with mock.patch.object(sinks[1], "send") as patched:  # as a test of an app would
        routing.send({"name": "patched"})
    routing.send({"name": "after"})
    patched.assert_called_once_with({"name": "patched"})
    assert [orjson.loads(got) for got, _ in sinks[1].lines] == [
        {"name": "before"},
        {"name": "after"},
    ]
    assert len(sinks[0].lines) == 3


def test_a_sink_without_an_instance_dict_gets_send() -> None:
    class Slotted:
        __slots__ = ("lines",)
        leaves_events_unchanged = True

        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def send(self, event: dict[str, Any]) -> None:
            self.lines.append(serialization.dumps_line(event))

        def send_line(self, event: dict[str, Any], line: bytes) -> None:
            raise AssertionError("not called: send is what a slotted class offers")

    sinks = [Slotted(), Slotted()]
    routing = RoutingBackend({"a": sinks[0], "b": sinks[1]})
    routing.send({"name": "e"})
    assert sinks[0].lines == sinks[1].lines == [b'{"name":"e"}\n']
    assert routing.counters.snapshot() == {}


def test_routing_reads_the_instance_dict_only_of_backends_that_take_lines(
    tmp_path: Path,
) -> None:
    # Reading `__dict__` gives an instance a dict of its own, which slows every
    # attribute read of its `send`: only a line-taking backend is asked.
    read: list[str] = []

    class Watched:
        leaves_events_unchanged = True

        @property
        def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
            read.append(type(self).__name__)
            return {}

        def send(self, event: dict[str, Any]) -> None:
            pass

    class WatchedLines(Watched):
        def send_line(self, event: dict[str, Any], line: bytes) -> None:
            pass

    routing = RoutingBackend({"a": Watched(), "b": Watched()})
    routing.send({"name": "e"})
    assert read == []
    routing = RoutingBackend({"a": WatchedLines(), "b": Watched()})
    built = len(read)
    for _ in range(3):
        routing.send({"name": "e"})
    assert built and len(read) == built  # when the routes were built, not per event
    assert set(read) == {"WatchedLines"}


def test_a_single_sink_or_undeclared_backends_do_not_share() -> None:
    assert RoutingBackend({"a": Recorder(), "b": Mutator(print)})._shared is None
    assert RoutingBackend({"a": Recorder(), "b": Recorder()})._shared is not None
    assert RoutingBackend({"a": Recorder()}).direct
    assert not RoutingBackend({"a": Recorder(), "b": Recorder()}).direct


def test_delivery_backends_answer_for_what_they_wrap(tmp_path: Path) -> None:
    spec = {"ENGINE": "eventtracking.backends.jsonl.JSONLinesBackend"}
    built = build_backends(
        {
            "a": {**spec, "OPTIONS": {"path": str(tmp_path / "a.jsonl")}},
            "b": {**spec, "OPTIONS": {"path": str(tmp_path / "b.jsonl")}},
        }
    )
    try:
        assert all(leaves_events_unchanged(b) for b in built.values())
        assert not leaves_events_unchanged(Mutator(print))
    finally:
        for backend in built.values():
            backend.close()


def test_configured_jsonl_files_get_the_same_bytes(tmp_path: Path) -> None:
    spec = {"ENGINE": "eventtracking.backends.jsonl.JSONLinesBackend"}
    built = build_backends(
        {name: {**spec, "OPTIONS": {"path": str(tmp_path / f"{name}.jsonl")}} for name in "abc"}
    )
    tracker = Tracker(built)
    for i in range(250):
        tracker.emit("e", {"n": i})
    tracker.close()
    texts = [(tmp_path / f"{name}.jsonl").read_bytes() for name in "abc"]
    assert texts[0] == texts[1] == texts[2]
    assert texts[0].count(b"\n") == 250


def test_jsonl_send_line_after_close_raises(tmp_path: Path) -> None:
    backend = JSONLinesBackend(tmp_path / "x.jsonl")
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.send({"name": "e"})
