"""Mask secrets in events before they reach any backend."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ..exceptions import ImproperlyConfigured

DEFAULT_PATTERNS: Final = (
    r"passw(or)?d",
    r"passwd",
    r"secret",
    r"token",
    r"api[-_]?key",
    r"cookie",
    r"authorization",
    r"csrf",
    r"session[-_]?id",
    r"credit[-_]?card",
    r"(?<![a-z])card[-_]?(number|num|no)(?![a-z])",
    r"(?<![a-z])(cvv|cvc)(?![a-z])",
)
MASK: Final = "[REDACTED]"


class Redactor:
    """Replace the value of every key that matches a pattern, in data and context, at any depth.

    Patterns are case-insensitive regular expressions searched anywhere in a
    key (``token`` masks ``access_token``). `patterns` replaces the defaults;
    `extra_patterns` adds to them. `fields` chooses which top-level parts of
    the event are searched. Copy-on-write: mappings and lists that hold a
    secret are copied, everything else is shared with the original event.
    """

    def __init__(
        self,
        patterns: Iterable[str] | None = None,
        extra_patterns: Iterable[str] = (),
        mask: Any = MASK,
        fields: Iterable[str] = ("data", "context"),
    ) -> None:
        if isinstance(patterns, str) or isinstance(extra_patterns, str):
            raise ImproperlyConfigured("Redactor patterns must be a list of strings")
        chosen = list(DEFAULT_PATTERNS if patterns is None else patterns) + list(extra_patterns)
        if not chosen:
            raise ImproperlyConfigured("Redactor needs at least one pattern")
        # Compiled one by one, not joined into one alternation: the error then
        # names the pattern to fix, and patterns with inline flags or named
        # groups cannot clash with each other. Decisions are cached per key.
        self._regexes: list[re.Pattern[str]] = []
        for pattern in chosen:
            if not isinstance(pattern, str):
                raise ImproperlyConfigured(
                    f"Redactor patterns must be strings, not {type(pattern).__name__} {pattern!r}"
                )
            try:
                self._regexes.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ImproperlyConfigured(
                    f"Redactor has an invalid pattern {pattern!r}: {exc}"
                ) from exc
        self.patterns = tuple(chosen)
        self.mask = mask
        self.fields = tuple(fields)
        self._decisions: dict[str, bool] = {}

    def _secret(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        decided = self._decisions.get(key)
        if decided is None:
            decided = any(regex.search(key) for regex in self._regexes)
            if len(self._decisions) < 100_000:
                self._decisions[key] = decided
        return decided

    def __call__(self, event: Any) -> Any:
        if isinstance(event, list):
            return [self(e) for e in event]
        for field in self.fields:
            value = event.get(field)
            if value is not None:
                redacted = self._redact(value, 0)
                if redacted is not value:
                    event[field] = redacted
        return event

    def _redact(self, value: Any, depth: int) -> Any:
        """Return `value` itself when nothing inside it is secret, else a redacted copy."""
        if depth > 100:
            return value
        if isinstance(value, Mapping):
            out: dict[Any, Any] | None = None
            for key, child in value.items():
                new = self.mask if self._secret(key) else self._redact(child, depth + 1)
                if new is not child:
                    if out is None:
                        out = dict(value)
                    out[key] = new
            return value if out is None else out
        if isinstance(value, list | tuple):
            items: list[Any] | None = None
            for i, child in enumerate(value):
                new = self._redact(child, depth + 1)
                if new is not child:
                    if items is None:
                        items = list(value)
                    items[i] = new
            return value if items is None else items
        return value
