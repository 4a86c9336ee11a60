"""Log lines that outside input cannot forge: control characters escaped, length bounded.

Event names, field names, header values and exception messages can come from
an anonymous browser. Written into a log line as they are, a newline starts
a forged line (``2099-01-01 00:00:00 CRITICAL django.security ...``), a
carriage return or an ANSI escape rewrites what a terminal shows, and a NUL
cuts the line short for some readers. `EscapeFilter`, attached to every
logger of this library by `safe_logger`, rewrites each record once it is
formatted: control characters (C0, DEL, C1, the Unicode line and paragraph
separators and the bidirectional overrides) become visible escapes such as
``\\n``, ``\\r``, ``\\x1b`` and ``\\x00``, and the message is cut to
`MAX_MESSAGE` characters. In a traceback only the exception messages are
escaped; the frames keep their lines.
"""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MAX_MESSAGE",
    "EscapeFilter",
    "escape",
    "safe_logger",
    "safe_traceback",
    "without_password",
]

MAX_MESSAGE: Final = 2000  # characters of one log message, after escaping

# C0, DEL and C1 controls, line/paragraph separators, bidirectional marks and overrides.
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, limit: int | None = MAX_MESSAGE) -> str:
    """`text` on one line: control characters shown as escapes, cut to `limit` characters."""
    safe = _UNSAFE.sub(_visible, text)
    if limit is not None and len(safe) > limit:
        return f"{safe[:limit]}...({len(safe) - limit} more characters)"
    return safe


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def safe_traceback(exc_info: ExcInfo) -> str:
    """The traceback as logging prints it, with every exception message escaped onto one line."""
    chunks: list[str] = []
    _format(traceback.TracebackException(*exc_info), chunks, set())
    return "".join(chunks).rstrip("\n")


def _format(exc: traceback.TracebackException, out: list[str], seen: set[int]) -> None:
    seen.add(id(exc))
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        _format(exc.__cause__, out, seen)
        out.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif (
        exc.__context__ is not None
        and not exc.__suppress_context__
        and id(exc.__context__) not in seen
    ):
        _format(exc.__context__, out, seen)
        out.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if exc.stack:
        out.append("Traceback (most recent call last):\n")
        out.extend(exc.stack.format())
    only = "".join(exc.format_exception_only()).rstrip("\n")
    out.append(escape(only) + "\n")


class EscapeFilter(logging.Filter):
    """Rewrites a record so that its message and exception text stay on their own lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it as it always does
            return True
        safe = escape(message)
        if safe != message:  # a clean record keeps its template (tools group lines by it)
            record.msg, record.args = safe, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = safe_traceback(record.exc_info)
        return True


_FILTER: Final = EscapeFilter()


def safe_logger(name: str | logging.Logger) -> logging.Logger:
    """The logger `name` (or the logger given) with `EscapeFilter` attached (once)."""
    log = logging.getLogger(name) if isinstance(name, str) else name
    if not any(isinstance(f, EscapeFilter) for f in log.filters):
        log.addFilter(_FILTER)
    return log


def without_password(url: str) -> str:
    """`url` for a message: a password in it (``redis://:secret@host``) becomes ``***``.

    A string that does not parse as a URL but has an ``@`` in its network part
    loses everything before that ``@``.
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
