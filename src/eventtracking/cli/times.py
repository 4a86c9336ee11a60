"""Times as people write them on a command line: ISO-8601, ``now`` or an age."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

import click

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TIME_HELP: Final = "ISO-8601 (2026-11-25T10:00, 2026-11-25; naive = UTC), 90m/2h/3d ago, or now"


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """The aware UTC datetime `text` names; ValueError with a hint if it names none.

    Accepts ISO-8601 (a naive value is UTC), ``now``, and a duration ago:
    a number followed by s, m, h, d or w (``90m``, ``2h``, ``3d``).
    """
    now = datetime.now(UTC) if now is None else now
    value = text.strip().lower()
    try:
        if value == "now":
            return now
        match = _DURATION.fullmatch(value)
        if match:
            return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
        parsed = datetime.fromisoformat(text.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a time; use {TIME_HELP}") from None


def time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Click callback: the `parse_time` of `value`; BadParameter (exit 2) if it is not a time."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


# The two options every command that reads a time range takes.
since_option = click.option(
    "--since", callback=time_option, metavar="TIME", help=f"At or after: {TIME_HELP}."
)
until_option = click.option(
    "--until", callback=time_option, metavar="TIME", help="Before (same formats)."
)
