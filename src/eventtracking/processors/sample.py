"""Keep a share of events per event-name pattern, deterministically by event id."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from .. import diagnostics
from ..exceptions import ImproperlyConfigured
from .exceptions import EventEmissionExit

_SCALE = 2**64


class Sampler:
    """Keep each event with the rate of the first matching name pattern (glob syntax).

    `rates` maps patterns such as ``"edx.video.*"`` to a keep-rate in [0, 1],
    tried in the given order; names that match none use `default`. The
    decision hashes the event id, so every process and every replay of the
    same event decides the same way; events without an id fall back to a
    hash of name and timestamp. Dropped events are counted under
    ``sampler.dropped`` (in `counters`, which `Tracker.stats()` reads, and
    in the process totals).
    """

    def __init__(self, rates: Mapping[str, float], default: float = 1.0) -> None:
        if not isinstance(rates, Mapping):
            raise ImproperlyConfigured("Sampler rates must be a mapping of pattern to rate")
        compiled: list[tuple[re.Pattern[str], int, str]] = []
        # The default is a final catch-all rule appended after the caller's rules;
        # merging it into `rates` as a "*" key would overwrite an explicit "*" rate.
        for pattern, rate in [*rates.items(), ("*", default)]:
            if not isinstance(pattern, str):
                raise ImproperlyConfigured(
                    f"Sampler patterns must be strings, not {type(pattern).__name__} {pattern!r}"
                )
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ImproperlyConfigured(
                    f"Sampler rate for {pattern!r} must be a number in [0, 1], not {rate!r}"
                )
            compiled.append((re.compile(fnmatch.translate(pattern)), int(rate * _SCALE), pattern))
        self._rules = compiled
        self._by_name: dict[str, tuple[int, str]] = {}
        self.counters = diagnostics.Counters()

    def _rule(self, name: str) -> tuple[int, str]:
        rule = self._by_name.get(name)
        if rule is None:
            for regex, threshold, pattern in self._rules:
                if regex.match(name):
                    rule = (threshold, pattern)
                    break
            else:  # pragma: no cover - the "*" rule always matches
                rule = (_SCALE, "*")
            if len(self._by_name) < 10_000:
                self._by_name[name] = rule
        return rule

    def keeps(self, event: Mapping[str, Any]) -> bool:
        """True if `event` is in the sample."""
        threshold, _ = self._rule(str(event.get("name")))
        if threshold >= _SCALE:
            return True
        if threshold <= 0:
            return False
        key = event.get("id") or f"{event.get('name')}|{event.get('timestamp')}"
        digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") < threshold

    def __call__(self, event: Any) -> Any:
        if self.keeps(event):
            return event
        self.counters.increment("sampler.dropped")
        raise EventEmissionExit()
