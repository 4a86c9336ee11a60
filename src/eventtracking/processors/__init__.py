"""Processors: callables ``event -> event | None`` run by a routing backend.

Return the event to pass on (None means unchanged) or raise
`EventEmissionExit` to drop it. Change nested values copy-on-write: the
routing backend gives each chain a private top-level copy only.
"""

from __future__ import annotations

from .exceptions import EventEmissionExit, NoBackendEnabled, NoTransformerImplemented
from .redact import Redactor
from .regex_filter import RegexFilter
from .sample import Sampler
from .whitelist import NameWhitelistProcessor

__all__ = [
    "EventEmissionExit",
    "NameWhitelistProcessor",
    "NoBackendEnabled",
    "NoTransformerImplemented",
    "Redactor",
    "RegexFilter",
    "Sampler",
]
