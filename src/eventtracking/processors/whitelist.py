"""Keep only events whose names are on a list (Open edX `NameWhitelistProcessor`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from .exceptions import EventEmissionExit

_NEEDS_COLLECTION: Final = (
    "The NameWhitelistProcessor must be passed a collection of allowed names "
    'using the "whitelist" parameter'
)


class NameWhitelistProcessor:
    """Drop events whose ``name`` is not in `whitelist`.

    Given a list of events (event-routing-backends batches them), returns the
    list of those that pass, which may be empty, as Open edX's does. A
    `whitelist` that is missing, a single string or not iterable raises
    TypeError. Other keyword options are accepted and ignored (Open edX
    settings trees pass them).
    """

    def __init__(self, whitelist: Iterable[str] | None = None, **_ignored: Any) -> None:
        if whitelist is None or isinstance(whitelist, str | bytes):
            raise TypeError(_NEEDS_COLLECTION)
        try:
            self.whitelist = frozenset(whitelist)
        except TypeError as exc:
            raise TypeError(_NEEDS_COLLECTION) from exc

    def __call__(self, event: Any) -> Any:
        if isinstance(event, list):
            return [e for e in event if e["name"] in self.whitelist]
        if event["name"] not in self.whitelist:
            raise EventEmissionExit()
        return event
