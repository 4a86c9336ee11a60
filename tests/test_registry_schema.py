"""register(..., schema=...): every JSON Schema keyword is checked, or refused when registered."""

from __future__ import annotations

import re
from typing import Any

import pytest

from eventtracking import diagnostics
from eventtracking.exceptions import ImproperlyConfigured, ValidationError
from eventtracking.registry import Registry, version_from_dict
from eventtracking.registry.schema import needs_schema_validator
from eventtracking.registry.validate import compile_validator
from eventtracking.testing import InMemoryBackend
from eventtracking.tracker import Tracker

ISSUE = {  # the schema of the report: minimum, pattern and oneOf were ignored
    "type": "object",
    "properties": {
        "n": {"type": "integer", "minimum": 0},
        "s": {"type": "string", "pattern": "^a"},
        "o": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    },
}


def make(schema: dict[str, Any], **kwargs: Any) -> tuple[Tracker, InMemoryBackend]:
    memory = InMemoryBackend()
    tracker = Tracker({"memory": memory}, envelope="full", **kwargs)
    tracker.register("t", "T.", schema=schema)
    return tracker, memory


@pytest.mark.parametrize(
    ("data", "field", "keyword"),
    [
        ({"n": -5}, "data.n", "minimum"),
        ({"s": "zzz"}, "data.s", "pattern"),
        ({"o": 1.5}, "data.o", "oneOf"),
    ],
)
def test_strict_refuses_what_the_schema_refuses(
    data: dict[str, Any], field: str, keyword: str
) -> None:
    tracker, memory = make(ISSUE, validation="strict")
    with pytest.raises(ValidationError) as raised:
        tracker.emit("t", data)
    assert raised.value.field == field and keyword in str(raised.value)
    tracker.emit("t", {"n": 0, "s": "abc", "o": "x"})
    assert len(memory.events) == 1


def test_warn_keeps_the_event_with_the_problem_and_counts_it() -> None:
    tracker, memory = make(ISSUE, validation="warn")
    tracker.emit("t", {"n": -5})
    (event,) = memory.events
    assert event["meta"]["problems"] == [
        {
            "rule": "schema",
            "field": "data.n",
            "detail": "minimum: must be bigger than or equal to 0",
        }
    ]
    assert diagnostics.snapshot()["validation.schema"] == 1


def test_off_checks_nothing() -> None:
    tracker, memory = make(ISSUE, validation="off")
    tracker.emit("t", {"n": -5})
    assert "problems" not in memory.events[0].get("meta", {})


@pytest.mark.parametrize(
    ("schema", "good", "bad", "field", "rule"),
    [
        (
            {"properties": {"o": {"type": "object", "properties": {"k": {"type": "integer"}}}}},
            {"o": {"k": 1}},
            {"o": {"k": "x"}},
            "data.o.k",
            "wrong_type",
        ),
        (
            {
                "properties": {
                    "a": {"type": "array", "items": {"maxLength": 2}, "uniqueItems": True}
                }
            },
            {"a": ["x", "y"]},
            {"a": ["x", "x"]},
            "data.a",
            "schema",
        ),
        (
            {
                "properties": {"a": {"$ref": "#/$defs/pos", "maximum": 5}},
                "$defs": {"pos": {"minimum": 1}},
            },
            {"a": 3},
            {"a": 9},  # the keyword beside $ref counts (draft 7 would ignore it)
            "data.a",
            "schema",
        ),
        (
            {
                "properties": {
                    "a": {"prefixItems": [{"type": "integer"}], "items": {"type": "string"}}
                }
            },
            {"a": [1, "x"]},
            {"a": [1, 2]},
            "data.a.1",
            "wrong_type",
        ),
        (
            {"properties": {"a": {}, "b": {}}, "dependentRequired": {"a": ["b"]}},
            {"a": 1, "b": 2},
            {"a": 1},
            "data",
            "schema",
        ),
        (
            {
                "properties": {"a": {}, "b": {}},
                "dependentSchemas": {"a": {"properties": {"b": {"const": 2}}}},
            },
            {"a": 1, "b": 2},
            {"a": 1, "b": 3},
            "data.b",
            "enum",
        ),
        (
            {
                "properties": {"k": {"const": "x"}},
                "if": {"properties": {"k": {"const": "x"}}},
                "then": {"required": ["v"]},
                "additionalProperties": True,
            },
            {"k": "x", "v": 1},
            {"k": "x"},
            "data",
            "missing_field",
        ),
        (
            {"patternProperties": {"^n_": {"type": "number"}}, "additionalProperties": True},
            {"n_a": 1},
            {"n_a": "x"},
            "data.n_a",
            "wrong_type",
        ),
        (
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "properties": {"a": {"minimum": 0, "exclusiveMinimum": True}},
            },
            {"a": 1},
            {"a": 0},
            "data.a",
            "schema",
        ),
    ],
)
def test_every_keyword_is_checked(
    schema: dict[str, Any], good: dict[str, Any], bad: dict[str, Any], field: str, rule: str
) -> None:
    tracker, memory = make({"type": "object", **schema}, validation="warn")
    tracker.emit("t", good)
    tracker.emit("t", bad)
    first, second = memory.events
    assert "problems" not in first["meta"], first["meta"]
    assert [(p["field"], p["rule"]) for p in second["meta"]["problems"]] == [(field, rule)]


@pytest.mark.parametrize(
    "keyword",
    ["unevaluatedProperties", "unevaluatedItems", "minContains", "$dynamicRef", "$anchor"],
)
def test_a_keyword_that_cannot_be_honoured_is_refused_at_registration(keyword: str) -> None:
    registry = Registry()
    schema = {"type": "object", "properties": {"a": {"type": "array", keyword: False}}}
    with pytest.raises(ImproperlyConfigured, match=re.escape(f"'{keyword}' at #/properties/a")):
        registry.register("t", "T.", schema=schema)
    assert registry.current("t") is None  # nothing half-registered


def test_a_remote_ref_or_an_invalid_schema_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"points outside the schema"):
        Registry().register("t", "", schema={"properties": {"a": {"$ref": "http://x/s.json"}}})
    with pytest.raises(ImproperlyConfigured, match="not a valid JSON Schema"):
        Registry().register("t", "", schema={"properties": {"a": {"type": "int"}}})


def test_format_is_an_annotation_and_default_never_changes_the_event() -> None:
    tracker, memory = make(
        {"properties": {"e": {"format": "email", "maxLength": 50}, "d": {"default": 5}}},
        validation="strict",
    )
    tracker.emit("t", {"e": "not an email"})
    assert memory.events[0]["data"] == {"e": "not an email"}


def test_a_problem_the_fields_found_is_not_reported_twice() -> None:
    schema = {"properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]}
    tracker, memory = make(schema, validation="warn")
    tracker.emit("t", {"n": "x", "zz": 1})
    rules = [(p["rule"], p["field"]) for p in memory.events[0]["meta"]["problems"]]
    assert rules == [("unknown_field", "data.zz"), ("wrong_type", "data.n")]


def test_field_specs_keep_the_generated_validator() -> None:
    registry = Registry()
    version = registry.register("t", "T.", {"a": {"type": "integer", "enum": [1], "format": "x"}})
    assert not needs_schema_validator(version.schema)
    assert registry.validator(version.id).__qualname__ == compile_validator(version).__qualname__  # type: ignore[union-attr]
    plain = {
        "type": "object",
        "properties": {"a": {"type": ["integer", "null"]}},
        "required": ["a"],
    }
    assert not needs_schema_validator(plain)
    assert needs_schema_validator({**plain, "minProperties": 1})


def test_a_stored_version_whose_schema_cannot_be_honoured_still_loads() -> None:
    registry = Registry()
    record = {
        "kind": "event",
        "name": "old",
        "description": "",
        "fields": {"a": {"description": ""}},
        "schema": {"type": "object", "properties": {"a": {}}, "unevaluatedProperties": False},
        "id": "0123456789abcdef",
    }
    version = registry.add(version_from_dict(record))
    assert registry.validator(version.id) is not None
