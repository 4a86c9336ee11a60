"""Keep only events whose names are on a list (Open edX `NameWhitelistProcessor`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .exceptions import EventEmissionExit


class NameWhitelistProcessor:
    """Drop events whose ``name`` is not in `whitelist`; a list of events is filtered."""

    def __init__(self, whitelist: Iterable[str] | None = None, **_ignored: Any) -> None:
        if isinstance(whitelist, str | bytes) or whitelist is None:
            raise TypeError(
                "NameWhitelistProcessor needs a collection of allowed event names "
                "in the 'whitelist' parameter"
            )
        try:
            self.whitelist = frozenset(whitelist)
        except TypeError:
            raise TypeError(
                "NameWhitelistProcessor needs a collection of allowed event names "
                "in the 'whitelist' parameter"
            ) from None

    def __call__(self, event: Any) -> Any:
        if isinstance(event, list):
            kept = [e for e in event if e.get("name") in self.whitelist]
            if not kept:
                raise EventEmissionExit()
            return kept
        if event["name"] not in self.whitelist:
            raise EventEmissionExit()
        return event
