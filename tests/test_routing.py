"""RoutingBackend trees, processor chains and batches (Open edX semantics)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from eventtracking import diagnostics
from eventtracking.backends.routing import RoutingBackend
from eventtracking.processors.exceptions import EventEmissionExit
from eventtracking.testing import InMemoryBackend


def event(name: str = "e", **data: Any) -> dict[str, Any]:
    return {"name": name, "data": dict(data), "context": {"c": 1}}


def test_backends_are_called_in_sorted_name_order() -> None:
    calls: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def send(self, event: dict[str, Any]) -> None:
            calls.append(self.name)

    router = RoutingBackend({n: Recorder(n) for n in ["c", "a", "b"]})
    router.register_backend("0", Recorder("0"))
    router.send(event())
    assert calls == ["0", "a", "b", "c"]


def test_processor_chain_none_means_unchanged_and_results_chain() -> None:
    mem = InMemoryBackend()

    def add_one(e: dict[str, Any]) -> dict[str, Any]:
        return {**e, "data": {**e["data"], "n": e["data"].get("n", 0) + 1}}

    def observe(e: dict[str, Any]) -> None:
        e["data"]["seen"] = True

    router = RoutingBackend({"m": mem}, [add_one, observe, add_one])
    router.send(event())
    assert mem.events[0]["data"] == {"n": 2, "seen": True}


def test_emission_exit_drops_and_stops_later_processors() -> None:
    mem = InMemoryBackend()
    later: list[Any] = []

    def stop(e: dict[str, Any]) -> None:
        raise EventEmissionExit()

    router = RoutingBackend({"m": mem}, [stop, later.append])
    router.send(event())
    assert mem.events == [] and later == []


def test_failing_processor_is_skipped_logged_and_counted() -> None:
    mem = InMemoryBackend()

    def broken(e: dict[str, Any]) -> None:
        raise ZeroDivisionError

    def mark(e: dict[str, Any]) -> None:
        e["data"]["after"] = True

    router = RoutingBackend({"m": mem}, [broken, mark])
    router.send(event())
    router.send(event())
    assert [e["data"] for e in mem.events] == [{"after": True}, {"after": True}]
    assert diagnostics.snapshot()["processor.errors"] == 2


def test_invalid_backend_and_processor_are_value_errors() -> None:
    with pytest.raises(ValueError, match="'x'"):
        RoutingBackend({"x": object()})
    with pytest.raises(ValueError, match="not callable"):
        RoutingBackend({}, [42])  # type: ignore[list-item]


def test_nested_trees_isolate_branch_changes() -> None:
    left, right, plain = InMemoryBackend(), InMemoryBackend(), InMemoryBackend()

    def tag(value: str) -> Any:
        def processor(e: dict[str, Any]) -> None:
            e["data"]["branch"] = value
            e["context"]["branch"] = value
            e["name"] = f"{e['name']}.{value}"

        return processor

    router = RoutingBackend(
        {
            "left": RoutingBackend({"m": left}, [tag("left")]),
            "plain": plain,
            "right": RoutingBackend({"m": right}, [tag("right")]),
        }
    )
    original = event()
    router.send(original)
    assert left.events[0]["data"] == {"branch": "left"} and left.events[0]["name"] == "e.left"
    assert right.events[0]["context"] == {"c": 1, "branch": "right"}
    assert plain.events[0] == {"name": "e", "data": {}, "context": {"c": 1}}
    assert original == {"name": "e", "data": {}, "context": {"c": 1}}


def test_failing_backend_does_not_stop_the_others() -> None:
    class Broken:
        def send(self, e: dict[str, Any]) -> None:
            raise RuntimeError("down")

    mem = InMemoryBackend()
    router = RoutingBackend({"a": Broken(), "b": mem})
    router.send(event())
    assert len(mem.events) == 1
    assert diagnostics.snapshot()["backend.a.errors"] == 1


def test_send_batch_uses_backend_batches_and_processes_each_event() -> None:
    class Batcher(InMemoryBackend):
        def __init__(self) -> None:
            super().__init__()
            self.batches = 0

        def send_batch(self, events: list[dict[str, Any]]) -> None:
            self.batches += 1
            super().send_batch(events)

    def drop_odd(e: dict[str, Any]) -> None:
        if e["data"]["i"] % 2:
            raise EventEmissionExit()

    batcher, single = Batcher(), InMemoryBackend()
    router = RoutingBackend({"b": batcher, "s": single}, [drop_odd])
    router.send_batch([event(i=i) for i in range(6)])
    assert batcher.batches == 1
    assert [e["data"]["i"] for e in batcher.events] == [0, 2, 4]
    assert [e["data"]["i"] for e in single.events] == [0, 2, 4]


def test_process_event_exposes_the_chain() -> None:
    def stop(e: dict[str, Any]) -> None:
        raise EventEmissionExit()

    with pytest.raises(EventEmissionExit):
        RoutingBackend({}, [stop]).process_event(event())
    unchanged = event()
    assert RoutingBackend().process_event(unchanged) is unchanged


def test_flush_and_close_reach_nested_backends() -> None:
    inner = InMemoryBackend()
    router = RoutingBackend({"tree": RoutingBackend({"m": inner})})
    assert router.flush(1.0) is True
    router.close()
    assert inner.closed


def test_backends_is_an_ordered_dict_as_in_open_edx_kept_in_sorted_order() -> None:
    from collections import OrderedDict

    routing = RoutingBackend(backends={"b": InMemoryBackend(), "a": InMemoryBackend()})
    backends = routing.backends
    assert isinstance(backends, OrderedDict) and list(backends) == ["a", "b"]
    backends["0"] = InMemoryBackend()
    backends.update({"z": InMemoryBackend()})
    backends.move_to_end("0")  # accepted, and undone: the call order is by name
    assert list(backends) == ["0", "a", "b", "z"]
    assert backends.popitem(last=False)[0] == "0"
    del backends["z"]
    assert [name for name, _ in routing._routes] == list(backends) == ["a", "b"]
    copied = copy.copy(backends)  # a plain OrderedDict, bound to no routing backend
    assert type(copied) is OrderedDict and list(copied) == ["a", "b"]
