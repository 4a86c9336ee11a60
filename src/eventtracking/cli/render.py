"""How the store commands print events: times, one-line summaries, tables and chosen columns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .filters import Column

KEY_CONTEXT: Final = ("user_id", "username", "session_id", "course_id")


def console() -> Console:
    """A console that prints event text literally (event data may hold [brackets])."""
    return Console(highlight=False, markup=False)


def short(value: Any, width: int = 60) -> str:
    """`value` as text, cut to `width` characters with an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def when(event: dict[str, Any]) -> datetime | None:
    """The event's timestamp as an aware UTC datetime, or None if unreadable."""
    try:
        stamp = datetime.fromisoformat(str(event.get("timestamp")))
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def clock(event: dict[str, Any]) -> str:
    """The event's time as ``YYYY-MM-DD HH:MM:SS`` (UTC), or the raw value."""
    stamp = when(event)
    return str(event.get("timestamp")) if stamp is None else f"{stamp:%Y-%m-%d %H:%M:%S}"


def iso(event: dict[str, Any]) -> str:
    """The event's time in ISO-8601 (UTC), or the raw value."""
    stamp = when(event)
    return str(event.get("timestamp")) if stamp is None else stamp.isoformat()


def _fields(mapping: Any, keys: Sequence[str], width: int) -> str:
    if not isinstance(mapping, dict):
        return "" if mapping is None else short(mapping, width)
    return " ".join(f"{key}={short(mapping[key], width)}" for key in keys if key in mapping)


def context_summary(event: dict[str, Any]) -> str:
    """The usual identifying context keys (user, session, course), else the first three."""
    context = event.get("context")
    keys = [key for key in KEY_CONTEXT if isinstance(context, dict) and key in context]
    return _fields(context, keys or list(context or ())[:3], 40)


def data_summary(event: dict[str, Any]) -> str:
    """Every data field, each cut short, in one line."""
    data = event.get("data")
    return short(_fields(data, list(data) if isinstance(data, dict) else [], 32), 120)


def line(event: dict[str, Any]) -> Text:
    """One event on one line: time, name, context summary, data summary."""
    return Text("  ").join(
        [Text(clock(event), style="cyan"), Text(str(event.get("name")), style="bold")]
        + [Text(part) for part in (context_summary(event), data_summary(event)) if part]
    )


def table(
    events: list[dict[str, Any]], caption: str | None = None, columns: Sequence[Column] = ()
) -> Table:
    """Events as a table: time and name, then `columns` (default: context and data summaries)."""
    out = Table(caption=caption, caption_justify="left")
    out.add_column("time (UTC)", no_wrap=True, style="cyan")
    out.add_column("name", no_wrap=True, style="bold")
    if columns:
        for column in columns:
            out.add_column(column.heading)
    else:
        out.add_column("context", ratio=1)
        out.add_column("data", ratio=2)
    for event in events:
        if columns:
            cells = ["" if (v := c.value(event)) is None else short(v, 60) for c in columns]
        else:
            cells = [context_summary(event), data_summary(event)]
        out.add_row(clock(event), str(event.get("name")), *cells)
    return out


def projected(event: dict[str, Any], columns: Sequence[Column]) -> dict[str, Any]:
    """What ``--json --columns`` prints for `event`: its time and name plus the chosen values."""
    out = {"timestamp": iso(event), "name": event.get("name")}
    out.update((column.heading, column.value(event)) for column in columns)
    return out
