"""Validators compiled once per type version and run on every event of that type.

A validator takes the event's ``data`` mapping and returns None when all is
well, or a list of problems: ``{"rule": ..., "field": ..., "detail": ...}``.
Rules: ``unregistered``, ``unknown_field``, ``missing_field``, ``wrong_type``,
``enum``, ``not_serializable``, ``too_large``. Everything computable ahead is
computed at registration: sets of known and required names, isinstance tuples.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from .. import serialization
from .model import TypeVersion

Problem = dict[str, str]
Validator = Callable[[Mapping[str, Any]], list[Problem] | None]

_PY_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
    "object": (Mapping,),
    "array": (list, tuple),
    "null": (type(None),),
}
# Values of these exact types always encode; anything else is walked once.
_ALWAYS_ENCODABLE: Final = frozenset(
    {str, int, float, bool, type(None), _dt.datetime, _dt.date, _dt.time, uuid.UUID, Decimal}
)
_MISSING: Final = object()


class _Hidden:
    """Stands for the value of a field marked PII in a problem's detail (and so in logs)."""

    def __repr__(self) -> str:
        return "a value (PII, not shown)"


_PII_VALUE: Final = _Hidden()


def problem(rule: str, field: str, detail: str) -> Problem:
    """One problem record."""
    return {"rule": rule, "field": field, "detail": detail}


def compile_validator(version: TypeVersion) -> Validator:
    """Build the validator for `version`'s fields as straight-line Python code.

    The code is generated once per version: one presence/type/enum test per
    documented field, no loop over a rule table, so a five-field type costs a
    few hundred nanoseconds per event. Field names enter the source only
    through `repr`, and values only through the namespace, never as code.
    """
    known = frozenset(spec.name for spec in version.fields)
    scalar = frozenset(
        spec.name
        for spec in version.fields
        if spec.type and set(spec.type) <= {"string", "integer", "number", "boolean", "null"}
    )
    namespace: dict[str, Any] = {
        "_known": known,
        "_scalar": scalar,
        "_M": _MISSING,
        "_unknown": _unknown_fields,
        "_missing": _missing_field,
        "_wrong": _wrong_type,
        "_enum": _not_in_enum,
        "_encoding": _encoding_problems,
        "_bool": bool,
        "_PII": _PII_VALUE,
    }
    # `k` counts the present scalar fields and `m` the present documented ones
    # (both start as if every required field were there): comparing them with
    # len(data) finds any other key without building a set.
    strict = version.strict_fields
    required = [spec for spec in version.fields if spec.required]
    lines = [
        "def validate(data):",
        "    found = None",
        f"    k = {sum(1 for spec in required if spec.name in scalar)}",
    ]
    if strict:
        lines.append(f"    m = {len(required)}")
    for i, spec in enumerate(version.fields):
        key = repr(spec.name)
        counters = (["k"] if spec.name in scalar else []) + (["m"] if strict else [])
        body = [] if spec.required else [f"        {c} += 1" for c in counters]
        if spec.type or spec.enum is not None:
            body.append(f"        v = data[{key}]")
        if spec.type:
            pytypes = tuple(t for name in spec.type for t in _PY_TYPES[name])
            namespace[f"_t{i}"] = pytypes
            for j, pytype in enumerate(pytypes):
                namespace[f"_c{i}_{j}"] = pytype
            if len(pytypes) == 1:
                exact = f"type(v) is not _c{i}_0"
            else:
                body.append("        t = type(v)")
                exact = " and ".join(f"t is not _c{i}_{j}" for j in range(len(pytypes)))
            slow = f"not isinstance(v, _t{i})"
            if "boolean" not in spec.type and {"integer", "number"} & set(spec.type):
                # bool is an int subclass: an integer or number field refuses True.
                slow = f"(type(v) is _bool or {slow})"
            body += [
                f"        if {exact} and {slow}:",
                f"            found = _wrong(found, {key}, v)",
            ]
        if spec.enum is not None:
            namespace[f"_e{i}"] = spec.enum
            branch = "elif" if spec.type else "if"
            body += [
                f"        {branch} v not in _e{i}:",
                f"            found = _enum(found, {key}, {'_PII' if spec.pii else 'v'})",
            ]
        lines += [f"    if {key} in data:", *(body or ["        pass"])]
        if spec.required:
            lines += ["    else:", f"        found = _missing(found, {key})"]
            lines += [f"        {c} -= 1" for c in counters]
    if strict:
        lines += ["    if len(data) != m:", "        found = _unknown(data, _known, found)"]
    lines += [
        "    if len(data) != k:",
        "        found = _encoding(data, _scalar, found)",
        "    return found",
    ]
    exec(compile("\n".join(lines), "<eventtracking validator>", "exec"), namespace)
    validator: Validator = namespace["validate"]
    return validator


def _unknown_fields(
    data: Mapping[str, Any], known: frozenset[str], found: list[Problem] | None
) -> list[Problem]:
    unknown = [
        problem("unknown_field", f"data.{key}", "field is not documented")
        for key in data
        if key not in known
    ]
    return unknown + (found or [])  # undocumented fields are reported first


def _missing_field(found: list[Problem] | None, name: str) -> list[Problem]:
    found = found or []
    found.append(problem("missing_field", f"data.{name}", "required field is missing"))
    return found


def _wrong_type(found: list[Problem] | None, name: str, value: Any) -> list[Problem]:
    found = found or []
    found.append(problem("wrong_type", f"data.{name}", f"got {type(value).__name__}"))
    return found


def _not_in_enum(found: list[Problem] | None, name: str, value: Any) -> list[Problem]:
    found = found or []
    found.append(problem("enum", f"data.{name}", f"{value!r} is not allowed"))
    return found


def _encoding_problems(
    data: Mapping[str, Any], scalar: frozenset[str], found: list[Problem] | None
) -> list[Problem] | None:
    for key, value in data.items():
        if key in scalar or type(value) in _ALWAYS_ENCODABLE or _encodable(value):
            continue
        found = found or []
        for path, detail in serialization.problems({"data": {key: value}}):
            found.append(problem("not_serializable", path, detail))
    return found


def _encodable(value: Any) -> bool:
    """True when the encoder takes `value` as it is (walks containers once)."""
    return next(serialization.problems({"v": value}), None) is None
