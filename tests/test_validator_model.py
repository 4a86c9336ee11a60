"""The compiled validators agree with a plain reference model of the rules.

Validators are generated code with counting shortcuts; the reference below
walks the rules one by one, so any shortcut that misses a problem shows up.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from eventtracking.registry import Registry
from eventtracking.registry.model import TypeVersion
from eventtracking.registry.validate import compile_validator
from eventtracking.serialization import problems

TYPES = ("string", "integer", "number", "boolean", "null", "object", "array")
PY = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list, tuple),
}
NAMES = ("a", "b", "c", "d", "e")

field_docs = st.dictionaries(
    st.sampled_from(NAMES),
    st.fixed_dictionaries(
        {"description": st.just("x")},
        optional={
            "type": st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True),
            "required": st.booleans(),
            "enum": st.lists(st.sampled_from([1, 2, "x", "y", True, None]), min_size=1, max_size=3),
        },
    ),
    max_size=5,
)
values = st.one_of(
    st.text(max_size=3),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.sampled_from([1, 2, "x", "y", Decimal("1.5")]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.builds(object),  # not serializable
    st.sets(st.integers(), max_size=2),  # serializable only as an array
)
datas = st.dictionaries(st.sampled_from((*NAMES, "f", "g")), values, max_size=6)


def reference(version: TypeVersion, data: dict[str, Any]) -> set[tuple[str, str]]:
    """Each problem as (rule, field), found the slow and obvious way."""
    found: set[tuple[str, str]] = set()
    specs = {spec.name: spec for spec in version.fields}
    for key in data:
        if key not in specs and version.strict_fields:
            found.add(("unknown_field", f"data.{key}"))
    for name, spec in specs.items():
        if name not in data:
            if spec.required:
                found.add(("missing_field", f"data.{name}"))
            continue
        value = data[name]
        if spec.type:
            allowed = tuple(t for type_name in spec.type for t in PY[type_name])
            numeric = {"integer", "number"} & set(spec.type)
            is_bool_for_number = type(value) is bool and numeric and "boolean" not in spec.type
            if not isinstance(value, allowed) or is_bool_for_number:
                found.add(("wrong_type", f"data.{name}"))
                continue
        if spec.enum is not None and value not in spec.enum:
            found.add(("enum", f"data.{name}"))
    scalar = {
        spec.name
        for spec in version.fields
        if spec.type and set(spec.type) <= {"string", "integer", "number", "boolean", "null"}
    }
    for key, value in data.items():
        # A documented scalar field is judged by its type alone; any other
        # value is walked by the serializer's own problem finder.
        if key not in scalar and type(value) not in (str, int, float, bool, type(None), Decimal):
            found |= {("not_serializable", path) for path, _ in problems({"data": {key: value}})}
    return found


@settings(max_examples=300, deadline=None)
@given(field_docs, st.booleans(), st.lists(datas, min_size=1, max_size=4))
def test_compiled_validator_matches_the_reference(
    fields: dict[str, Any], additional: bool, samples: list[dict[str, Any]]
) -> None:
    version = Registry().register("t", "doc", fields, additional_fields=additional)
    validate = compile_validator(version)
    for data in samples:
        got = {(p["rule"], p["field"]) for p in validate(data) or []}
        assert got == reference(version, data), (fields, data)
