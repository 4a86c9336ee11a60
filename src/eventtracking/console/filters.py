"""What a console user asks to see: name globs and ``key=value`` fields, checked once.

`parse_filter` turns the query-string form (``name`` and ``where``, each
repeatable) into a `Filter`; bad input raises `FilterError` with a one-line
message that says what to fix. A `Filter` gives both a store `Query` (for
history, answered by the store's indexes) and a predicate for the live feed
that answers exactly as the stores do: globs as SQLite's GLOB (case-sensitive),
values matching strings and the numbers they spell, ``true``/``false``/``null``
as JSON literals.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ..store import Query

SECTIONS: Final = ("context", "data")
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")
_LITERALS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}


class FilterError(ValueError):
    """A filter the console cannot use; the message says what to write instead."""


@dataclass(frozen=True)
class Filter:
    """Name globs (any may match) and (section, key, value) fields (all must match)."""

    names: tuple[str, ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()

    def query(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 100,
        newest_first: bool = False,
    ) -> Query:
        """The store query for this filter over [since, until)."""
        return Query(
            names=self.names,
            since=since,
            until=until,
            context=tuple((k, v) for s, k, v in self.fields if s == "context"),
            data=tuple((k, v) for s, k, v in self.fields if s == "data"),
            limit=limit,
            newest_first=newest_first,
        )

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when `event` passes every part of the filter (the store's semantics)."""
        if self.names:
            name = str(event.get("name"))
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.names):
                return False
        for section, key, value in self.fields:
            part = event.get(section)
            if not isinstance(part, Mapping) or key not in part:
                return False
            if not _equal(part[key], value):
                return False
        return True

    def as_params(self) -> list[tuple[str, str]]:
        """The query-string pairs that give this filter back (for links)."""
        pairs = [("name", name) for name in self.names]
        pairs += [("where", f"{section}.{key}={value}") for section, key, value in self.fields]
        return pairs

    def describe(self) -> str:
        """A short text of the filter, for page captions."""
        parts = list(self.names) + [f"{s}.{k}={v}" for s, k, v in self.fields]
        return ", ".join(parts) or "everything"


def _equal(actual: Any, wanted: str) -> bool:
    if wanted in _LITERALS:
        literal = _LITERALS[wanted]
        return actual is literal if literal is not None else actual is None
    if isinstance(actual, bool):
        return False
    if actual == wanted:
        return True
    if _INT.fullmatch(wanted):
        return type(actual) in (int, float) and actual == int(wanted)
    if _FLOAT.fullmatch(wanted):
        return type(actual) in (int, float) and actual == float(wanted)
    return False


def _check_glob(pattern: str) -> str:
    if not pattern:
        raise FilterError("an empty event name matches nothing; give a name or a glob like edx.*")
    depth = 0
    for ch in pattern:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
    if depth:
        raise FilterError(f"name {pattern!r} opens '[' without closing it; write e.g. edx.[a-c]*")
    return pattern


def parse_field(text: str) -> tuple[str, str, str]:
    """``[context.|data.]KEY=VALUE`` as (section, key, value); a bare KEY is a context key."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise FilterError(
            f"{text!r} is not KEY=VALUE; write e.g. user_id=10938 or data.video_id=v1"
        )
    section = "context"
    head, dot, rest = key.partition(".")
    if dot and head in SECTIONS:
        section, key = head, rest
    if not key or '"' in key:
        raise FilterError(f"{text!r}: the key must be a field name without quotes")
    return section, key, value


def parse_filter(names: Iterable[str], where: Iterable[str]) -> Filter:
    """A `Filter` from repeated ``name`` globs (commas also separate) and ``where`` fields.

    Blank values are ignored (an empty form box means "no filter").
    """
    globs: list[str] = []
    for value in names:
        for part in value.split(","):
            part = part.strip()
            if part:
                globs.append(_check_glob(part))
    fields = [parse_field(text.strip()) for text in where if text.strip()]
    return Filter(tuple(globs), tuple(fields))
