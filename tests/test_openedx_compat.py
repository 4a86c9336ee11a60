"""What an Open edX deployment can observe stays as event-tracking 4.x had it.

The original's own test modules run in `make test-upstream`; these tests pin
the same promises in our words, plus the places where we give more (copies
that are cheaper than deepcopy, ids given at delivery, errors that name the
backend).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from eventtracking import tracker as tracker_module
from eventtracking.backends import segment
from eventtracking.backends.logger import LoggerBackend
from eventtracking.backends.routing import RoutingBackend, isolated_copy
from eventtracking.delivery import DeliveryBackend
from eventtracking.locator import DefaultContextLocator, ThreadLocalContextLocator
from eventtracking.testing import InMemoryBackend
from eventtracking.tracker import Tracker


def test_a_processor_changing_nested_values_is_seen_by_no_sibling_and_not_by_the_caller() -> None:
    def scrub(event: dict[str, Any]) -> None:
        event["data"]["user"]["email"] = "<redacted>"
        event["data"]["tags"].append("scrubbed")
        event["context"]["course"]["org"] = "changed"

    scrubbed, plain, after = InMemoryBackend(), InMemoryBackend(), InMemoryBackend()
    t = Tracker(
        {
            "a": RoutingBackend({"mem": scrubbed}, [scrub]),
            "b": plain,
            "c": RoutingBackend({"mem": after}),
        }
    )
    data = {"user": {"email": "a@b.c"}, "tags": ["x"]}
    with t.context("course", {"course": {"org": "edX"}}):
        t.emit("x", data)
    assert scrubbed.events[0]["data"] == {
        "user": {"email": "<redacted>"},
        "tags": ["x", "scrubbed"],
    }
    assert scrubbed.events[0]["context"]["course"] == {"org": "changed"}
    for event in (plain.events[0], after.events[0]):
        assert event["data"] == {"user": {"email": "a@b.c"}, "tags": ["x"]}
        assert event["context"]["course"] == {"org": "edX"}
    assert data == {"user": {"email": "a@b.c"}, "tags": ["x"]}


def test_isolated_copy_shares_nothing_mutable_and_survives_cycles() -> None:
    inner: list[Any] = [1, {"k": "v"}]
    event = {"data": {"list": inner, "tuple": (inner,), "when": datetime.now(UTC)}}
    copy = isolated_copy(event)
    assert copy == event
    assert copy["data"]["list"] is not inner and copy["data"]["list"][1] is not inner[1]
    assert copy["data"]["tuple"][0] is not inner  # deepcopy of what the walk does not know
    cyclic: dict[str, Any] = {"name": "c"}
    cyclic["self"] = cyclic
    again = isolated_copy(cyclic)
    assert again["self"] is again and again is not cyclic


def test_backends_are_called_in_sorted_name_order_whatever_the_change() -> None:
    calls: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def send(self, event: Any) -> None:
            calls.append(self.name)

    t = Tracker({"m": Named("m"), "c": Named("c")})
    t.backends["a"] = Named("a")
    t.routing_backend.register_backend("z", Named("z"))
    t.backends.update({"b": Named("b")})
    t.emit("x")
    assert calls == ["a", "b", "c", "m", "z"]
    assert list(t.backends) == ["a", "b", "c", "m", "z"]


@pytest.mark.parametrize("locator_class", [DefaultContextLocator, ThreadLocalContextLocator])
def test_two_trackers_with_process_contexts_keep_them_apart(locator_class: type) -> None:
    mem_a, mem_b = InMemoryBackend(), InMemoryBackend()
    a = Tracker({"m": mem_a}, context_locator=locator_class())
    b = Tracker({"m": mem_b}, context_locator=locator_class())
    a.enter_context("service", {"service": "lms"}, scope="process")
    b.enter_context("service", {"service": "cms"}, scope="process")
    a.emit("x")
    b.emit("x")
    assert mem_a.events[0]["context"] == {"service": "lms"}
    assert mem_b.events[0]["context"] == {"service": "cms"}
    assert b.resolve_context() == {"service": "cms"}


def test_a_context_entered_again_keeps_its_place_as_in_open_edx() -> None:
    mem = InMemoryBackend()
    t = Tracker({"m": mem})
    t.enter_context("a", {"x": 1})
    t.enter_context("b", {"x": 2})
    t.enter_context("a", {"x": 3, "y": 3})
    t.emit("e")
    assert mem.events[0]["context"] == {"x": 2, "y": 3}
    assert list(t.located_context) == ["a", "b"]


def test_time_comes_from_the_patchable_module_datetime() -> None:
    fixed = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    mem = InMemoryBackend()
    t = Tracker({"m": mem})
    with mock.patch("eventtracking.tracker.datetime") as patched:
        patched.now.return_value = fixed
        t.emit("e")
    assert mem.events[0]["timestamp"] is fixed
    assert tracker_module.datetime is datetime


def test_logger_text_is_json_dumps_with_default_separators_and_utc(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = LoggerBackend(name="compat.tracking")
    event = {
        "name": "é.😀",
        "when": datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        "naive": datetime(2024, 1, 1, 12, 0),
        "n": float("nan"),
        "big": 2**70,
    }
    with caplog.at_level(logging.INFO, logger="compat.tracking"):
        backend.send(event)
    (record,) = [r for r in caplog.records if r.name == "compat.tracking"]
    assert record.getMessage() == (
        '{"name": "\\u00e9.\\ud83d\\ude00", "when": "2024-01-01T10:00:00+00:00", '
        '"naive": "2024-01-01T12:00:00+00:00", "n": NaN, "big": 1180591620717411303424}'
    )


def test_logger_refuses_what_json_cannot_encode_and_routing_logs_and_counts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = Tracker({"log": LoggerBackend(name="compat.tracking")})
    with caplog.at_level(logging.INFO):
        t.emit("money", {"amount": Decimal("1.10")})
    assert not [r for r in caplog.records if r.name == "compat.tracking"]
    (failure,) = [r for r in caplog.records if r.name == "eventtracking.backends.routing"]
    assert failure.getMessage() == 'Unable to send edx event "money" to backend: log'
    assert t.stats()["backend.log.errors"] == 1


def test_logger_compact_format_is_an_opt_in_that_keeps_every_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = LoggerBackend(name="compat.tracking", format="compact")
    with caplog.at_level(logging.INFO, logger="compat.tracking"):
        backend.send({"name": "é", "amount": Decimal("1.10")})
    (record,) = [r for r in caplog.records if r.name == "compat.tracking"]
    assert record.getMessage() == '{"name":"é","amount":"1.10"}'


def test_segment_backend_takes_no_options_and_sends_through_analytics() -> None:
    backend = segment.SegmentBackend()  # never raises at construction
    event = {
        "name": "edx.course.enrollment.activated",
        "timestamp": datetime(2024, 1, 1, tzinfo=UTC),
        "data": {"course_id": "c"},
        "context": {"user_id": 7, "host": "lms.example", "path": "/courses", "ip": "10.0.0.1"},
    }
    with mock.patch.object(segment, "analytics") as analytics:
        backend.send(event)
        backend.send({"name": "x", "context": {}})  # no user: skipped, as in Open edX
    analytics.track.assert_called_once_with(
        7,
        "edx.course.enrollment.activated",
        event,
        context={
            "ip": "10.0.0.1",
            "page": {"path": "/courses", "url": "https://lms.example/courses"},
        },
    )


def test_segment_backend_without_a_configured_module_counts_instead_of_sending() -> None:
    t = Tracker({"segment": segment.SegmentBackend()})
    with mock.patch.object(segment, "analytics", None):
        t.emit("x", {})
    assert t.stats()["segment.not_configured"] == 1
    assert "backend.segment.errors" not in t.stats()


def test_delivery_gives_an_event_without_id_one_id_before_its_first_write() -> None:
    mem = InMemoryBackend()
    delivery = DeliveryBackend(mem, name="mem", mode="sync")
    t = Tracker({"d": delivery})
    t.emit("a", {"n": 1})
    t.emit("b", {"n": 2})
    t.close()
    ids = [event["id"] for event in mem.events]
    assert len(set(ids)) == 2 and all(len(i) == 36 for i in ids)
    assert [list(event)[1:] for event in mem.events] == [
        ["name", "timestamp", "data", "context"]
    ] * 2


def test_configuration_errors_are_value_errors_naming_the_backend() -> None:
    with pytest.raises(
        ValueError, match=r'Backend object does not have a callable "send" method\.'
    ):
        RoutingBackend({"broken": object()})
    with pytest.raises(ValueError, match="'broken'"):
        RoutingBackend({"broken": object()})
    with pytest.raises(ValueError, match=r"Processor str is not callable\."):
        RoutingBackend(processors=["nope"])


def test_engine_dicts_are_built_at_any_depth_of_options() -> None:
    from eventtracking.config import build_backends

    class Holder:
        def __init__(self, **options: Any) -> None:
            self.options = options

        def send(self, event: Any) -> None:
            pass

    memory = {"ENGINE": "eventtracking.testing.InMemoryBackend"}
    with mock.patch.dict("sys.modules"):
        import types

        module = types.ModuleType("compat_holder")
        module.Holder = Holder  # type: ignore[attr-defined]
        import sys

        sys.modules["compat_holder"] = module
        built = build_backends(
            {
                "h": {
                    "ENGINE": "compat_holder.Holder",
                    "OPTIONS": {"deep": {"a": [{"b": memory}], "plain": [1, {"c": 2}]}},
                }
            }
        )
    deep = built["h"].options["deep"]
    assert isinstance(deep["a"][0]["b"], InMemoryBackend)
    assert deep["plain"] == [1, {"c": 2}]


def test_the_logged_line_round_trips_to_the_emitted_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = Tracker({"log": LoggerBackend(name="compat.tracking", max_event_size=None)})
    with (
        caplog.at_level(logging.INFO, logger="compat.tracking"),
        t.context("request", {"user_id": 5}),
    ):
        t.emit("a.b", {"s": "x"})
    (record,) = [r for r in caplog.records if r.name == "compat.tracking"]
    logged = json.loads(record.getMessage())
    assert list(logged) == ["name", "timestamp", "data", "context"]
    assert logged["context"] == {"user_id": 5} and logged["data"] == {"s": "x"}


def test_stats_walk_a_backend_tree_that_contains_itself() -> None:
    router = RoutingBackend({"mem": InMemoryBackend()})
    router.backends["loop"] = router
    t = Tracker({"r": router})
    assert isinstance(t.stats(), dict)


def test_a_routing_send_patched_on_the_instance_receives_every_event() -> None:
    mem = InMemoryBackend()
    t = Tracker({"m": mem})
    with mock.patch.object(t.routing_backend, "send") as patched:
        t.emit("a", {"n": 1})
    (call,) = patched.call_args_list
    assert call.args[0]["name"] == "a" and mem.events == []
    t.emit("b")  # the patch is gone: the routes are walked again
    assert mem.names() == ["b"]
    with mock.patch.object(t.routing_backend, "send_to_backends") as fan_out:
        t.emit("c")
    assert fan_out.call_count == 1 and mem.names() == ["b"]


def test_a_stand_in_that_answers_every_attribute_is_not_put_behind_delivery() -> None:
    # Open edX's tests configure ENGINE 'mock.MagicMock' and assert on its calls.
    from eventtracking.config import build_backends

    built = build_backends({"m": {"ENGINE": "unittest.mock.MagicMock"}})
    assert isinstance(built["m"], mock.MagicMock)
    built["m"].send({"name": "x"})
    built["m"].send.assert_called_once_with({"name": "x"})
