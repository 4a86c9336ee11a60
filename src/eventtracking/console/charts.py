"""The numbers behind the console's charts: rates per type, top types, top values, sparklines.

Every question is asked over a time window (`Window`), so the store answers
it from its time indexes; nothing reads the whole store into memory. Times
are UTC; buckets are a minute or an hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ..store import EventStore
from .filters import Filter, FilterError
from .sql import Dialect

RANGES: Final = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
BUCKETS: Final = {"minute": 60, "hour": 3600}
DEFAULT_RANGE: Final = "24h"
MAX_BUCKETS: Final = 2000  # bars per chart: more says nothing and slows the page
SERIES_SHOWN: Final = 8  # types drawn by name; the rest are summed as "other"
OTHER: Final = "(other)"
_FIELD = re.compile(r"(context|data)\.([^\"]+)")


@dataclass(frozen=True)
class Window:
    """[start, end) in buckets of `bucket` seconds."""

    start: datetime
    end: datetime
    bucket: int
    label: str
    anchored_to_data: bool = False

    def starts(self) -> list[datetime]:
        """The start of every bucket in the window, oldest first."""
        step = timedelta(seconds=self.bucket)
        out, at = [], self.start
        while at < self.end:
            out.append(at)
            at += step
        return out


def _floor(moment: datetime, seconds: int) -> datetime:
    stamp = int(moment.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, UTC)


def choose_window(
    range_name: str | None, bucket_name: str | None, newest: datetime | None, now: datetime
) -> Window:
    """The window for a range name (`RANGES`) and bucket name (`BUCKETS`, default by range).

    The window ends now, unless the store's newest event is older than the
    window's start: then it ends at that event, so an old store still shows
    its last activity. FilterError for an unknown name or too many buckets.
    """
    label = range_name or DEFAULT_RANGE
    if label not in RANGES:
        raise FilterError(f"range {label!r} is not one of {', '.join(RANGES)}")
    span = RANGES[label]
    if bucket_name in (None, ""):
        bucket = 60 if span <= timedelta(hours=6) else 3600
    elif bucket_name in BUCKETS:
        bucket = BUCKETS[bucket_name]
    else:
        raise FilterError(f"bucket {bucket_name!r} is not one of {', '.join(BUCKETS)}")
    if span.total_seconds() / bucket > MAX_BUCKETS:
        raise FilterError(f"range {label} in {bucket_name} buckets is too many bars; use hour")
    end, anchored = now, False
    if newest is not None and newest < now - span:
        end, anchored = newest, True
    last = _floor(end, bucket) + timedelta(seconds=bucket)  # the bucket holding `end`, whole
    first = _floor(last - span, bucket)
    return Window(first, last, bucket, label, anchored)


@dataclass
class Series:
    """Counts per bucket for each shown type (and "other"), plus the window they cover."""

    window: Window
    starts: list[datetime]
    counts: dict[str, list[int]] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        """Events per shown type over the whole window."""
        return {name: sum(values) for name, values in self.counts.items()}

    @property
    def per_bucket(self) -> list[int]:
        """All shown types together, per bucket."""
        return [sum(column) for column in zip(*self.counts.values(), strict=True)] or [
            0 for _ in self.starts
        ]

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON API."""
        return {
            "start": self.window.start.isoformat(),
            "end": self.window.end.isoformat(),
            "bucket_seconds": self.window.bucket,
            "buckets": [start.isoformat() for start in self.starts],
            "series": self.counts,
        }


def series(dialect: Dialect, selected: Filter, window: Window) -> Series:
    """Events per bucket per type in `window` (the `SERIES_SHOWN` busiest by name)."""
    rows = dialect.buckets(
        selected.query(since=window.start, until=window.end, limit=None), window.bucket
    )
    starts = window.starts()
    index = {start: i for i, start in enumerate(starts)}
    totals: dict[str, int] = {}
    for name, _, count in rows:
        totals[name] = totals.get(name, 0) + count
    shown = sorted(totals, key=lambda name: (-totals[name], name))[:SERIES_SHOWN]
    out = Series(window, starts, {name: [0] * len(starts) for name in shown})
    for name, start, count in rows:
        slot = index.get(start)
        if slot is None:
            continue
        if name not in out.counts:
            name = OTHER
            out.counts.setdefault(OTHER, [0] * len(starts))
        out.counts[name][slot] += count
    return out


def top_types(
    store: EventStore, selected: Filter, window: Window, limit: int = 15
) -> list[tuple[str, int]]:
    """The most frequent event names in `window`, most frequent first."""
    counts = store.counts_by_name(selected.query(since=window.start, until=window.end, limit=None))
    return counts[:limit]


def parse_field_name(text: str | None) -> tuple[str, str]:
    """``context.KEY`` or ``data.KEY`` (a bare KEY is a context key) as (section, key)."""
    text = (text or "context.user_id").strip()
    if "." not in text or text.split(".", 1)[0] not in ("context", "data"):
        text = f"context.{text}"
    match = _FIELD.fullmatch(text)
    if match is None:
        raise FilterError(f"field {text!r} must be context.KEY or data.KEY, without quotes")
    return match[1], match[2]


def top_values(
    dialect: Dialect, selected: Filter, window: Window, section: str, key: str, limit: int = 15
) -> list[tuple[str, int]]:
    """The most frequent values of ``section.key`` in `window`, most frequent first."""
    query = selected.query(since=window.start, until=window.end, limit=None)
    return dialect.top_values(query, section, key, limit)


def sparklines(dialect: Dialect, newest: datetime | None, hours: int = 24) -> dict[str, list[int]]:
    """Hourly counts per type over the `hours` hours ending with the newest event."""
    if newest is None:
        return {}
    end = _floor(newest, 3600) + timedelta(hours=1)
    window = Window(end - timedelta(hours=hours), end, 3600, f"{hours}h")
    starts = window.starts()
    index = {start: i for i, start in enumerate(starts)}
    out: dict[str, list[int]] = {}
    for name, start, count in dialect.buckets(
        Filter().query(since=window.start, until=window.end, limit=None), 3600
    ):
        slot = index.get(start)
        if slot is not None:
            out.setdefault(name, [0] * len(starts))[slot] += count
    return out
