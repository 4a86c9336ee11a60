"""Send events as JSON text to a Python logger (the Open edX LoggerBackend).

An event whose JSON is longer than `max_event_size` characters is never lost
silently: by default (``oversize="drop"``, the Open edX behaviour) it is not
logged, a warning names the event and its size (never its payload) once per
event name, and the counter ``logger.oversize_dropped`` goes up. With
``oversize="truncate"`` it is logged with ``data`` replaced by a marker that
keeps the start of the original data and its size; if even the event's id,
name and timestamp do not fit, it is dropped and counted as above.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

from .. import diagnostics
from ..serialization import dumps_str

MAX_EVENT_SIZE: Final = 1024  # the Open edX default, in characters
Oversize = Literal["drop", "truncate"]
_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


class LoggerBackend:
    """Log each event as one JSON string to `logging.getLogger(name)` at `level`."""

    def __init__(
        self,
        name: str | None = None,
        level: str = "info",
        max_event_size: int | None = MAX_EVENT_SIZE,
        oversize: Oversize = "drop",
        **_ignored: Any,  # Open edX passes unknown options through; we accept and ignore them
    ) -> None:
        if not isinstance(level, str) or level.lower() not in _LEVELS:
            raise ValueError(f"level must be one of {_LEVELS}, not {level!r}")
        if max_event_size is not None and (
            not isinstance(max_event_size, int) or max_event_size < 64
        ):
            raise ValueError(f"max_event_size must be None or an int >= 64, not {max_event_size!r}")
        if oversize not in ("drop", "truncate"):
            raise ValueError(f"oversize must be 'drop' or 'truncate', not {oversize!r}")
        if _ignored:
            # Kept for Open edX settings trees, but a typo must not pass unseen.
            diagnostics.warn_once(
                ("logger.ignored_options", *sorted(_ignored)),
                "LoggerBackend ignores unknown option(s) %s; known: name, level, "
                "max_event_size, oversize",
                sorted(_ignored),
            )
        self.event_logger = logging.getLogger(name)
        self.max_event_size = max_event_size
        self.oversize: Oversize = oversize
        self._level: int = logging.getLevelName(level.upper())

    def send(self, event: dict[str, Any]) -> None:
        """Log `event`; see the module docs for events over `max_event_size`."""
        if not self.event_logger.isEnabledFor(self._level):
            return
        text = dumps_str(event)
        limit = self.max_event_size
        if limit is not None and len(text) > limit:
            kept = self._oversized(event, text, limit)
            if kept is None:
                return
            text = kept
        self.log(text)

    def log(self, text: str) -> None:
        """Log one line of event JSON, as ``event_logger.<level>(text)`` would.

        The record names this method as its source, as `Logger.findCaller`
        would, but without walking the stack for it; with `Logger._log` left
        out too, a logged event costs a fifth fewer instructions. Filters,
        handlers, propagation and a custom record factory apply as usual.
        """
        logger = self.event_logger
        logger.handle(
            logger.makeRecord(
                logger.name, self._level, _SOURCE_FILE, _SOURCE_LINE, text, (), None, "log"
            )
        )

    def _oversized(self, event: dict[str, Any], text: str, limit: int) -> str | None:
        name = event.get("name")
        truncated = _truncate(event, len(text), limit) if self.oversize == "truncate" else None
        if truncated is None:
            diagnostics.increment("logger.oversize_dropped")
            diagnostics.warn_once(
                ("logger.oversize", str(name)),
                "event %r is %d characters, over max_event_size=%d: not logged (%s)",
                name,
                len(text),
                limit,
                "set oversize='truncate' to log it truncated"
                if self.oversize == "drop"
                else "too large even when truncated",
            )
            return None
        diagnostics.increment("logger.oversize_truncated")
        diagnostics.warn_once(
            ("logger.truncated", str(name)),
            "event %r is %d characters, over max_event_size=%d: logged truncated",
            name,
            len(text),
            limit,
        )
        return truncated


_SOURCE_FILE: Final = LoggerBackend.log.__code__.co_filename
_SOURCE_LINE: Final = LoggerBackend.log.__code__.co_firstlineno


def _truncate(event: dict[str, Any], size: int, limit: int) -> str | None:
    """`event` as JSON of at most `limit` characters with its data cut; None if it cannot fit."""
    data_text = dumps_str({"d": event.get("data")})[5:-1]
    shell = {**event, "data": {"_truncated": True, "_original_size": size, "_prefix": ""}}
    room = limit - len(dumps_str(shell))
    if room >= 0:
        shell["data"]["_prefix"] = data_text[:room]
        truncated = dumps_str(shell)
        while len(truncated) > limit and shell["data"]["_prefix"]:
            # escaping can lengthen the prefix; trim until it fits
            shell["data"]["_prefix"] = shell["data"]["_prefix"][: -(len(truncated) - limit)]
            truncated = dumps_str(shell)
        return truncated
    # The envelope alone is too big (a huge context): keep only the identity.
    minimal = {key: event[key] for key in ("id", "name", "timestamp") if key in event} | {
        "data": {"_truncated": True, "_original_size": size},
        "context": {},
    }
    text = dumps_str(minimal)
    # A line over the limit would be cut by the log pipeline into invalid JSON.
    return text if len(text) <= limit else None


class DateTimeJSONEncoder(json.JSONEncoder):
    """A `json` encoder for datetimes and dates (Open edX); naive datetimes are UTC."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            o = o.replace(tzinfo=UTC) if o.tzinfo is None else o.astimezone(UTC)
            return o.isoformat()
        if isinstance(o, date):
            return o.isoformat()
        return super().default(o)
