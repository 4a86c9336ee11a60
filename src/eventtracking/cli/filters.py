"""Filters and columns as people type them: checked up front, dotted paths into nested fields.

``--name`` globs are refused when empty or malformed (an unclosed ``[``).
``--context`` and ``--data`` take ``KEY=VALUE`` where KEY may be a dotted
path (``--data user.id=7`` looks inside ``{"user": {"id": 7}}``). Top-level
keys go to the store's own query; dotted ones are matched here on the events
the store returns, with the same rules: a value matches the string and the
number it spells, and ``true``, ``false``, ``null`` match those JSON literals.
A key that itself contains a dot (``{"a.b": 1}``) matches too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import click

FC = TypeVar("FC", bound=Callable[..., Any])

SECTIONS: Final = {"ctx": "context", "context": "context", "data": "data"}
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")
_LITERALS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}

Pair = tuple[str, str]


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable name glob, or None when it is."""
    if not pattern.strip():
        return "an empty name matches no event; give a name or a glob such as 'edx.video.*'"
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            start = i + 2 if pattern[i + 1 : i + 2] == "^" else i + 1
            end = pattern.find("]", start + 1)  # the first character may be ']' itself
            if end == -1:
                return (
                    f"{pattern!r} has a '[' that is never closed; write a set like "
                    "'edx.[vp]*' or drop the '['"
                )
            i = end
        i += 1
    return None


def names_option(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """Option callback: the name globs, each checked by `glob_problem` (exit 2 if bad)."""
    for value in values:
        problem = glob_problem(value)
        if problem:
            raise click.BadParameter(problem, ctx, param)
    return values


def name_globs(help: str) -> Callable[[FC], FC]:
    """The repeatable ``--name GLOB`` option (into ``names``), each glob checked."""
    return click.option(
        "--name", "names", multiple=True, callback=names_option, metavar="GLOB", help=help
    )


def pairs_option(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[Pair, ...]:
    """Option callback: ``KEY=VALUE`` strings as (key, value) pairs; KEY may be a dotted path."""
    pairs = []
    for value in values:
        key, sep, text = value.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(
                f"{value!r} is not KEY=VALUE; write it like user_id=10938", ctx, param
            )
        if '"' in key:
            raise click.BadParameter(f"{key!r}: a key cannot contain '\"'", ctx, param)
        if any(not part for part in key.split(".")):
            raise click.BadParameter(
                f"{key!r} has an empty part; write a dotted path like user.id", ctx, param
            )
        pairs.append((key, text))
    return tuple(pairs)


def split_nested(pairs: Iterable[Pair]) -> tuple[tuple[Pair, ...], tuple[Pair, ...]]:
    """(top-level pairs the store matches, dotted pairs matched by `matches`)."""
    top: list[Pair] = []
    nested: list[Pair] = []
    for key, value in pairs:
        (nested if "." in key else top).append((key, value))
    return tuple(top), tuple(nested)


_MISSING: Final = object()


def lookup(mapping: Any, path: str) -> Any:
    """The value at dotted `path` inside `mapping`, or `_MISSING`.

    A key holding a dot is tried whole before it is split, so ``a.b`` finds
    ``{"a.b": 1}`` as well as ``{"a": {"b": 1}}``.
    """
    if not isinstance(mapping, Mapping):
        return _MISSING
    if path in mapping:
        return mapping[path]
    head, sep, rest = path.partition(".")
    while sep:
        if head in mapping:
            found = lookup(mapping[head], rest)
            if found is not _MISSING:
                return found
        more, sep, rest = rest.partition(".")
        head = f"{head}.{more}"
    return _MISSING


def value_matches(found: Any, text: str) -> bool:
    """True when a stored value equals what the user typed (see module docs)."""
    if found is _MISSING:
        return False
    if text in _LITERALS:
        return found is _LITERALS[text]  # True, False and None are singletons
    if isinstance(found, bool):
        return False
    if isinstance(found, str):
        return found == text
    if isinstance(found, int | float):
        if _INT.fullmatch(text):
            return found == int(text)
        if _FLOAT.fullmatch(text):
            return found == float(text)
    return False


def matches(event: Mapping[str, Any], context: Iterable[Pair], data: Iterable[Pair]) -> bool:
    """True when every (path, value) pair holds in the event's context and data."""
    for section, pairs in (("context", context), ("data", data)):
        part = event.get(section)
        for key, text in pairs:
            if not value_matches(lookup(part, key), text):
                return False
    return True


@dataclass(frozen=True)
class Column:
    """One ``--columns`` entry: a heading and where its value lives."""

    heading: str
    section: str
    path: str

    def value(self, event: Mapping[str, Any]) -> Any:
        """The value shown for `event`, or None when the event has none."""
        found = lookup(event.get(self.section), self.path)
        return None if found is _MISSING else found


def columns_option(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Column]:
    """Option callback: ``ctx.user_id,data.url`` as Columns (exit 2 if malformed)."""
    if value is None:
        return []
    columns = []
    for item in (part.strip() for part in value.split(",")):
        prefix, sep, path = item.partition(".")
        if prefix not in SECTIONS or not sep or any(not p for p in path.split(".")):
            raise click.BadParameter(
                f"{item!r} is not a column; write ctx.KEY or data.KEY separated by commas, "
                "like ctx.user_id,data.url",
                ctx,
                param,
            )
        columns.append(Column(item, SECTIONS[prefix], path))
    return columns
