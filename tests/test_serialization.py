"""The one encoder: native types, fallbacks, repair and strict errors, round trips."""

from __future__ import annotations

import base64
import dataclasses
import enum
import logging
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventtracking import diagnostics, serialization
from eventtracking.exceptions import SerializationError


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def decode(value: Any) -> Any:
    return orjson.loads(serialization.dumps({"v": value}))["v"]


def test_datetimes_aware_naive_and_other_zones() -> None:
    aware = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert decode(aware) == "2024-01-02T03:04:05.678901+00:00"
    assert decode(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05+00:00"
    plus2 = datetime(2024, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    assert decode(plus2) == "2024-01-02T05:00:00+02:00"


def test_every_supported_type() -> None:
    value = {
        "date": date(2024, 5, 6),
        "time": time(7, 8, 9),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "decimal": Decimal("1.10"),
        "enum": Color.RED,
        "set": {3, 1, 2},
        "frozenset": frozenset({"b", "a"}),
        "mixed_set": {1, "a"},
        "tuple": (1, "two"),
        "bytes": b"\x00\xffhi",
        "dataclass": Point(1, 2),
        "int_key": {1: "one"},
    }
    out = decode(value)
    assert out["date"] == "2024-05-06"
    assert out["time"] == "07:08:09"
    assert out["uuid"] == "12345678-1234-5678-1234-567812345678"
    assert out["decimal"] == "1.10"
    assert out["enum"] == "red"
    assert out["set"] == [1, 2, 3]
    assert out["frozenset"] == ["a", "b"]
    assert sorted(map(str, out["mixed_set"])) == ["1", "a"]
    assert out["tuple"] == [1, "two"]
    assert base64.b64decode(out["bytes"]) == b"\x00\xffhi"
    assert out["dataclass"] == {"x": 1, "y": 2}
    assert out["int_key"] == {"1": "one"}


def test_unencodable_value_is_replaced_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = {"name": "e.bad", "data": {"ok": 1, "bad": object(), "list": [1, {1, 2}, object()]}}
    with caplog.at_level(logging.WARNING, logger="eventtracking"):
        first = orjson.loads(serialization.dumps(event))
        serialization.dumps(event)
    assert first["data"]["ok"] == 1
    assert first["data"]["bad"].startswith("<unserializable object: <object object")
    assert first["data"]["list"][1] == [1, 2]
    assert first["data"]["list"][2].startswith("<unserializable object")
    assert diagnostics.snapshot()["serialization.repaired"] == 2
    messages = [r.getMessage() for r in caplog.records]
    assert sum("data.bad" in m for m in messages) == 1
    assert sum("data.list.2" in m for m in messages) == 1


def test_repair_handles_huge_ints_cycles_deep_nesting_and_bad_keys() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    deep: Any = 0
    for _ in range(300):
        deep = [deep]
    event = {
        "name": "e",
        "data": {"big": 2**70, "cycle": cyclic, "deep": deep, "keys": {(1, 2): "tuple key"}},
    }
    out = orjson.loads(serialization.dumps(event))
    assert out["data"]["big"].startswith("<unserializable int")
    assert out["data"]["cycle"][0] == 1 and "unserializable" in out["data"]["cycle"][1]
    assert "tuple key" in out["data"]["keys"].values()
    found = dict(serialization.problems(event))
    assert "data.big" in found and "data.cycle.1" in found
    assert any(path.startswith("data.deep") for path in found)


def test_broken_repr_still_keeps_the_event() -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    out = orjson.loads(serialization.dumps({"name": "e", "data": {"x": BadRepr()}}))
    assert out["data"]["x"] == "<unserializable BadRepr: ?>"


def test_long_repr_is_truncated() -> None:
    class Long:
        def __repr__(self) -> str:
            return "x" * 10_000

    out = orjson.loads(serialization.dumps({"name": "e", "data": {"x": Long()}}))
    assert len(out["data"]["x"]) < 300


def test_check_raises_with_event_name_and_path() -> None:
    with pytest.raises(SerializationError) as info:
        serialization.check({"name": "n", "data": {"a": [{"b": object()}]}})
    assert (info.value.event_name, info.value.path) == ("n", "data.a.0.b")
    serialization.check({"name": "n", "data": {"a": [{"b": Decimal(1)}]}})  # no error


def test_dumps_lines_gives_each_events_line_from_a_list_or_an_iterator() -> None:
    good = {"name": "a", "timestamp": datetime(2024, 1, 2, tzinfo=UTC), "data": {"n": 1}}
    bad = {"name": "b", "data": {"bad": object(), 1: "non-str key"}}
    for batch in ([good, good], [good, bad, good]):
        expected = b"".join(serialization.dumps_line(event) for event in batch)
        assert serialization.dumps_lines(batch) == expected
        # An iterator is walked once: the fallback for `bad` must still see every event.
        assert serialization.dumps_lines(iter(batch)) == expected
        assert serialization.dumps_lines(event for event in batch) == expected


def test_dumps_str_matches_dumps() -> None:
    event = {"name": "x", "data": {"é": "ü"}}
    assert serialization.dumps_str(event).encode() == serialization.dumps(event)


# -- sharing scopes -----------------------------------------------------------------


def test_a_sharing_scope_may_start_with_encodings_made_earlier() -> None:
    first, second, other = {"n": 1}, {"n": 2}, {"n": 3}
    bodies = [serialization.dumps(first), serialization.dumps(second)]  # the journal's records
    first["n"] = second["n"] = 0  # changed since: the scope answers with the records
    serialization.begin_sharing_known([first, second], bodies)
    try:
        with mock.patch.object(serialization, "dumps", side_effect=AssertionError):
            # The events it was given, in order: their bytes joined, no call per event.
            assert serialization.dumps_array([first, second]) == b'[{"n":1},{"n":2}]'
            assert serialization.dumps_lines(iter([first, second])) == b'{"n":1}\n{"n":2}\n'
        # Any other list: event by event, which finds the given bytes too.
        assert serialization.dumps_array([second, first]) == b'[{"n":2},{"n":1}]'
        assert serialization.dumps(first) is bodies[0]
        assert serialization.dumps_line(second) == b'{"n":2}\n'
        with mock.patch.object(serialization, "dumps", side_effect=AssertionError):
            assert serialization.dumps_array([second, second]) == b'[{"n":2},{"n":2}]'
        # An event the scope was not given is encoded as it is, a lookalike too.
        assert serialization.dumps_array([first, other]) == b'[{"n":1},{"n":3}]'
        assert serialization.dumps_lines([other, first]) == b'{"n":3}\n{"n":1}\n'
        assert serialization.dumps({"n": 1}) == b'{"n":1}'
        assert serialization.dumps_array([]) == b"[]" and serialization.dumps_lines([]) == b""
    finally:
        serialization.end_sharing()
    assert serialization.dumps(first) == b'{"n":0}'
    assert serialization.dumps_array([first, second]) == b'[{"n":0},{"n":0}]'


def test_forget_drops_the_given_encodings_too() -> None:
    event = {"n": 2}
    serialization.begin_sharing_known([event], [b'{"n":1}'])
    try:
        serialization.forget()  # a backend that may change events ran
        assert serialization.dumps_array([event]) == b'[{"n":2}]'
        assert serialization.dumps(event) == b'{"n":2}'
    finally:
        serialization.end_sharing()
    with pytest.raises(ValueError, match="1 events but 2 bodies"):
        serialization.begin_sharing_known([event], [b"{}", b"{}"])


# -- round trips -------------------------------------------------------------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_plain_json_round_trips_exactly(value: Any) -> None:
    assert decode(value) == value


@given(st.datetimes(timezones=st.just(UTC)))
def test_aware_datetimes_round_trip(value: datetime) -> None:
    assert datetime.fromisoformat(decode(value)) == value


@given(st.datetimes())
def test_naive_datetimes_round_trip_as_utc(value: datetime) -> None:
    assert datetime.fromisoformat(decode(value)) == value.replace(tzinfo=UTC)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimals_round_trip_exactly(value: Decimal) -> None:
    assert Decimal(decode(value)) == value


@given(st.binary())
def test_bytes_round_trip_through_base64(value: bytes) -> None:
    assert base64.b64decode(decode(value)) == value


@given(st.sets(st.integers(min_value=-(2**63), max_value=2**63 - 1)))
def test_sets_become_sorted_lists(value: set[int]) -> None:
    assert decode(value) == sorted(value)


@given(st.uuids())
def test_uuids_round_trip(value: uuid.UUID) -> None:
    assert uuid.UUID(decode(value)) == value


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    event = {"name": "e", "data": {"text": "a\ud800b", "fine": "ü"}}
    out = orjson.loads(serialization.dumps(event))
    assert out["data"] == {"text": "a\ufffdb", "fine": "ü"}
    assert dict(serialization.problems(event)) == {
        "data.text": "string holds a lone surrogate (not valid Unicode)"
    }
    with pytest.raises(SerializationError, match=r"data\.text"):
        serialization.check(event)
