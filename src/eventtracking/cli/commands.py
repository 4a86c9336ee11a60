"""The ``eventtracking`` command: fill a store with a demo, then query, tail and summarise it.

Every subcommand takes ``--store PATH`` (default ``$EVENTTRACKING_STORE``, else
``./events.db``). Problems with the store or the options end the command with
a one-line message on stderr that says what to fix and a non-zero exit status
(1 for store errors, 2 for bad options); there is never a traceback.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..exceptions import StoreError
from ..serialization import dumps_str
from ..store import EventStore, Query, open_store
from . import demo as workload
from .catalog import catalog_command
from .consume import consume_command
from .delivery import JOURNAL_ENV, deadletters_command, replay_command, show_delivery_stats
from .serve import serve_command
from .times import TIME_HELP, time_option

DEFAULT_STORE: Final = "events.db"
STORE_ENV: Final = "EVENTTRACKING_STORE"
KEY_CONTEXT: Final = ("user_id", "username", "session_id", "course_id")
HOURS_SHOWN: Final = 48


def _pairs_option(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """Option callback: ``KEY=VALUE`` strings as (key, value) pairs; BadParameter without '='."""
    pairs = []
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{value!r} is not KEY=VALUE; write it like user_id=10938", ctx, param
            )
        pairs.append((key.strip(), text))
    return tuple(pairs)


store_option = click.option(
    "--store",
    "store_path",
    default=DEFAULT_STORE,
    envvar=STORE_ENV,
    metavar="PATH",
    help=f"The event store (default: ${STORE_ENV}, else ./{DEFAULT_STORE}).",
)


@contextmanager
def opened(location: str) -> Iterator[EventStore]:
    """Open the store at `location` for reading; StoreError becomes a ClickException."""
    try:
        store = open_store(location)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield store
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def _console() -> Console:
    return Console(highlight=False, markup=False)  # event data may hold [brackets]


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(event: dict[str, Any]) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(str(event.get("timestamp")))
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _time(event: dict[str, Any]) -> str:
    stamp = _when(event)
    return str(event.get("timestamp")) if stamp is None else f"{stamp:%Y-%m-%d %H:%M:%S}"


def _fields(mapping: Any, keys: Sequence[str], width: int) -> str:
    if not isinstance(mapping, dict):
        return "" if mapping is None else _short(mapping, width)
    return " ".join(f"{key}={_short(mapping[key], width)}" for key in keys if key in mapping)


def _context(event: dict[str, Any]) -> str:
    context = event.get("context")
    keys = [key for key in KEY_CONTEXT if isinstance(context, dict) and key in context]
    return _fields(context, keys or list(context or ())[:3], 40)


def _data(event: dict[str, Any]) -> str:
    data = event.get("data")
    return _short(_fields(data, list(data) if isinstance(data, dict) else [], 32), 120)


def _line(event: dict[str, Any]) -> Text:
    return Text("  ").join(
        [Text(_time(event), style="cyan"), Text(str(event.get("name")), style="bold")]
        + [Text(part) for part in (_context(event), _data(event)) if part]
    )


def _table(events: list[dict[str, Any]], caption: str | None = None) -> Table:
    table = Table(caption=caption, caption_justify="left")
    table.add_column("time (UTC)", no_wrap=True, style="cyan")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("context", ratio=1)
    table.add_column("data", ratio=2)
    for event in events:
        table.add_row(_time(event), str(event.get("name")), _context(event), _data(event))
    return table


def _time_range(store: EventStore) -> list[dict[str, Any]]:
    """The oldest and the newest event, or [] for an empty store."""
    oldest = store.query(Query(limit=1))
    return oldest + store.query(Query(limit=1, newest_first=True)) if oldest else []


def _iso(event: dict[str, Any]) -> str:
    stamp = _when(event)
    return str(event.get("timestamp")) if stamp is None else stamp.isoformat()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventtracking")
def cli() -> None:
    """Record, query and summarise application events (Open edX event-tracking)."""


cli.add_command(consume_command)
cli.add_command(deadletters_command)
cli.add_command(replay_command)
cli.add_command(catalog_command)
cli.add_command(serve_command)


@cli.command("demo")
@store_option
@click.option(
    "--events",
    "n_events",
    default=5000,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many simulated events to emit after the README example.",
)
@click.option("--seed", type=int, help="Seed for a repeatable workload (default: random).")
def demo_command(store_path: str, n_events: int, seed: int | None) -> None:
    """Fill the store: the Open edX README example, then a simulated LMS day.

    Prints the README's three events, a progress bar, and a summary of the store.
    Running it again on the same store adds new events.
    """
    console = _console()
    if seed is None:
        seed = random.SystemRandom().randrange(1_000_000)
    try:
        with workload.DemoRun(store_path) as run:
            readme = run.readme_example()
            console.print(Text("The Open edX README example", "bold"), "(name, context, data):")
            for event in readme:
                parts = [json.dumps(event[key], ensure_ascii=False) for key in ("context", "data")]
                console.print(Text(f"  {event['name']}  {parts[0]}  {parts[1]}"), soft_wrap=True)
            bar = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*bar, console=console) as progress:
                task = progress.add_task("simulating", total=n_events)
                counts = run.simulate(n_events, seed, progress=lambda n: progress.advance(task, n))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the store's directory cannot be created
        raise click.ClickException(f"{store_path}: cannot create the store: {exc}") from None
    counts.update(event["name"] for event in readme)
    with opened(store_path) as store:
        in_store = store.counts_by_name()
        span = _time_range(store)
    table = Table(title=f"Events in {Path(store_path).resolve()}")
    table.add_column("name")
    table.add_column("this run", justify="right")
    table.add_column("in store", justify="right")
    for name, count in in_store:
        table.add_row(name, str(counts.get(name, 0)), str(count))
    total = sum(count for _, count in in_store)
    table.add_section()
    table.add_row(Text("total", "bold"), str(sum(counts.values())), str(total))
    console.print(table)
    if span:
        console.print(f"time range (UTC): {_time(span[0])} … {_time(span[1])}   seed: {seed}")
    hint = "" if store_path == DEFAULT_STORE else f" --store {shlex.quote(store_path)}"
    console.print(
        f"Next: eventtracking query{hint} --name 'edx.video.*'  |  "
        f"eventtracking query{hint} --context user_id=10938  |  "
        f"eventtracking stats{hint}  |  eventtracking tail{hint} -f",
        soft_wrap=True,
    )


@cli.command()
@store_option
@click.option("--name", "names", multiple=True, metavar="GLOB", help="Event name or glob.")
@click.option("--since", callback=time_option, metavar="TIME", help=f"At or after: {TIME_HELP}.")
@click.option("--until", callback=time_option, metavar="TIME", help="Before (same formats).")
@click.option("--context", "contexts", multiple=True, callback=_pairs_option, metavar="KEY=VALUE")
@click.option("--data", "datas", multiple=True, callback=_pairs_option, metavar="KEY=VALUE")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(min=0), help="0 = no limit."
)
@click.option("--newest", is_flag=True, help="Newest first (default: oldest first).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
def query(
    store_path: str,
    names: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    contexts: tuple[tuple[str, str], ...],
    datas: tuple[tuple[str, str], ...],
    limit: int,
    newest: bool,
    as_json: bool,
) -> None:
    """Show the events that match every filter; repeat --name for any of several.

    --context and --data KEY=VALUE (repeatable) require a top-level field of the
    event's context or data to equal VALUE; values match strings and the numbers
    they spell (user_id=10938 matches the integer).
    """
    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            f"--since ({since:%Y-%m-%d %H:%M:%S}) must be before --until ({until:%H:%M:%S}); "
            "swap them or widen the range"
        )
    request = Query(
        names=names,
        since=since,
        until=until,
        context=contexts,
        data=datas,
        limit=limit or None,
        newest_first=newest,
    )
    with opened(store_path) as store:
        events = store.query(request)
        if as_json:
            for event in events:
                click.echo(dumps_str(event))
            return
        matching = store.count(request) if limit and len(events) == limit else len(events)
    if not events:
        click.echo("No events match.", err=True)
        return
    caption = f"{len(events)} of {matching} matching events"
    if matching > len(events):
        caption += " (--limit 0 shows all)"
    _console().print(_table(events, caption))


@cli.command()
@store_option
@click.option("-n", "--lines", default=10, show_default=True, type=click.IntRange(min=0))
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
@click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=click.FloatRange(min=0.01),
    metavar="SECONDS",
    help="How often --follow looks for new events.",
)
def tail(store_path: str, lines: int, follow: bool, as_json: bool, interval: float) -> None:
    """Show the last events stored, in storage order; -f keeps printing new ones.

    -f runs until Ctrl-C, which ends it with exit status 0.
    """
    console = _console()

    def show(event: dict[str, Any]) -> None:
        if as_json:
            click.echo(dumps_str(event))
        else:
            console.print(_line(event), soft_wrap=True)

    with opened(store_path) as store:
        if not follow:
            for event in store.tail(lines):
                show(event)
            return
        try:
            for event in store.follow(poll_interval=interval, n=lines):
                show(event)
        except KeyboardInterrupt:
            pass


@cli.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@click.option("--delivery", is_flag=True, help="Delivery workers' metrics instead (--journal-dir).")
@click.option("--journal-dir", envvar=JOURNAL_ENV, metavar="DIR", help="For --delivery.")
def stats(store_path: str, as_json: bool, delivery: bool, journal_dir: str | None) -> None:
    """Count the stored events: in total, per name and per hour (UTC).

    --delivery shows instead what the delivery workers writing journals under
    --journal-dir report: counts, drops by reason, queue, journal, latency.
    """
    if delivery:
        show_delivery_stats(journal_dir, as_json)
        return
    with opened(store_path) as store:
        total = store.count(Query(limit=None))
        by_name = store.counts_by_name()
        by_hour = store.counts_by_hour()
        span = _time_range(store)
    if as_json:
        summary: dict[str, Any] = {
            "store": store_path,
            "total": total,
            "first": _iso(span[0]) if span else None,
            "last": _iso(span[1]) if span else None,
            "by_name": dict(by_name),
            "by_hour": {hour.strftime("%Y-%m-%dT%H:00"): count for hour, count in by_hour},
        }
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    console = _console()
    range_text = f", {_time(span[0])} … {_time(span[1])} UTC" if span else ""
    console.print(f"{total} events in {store_path}{range_text}", soft_wrap=True)
    if not total:
        return
    names = Table(title="per name")
    names.add_column("name")
    names.add_column("count", justify="right")
    names.add_column("share", justify="right")
    for name, count in by_name:
        names.add_row(name, str(count), f"{100 * count / total:.1f}%")
    console.print(names)
    # Up to HOURS_SHOWN hours ending with the newest event, quiet hours included.
    per_hour = dict(by_hour)
    start = max(by_hour[0][0], by_hour[-1][0] - timedelta(hours=HOURS_SHOWN - 1))
    count = int((by_hour[-1][0] - start) / timedelta(hours=1)) + 1
    shown = [(h, per_hour.get(h, 0)) for h in (start + timedelta(hours=i) for i in range(count))]
    cut = start > by_hour[0][0]
    caption = f"only the last {HOURS_SHOWN} hours; --json has all" if cut else None
    hours = Table(title="per hour (UTC)", caption=caption)
    hours.add_column("hour")
    hours.add_column("count", justify="right")
    hours.add_column("")
    peak = max(count for _, count in shown)
    for hour, count in shown:
        bar = "█" * round(30 * count / peak) if count else ""
        hours.add_row(hour.strftime("%Y-%m-%d %H:00"), str(count), Text(bar, style="green"))
    console.print(hours)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line with `argv` (default: sys.argv[1:]); the console entry point."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="eventtracking")
    except BrokenPipeError:
        # The reader went away (eventtracking query --json | head): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
