"""The ``eventtracking stats`` command: counts per name and a per-hour or per-day chart.

``--since``, ``--until`` and ``--name`` choose the events counted; ``--by``
chooses the chart's step (default: hours when the range spans two days or
less, else days). The chart covers the whole range, quiet periods included.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import click
from rich.table import Table
from rich.text import Text

from ..store import Query
from .delivery import JOURNAL_ENV, show_delivery_stats
from .filters import name_globs
from .render import clock, console, iso
from .store_option import opened, store_option
from .times import since_option, until_option

STEPS: Final = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
AUTO_HOURS: Final = 48  # longer ranges are charted per day unless --by hour is given
BAR_WIDTH: Final = 30


def _floor(moment: datetime, step: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if step == "day" else moment


def buckets(
    by_hour: list[tuple[datetime, int]], step: str, since: datetime | None, until: datetime | None
) -> list[tuple[datetime, int]]:
    """Counts per `step` from the first to the last bucket, empty ones included.

    The range starts at `since` (else the first event) and ends before `until`
    (else at the last event).
    """
    counts: Counter[datetime] = Counter()
    for hour, count in by_hour:
        counts[_floor(hour, step)] += count
    if not counts and (since is None or until is None):
        return []
    first = _floor(since, step) if since is not None else min(counts)
    last = _floor(until - timedelta(microseconds=1), step) if until is not None else max(counts)
    width = STEPS[step]
    out = []
    moment = first
    while moment <= last:
        out.append((moment, counts.get(moment, 0)))
        moment += width
    return out


def _auto_step(
    by_hour: list[tuple[datetime, int]], since: datetime | None, until: datetime | None
) -> str:
    if not by_hour:
        return "hour"
    first = since or by_hour[0][0]
    last = until or by_hour[-1][0]
    return "hour" if last - first <= timedelta(hours=AUTO_HOURS) else "day"


@click.command("stats")
@store_option
@name_globs("Count only these names or globs (repeatable).")
@since_option
@until_option
@click.option(
    "--by",
    "step",
    type=click.Choice(sorted(STEPS)),
    help="Chart per hour or per day (default: hours up to 48 h, else days).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@click.option("--delivery", is_flag=True, help="Delivery workers' metrics instead (--journal-dir).")
@click.option("--journal-dir", envvar=JOURNAL_ENV, metavar="DIR", help="For --delivery.")
def stats_command(
    store_path: str,
    names: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    step: str | None,
    as_json: bool,
    delivery: bool,
    journal_dir: str | None,
) -> None:
    """Count the stored events: in total, per name and per hour or day (UTC).

    --delivery shows instead what the delivery workers writing journals under
    --journal-dir report: counts, drops by reason, queue, journal, latency.
    """
    if delivery:
        show_delivery_stats(journal_dir, as_json)
        return
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be before --until; swap them or widen the range")
    request = Query(names=names, since=since, until=until, limit=None)
    with opened(store_path) as store:
        total = store.count(request)
        by_name = store.counts_by_name(request)
        by_hour = store.counts_by_hour(request)
        oldest = store.query(Query(names=names, since=since, until=until, limit=1))
        newest = store.query(
            Query(names=names, since=since, until=until, limit=1, newest_first=True)
        )
    span = oldest + newest if oldest else []
    step = step or _auto_step(by_hour, since, until)
    chart = buckets(by_hour, step, since, until)
    if as_json:
        summary: dict[str, Any] = {
            "store": store_path,
            "total": total,
            "first": iso(span[0]) if span else None,
            "last": iso(span[1]) if span else None,
            "by_name": dict(by_name),
            "by_hour": {hour.strftime("%Y-%m-%dT%H:00"): count for hour, count in by_hour},
            "by": step,
            "chart": {moment.strftime(_FORMATS[step]): count for moment, count in chart},
        }
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    out = console()
    range_text = f", {clock(span[0])} … {clock(span[1])} UTC" if span else ""
    chosen = " matching" if (names or since or until) else ""
    out.print(f"{total}{chosen} events in {store_path}{range_text}", soft_wrap=True)
    if not total:
        return
    per_name = Table(title="per name")
    per_name.add_column("name")
    per_name.add_column("count", justify="right")
    per_name.add_column("share", justify="right")
    for name, count in by_name:
        per_name.add_row(name, str(count), f"{100 * count / total:.1f}%")
    out.print(per_name)
    per_step = Table(title=f"per {step} (UTC)")
    per_step.add_column(step)
    per_step.add_column("count", justify="right")
    per_step.add_column("")
    peak = max((count for _, count in chart), default=0) or 1
    for moment, count in chart:
        bar = "█" * round(BAR_WIDTH * count / peak) if count else ""
        per_step.add_row(
            moment.strftime(_FORMATS[step].replace("T", " ")), str(count), Text(bar, style="green")
        )
    out.print(per_step)


_FORMATS: Final = {"hour": "%Y-%m-%dT%H:00", "day": "%Y-%m-%d"}
