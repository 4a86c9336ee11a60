"""Send events as JSON text to a Python logger (the Open edX LoggerBackend).

By default each line is exactly what Open edX event-tracking 4.x writes:
``json.dumps(event, cls=DateTimeJSONEncoder)`` (default separators, non-ASCII
escaped, datetimes converted to UTC), logged through
``getattr(logger, level)(text)``; so log parsers, Vector rules and grep
patterns written for tracking.log keep working. As there, a value that JSON
cannot encode raises TypeError from `send`, which the routing backend logs
and counts (``backend.<name>.errors``).

``format="compact"`` opts in to the library's own encoder instead: orjson,
compact separators, UTF-8 text, and values it cannot encode repaired rather
than refused (see `eventtracking.serialization`); about twice as fast.

An event whose JSON is longer than `max_event_size` characters is not
logged, as in Open edX, but never silently: a warning names the event and its
size (never its payload) once per event name, and the counter
``logger.oversize_dropped`` goes up (in the backend's `counters`, which
`Tracker.stats()` reads, and in the process totals). With
``oversize="truncate"`` it is logged with ``data`` replaced by a marker that
keeps the start of the original data and its size; if even the event's id,
name and timestamp do not fit, it is dropped and counted as above.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

from .. import diagnostics
from ..serialization import dumps_str

MAX_EVENT_SIZE: Final = 1024  # the Open edX default, in characters
Oversize = Literal["drop", "truncate"]
Format = Literal["openedx", "compact"]
# Logger methods a level may name, as ``getattr(logger, level)`` accepts them.
_LEVELS: Final = ("debug", "info", "warning", "warn", "error", "exception", "critical", "fatal")
# Levels logged by building the record directly (see `LoggerBackend.log`).
_DIRECT: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_Logger: Final = logging.Logger  # bound at import: a test that patches `logging` gets the slow path


class DateTimeJSONEncoder(json.JSONEncoder):
    """A `json` encoder for datetimes and dates (Open edX); naive datetimes are taken as UTC."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            o = o.replace(tzinfo=UTC) if o.tzinfo is None else o.astimezone(UTC)
            return o.isoformat()
        if isinstance(o, date):
            return o.isoformat()
        return super().default(o)


# json.dumps(event, cls=DateTimeJSONEncoder) builds this same encoder for every
# call; one instance (it keeps no state between calls) writes the same text
# about 17% faster.
_OPENEDX_ENCODER: Final = DateTimeJSONEncoder()


def dumps_openedx(event: Any) -> str:
    """`event` as Open edX's LoggerBackend writes it; TypeError for a value it cannot encode.

    The text of ``json.dumps(event, cls=DateTimeJSONEncoder)``: default
    separators, non-ASCII escaped, NaN and infinities as JavaScript literals.
    """
    return _OPENEDX_ENCODER.encode(event)


class LoggerBackend:
    """Log each event as one JSON string to `logging.getLogger(name)` at `level`.

    `level` is the name of a logger method (``info`` by default; case does not
    matter); `max_event_size` any int, or None for no limit; `format` and
    `oversize` are described in the module docs. Unknown options are
    accepted and ignored, as Open edX settings trees may pass them, with one
    warning that names them.
    """

    def __init__(
        self,
        name: str | None = None,
        level: str = "info",
        max_event_size: int | None = MAX_EVENT_SIZE,
        oversize: Oversize = "drop",
        format: Format = "openedx",
        **_ignored: Any,
    ) -> None:
        if not isinstance(level, str) or level.lower() not in _LEVELS:
            raise ValueError(f"level must be one of {_LEVELS}, not {level!r}")
        if max_event_size is not None and (
            isinstance(max_event_size, bool) or not isinstance(max_event_size, int)
        ):
            raise ValueError(f"max_event_size must be an int or None, not {max_event_size!r}")
        if oversize not in ("drop", "truncate"):
            raise ValueError(f"oversize must be 'drop' or 'truncate', not {oversize!r}")
        if format not in ("openedx", "compact"):
            raise ValueError(f"format must be 'openedx' or 'compact', not {format!r}")
        if _ignored:
            # Kept for Open edX settings trees, but a typo must not pass unseen.
            diagnostics.warn_once(
                ("logger.ignored_options", *sorted(_ignored)),
                "LoggerBackend ignores unknown option(s) %s; known: name, level, "
                "max_event_size, oversize, format",
                sorted(_ignored),
            )
        self.event_logger = logging.getLogger(name)
        self.counters = diagnostics.Counters()  # oversize events (Tracker.stats)
        self.max_event_size = max_event_size
        self.oversize: Oversize = oversize
        self.format: Format = format
        self.encode: Callable[[Any], str] = dumps_openedx if format == "openedx" else dumps_str
        method = level.lower()
        self.log: Callable[[str], None] = getattr(self.event_logger, method)
        self._level = _DIRECT.get(method, 0)
        self._direct = method in _DIRECT and isinstance(self.event_logger, _Logger)
        if self._direct:
            self.log = self._log_direct

    @property
    def leaves_events_unchanged(self) -> bool:
        """True: it only encodes events; False for a subclass that replaced `send`.

        Deployments subclass Open edX's class, and such a `send` may change
        events: the routing backend then gives it a private copy of each.
        """
        return type(self).send is LoggerBackend.send

    def send(self, event: Any) -> None:
        """Log `event`; see the module docs for values JSON cannot encode and big events."""
        if self._direct and not self.event_logger.isEnabledFor(self._level):
            return  # nothing would be written: skip the encoding, count no drop
        text = self.encode(event)
        limit = self.max_event_size
        if limit is not None and len(text) > limit:
            kept = self._oversized(event, text, limit)
            if kept is None:
                return
            text = kept
        self.log(text)

    def _log_direct(self, text: str) -> None:
        """Log one line as ``event_logger.<level>(text)`` does, with less work.

        The record names this method as its source, as `Logger.findCaller`
        would, but without walking the stack for it; with `Logger._log` left
        out too, a logged event costs a fifth fewer instructions. Level checks,
        filters, handlers, propagation and a custom record factory apply as usual.
        """
        logger = self.event_logger
        level = self._level
        if not logger.isEnabledFor(level):
            return
        logger.handle(
            logger.makeRecord(
                logger.name, level, _SOURCE_FILE, _SOURCE_LINE, text, (), None, "_log_direct"
            )
        )

    def _oversized(self, event: Any, text: str, limit: int) -> str | None:
        name = event.get("name") if isinstance(event, dict) else None
        truncated = (
            _truncate(event, len(text), limit, self.encode)
            if self.oversize == "truncate" and isinstance(event, dict)
            else None
        )
        if truncated is None:
            self.counters.increment("logger.oversize_dropped")
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
        self.counters.increment("logger.oversize_truncated")
        diagnostics.warn_once(
            ("logger.truncated", str(name)),
            "event %r is %d characters, over max_event_size=%d: logged truncated",
            name,
            len(text),
            limit,
        )
        return truncated


_SOURCE_FILE: Final = LoggerBackend._log_direct.__code__.co_filename
_SOURCE_LINE: Final = LoggerBackend._log_direct.__code__.co_firstlineno


def _truncate(
    event: dict[str, Any], size: int, limit: int, encode: Callable[[Any], str]
) -> str | None:
    """`event` as JSON of at most `limit` characters with its data cut; None if it cannot fit."""
    data_text = encode({"d": event.get("data")})
    data_text = data_text[data_text.index(":") + 1 : -1].lstrip()
    shell = {**event, "data": {"_truncated": True, "_original_size": size, "_prefix": ""}}
    room = limit - len(encode(shell))
    if room >= 0:
        shell["data"]["_prefix"] = data_text[:room]
        truncated = encode(shell)
        while len(truncated) > limit and shell["data"]["_prefix"]:
            # escaping can lengthen the prefix; trim until it fits
            shell["data"]["_prefix"] = shell["data"]["_prefix"][: -(len(truncated) - limit)]
            truncated = encode(shell)
        return truncated
    # The envelope alone is too big (a huge context): keep only the identity.
    minimal = {key: event[key] for key in ("id", "name", "timestamp") if key in event} | {
        "data": {"_truncated": True, "_original_size": size},
        "context": {},
    }
    text = encode(minimal)
    # A line over the limit would be cut by the log pipeline into invalid JSON.
    return text if len(text) <= limit else None
