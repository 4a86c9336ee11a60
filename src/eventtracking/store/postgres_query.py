"""Queries on the PostgreSQL store, answered the way the SQLite store answers them."""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..serialization import OPTIONS, _default
from . import Query
from .rows import _typed


def where_clause(query: Query) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or empty) and parameters for `query`.

    Matches the SQLite store's semantics: globs as GLOB does, ``since``
    inclusive and ``until`` exclusive, context/data values matching strings
    and the numbers they spell, ``true``/``false``/``null`` as JSON literals.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if query.names:
        parts = []
        for pattern in query.names:
            operator, value = _name_match(pattern)
            parts.append(f"name {operator} %s")
            params.append(value)
        clauses.append("(" + " OR ".join(parts) + ")")
    if query.since is not None:
        clauses.append("ts >= %s")
        params.append(query.since)
    if query.until is not None:
        clauses.append("ts < %s")
        params.append(query.until)
    for section, filters in (("context", query.context), ("data", query.data)):
        for key, value in filters:
            if value in ("true", "false", "null") or value is None or isinstance(value, bool):
                literal = "null" if value is None else str(value).lower()
                clauses.append(f"{section} -> %s::text = %s::jsonb")
                params.extend([str(key), literal])
            else:
                clauses.append(f"{section} -> %s::text IN (%s::jsonb, %s::jsonb)")
                params.extend([str(key), _json_text(value), _json_text(_typed(value))])
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return where, params


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=OPTIONS).decode()


def _name_match(pattern: str) -> tuple[str, str]:
    """The SQL operator and operand that match a glob the way SQLite's GLOB does."""
    if not any(ch in pattern for ch in "*?["):
        return "=", pattern
    if "[" not in pattern:
        like = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return "LIKE", like.replace("*", "%").replace("?", "_")
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        end = pattern.find("]", i + 2) if ch == "[" else -1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif end != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "~", "".join(out) + "$"
