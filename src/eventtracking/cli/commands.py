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
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..exceptions import StoreError
from ..serialization import dumps_str
from ..store import EventStore, Query
from . import demo as workload
from . import next_steps
from .catalog import catalog_command
from .consume import consume_command
from .delivery import deadletters_command, replay_command
from .filters import Column, columns_option, matches, name_globs, pairs_option, split_nested
from .render import clock, console, line, projected, table, when
from .serve import serve_command
from .stats import stats_command
from .store_option import opened, store_option
from .times import since_option, until_option


def _time_range(store: EventStore) -> list[dict[str, Any]]:
    """The oldest and the newest event, or [] for an empty store."""
    oldest = store.query(Query(limit=1))
    return oldest + store.query(Query(limit=1, newest_first=True)) if oldest else []


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventtracking")
def cli() -> None:
    """Record, query and summarise application events (Open edX event-tracking)."""


cli.add_command(consume_command)
cli.add_command(deadletters_command)
cli.add_command(replay_command)
cli.add_command(catalog_command)
cli.add_command(serve_command)
cli.add_command(stats_command)
stats = stats_command  # its name before it moved to stats.py (manage.py eventtracking_stats)


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
    out = console()
    if seed is None:
        seed = random.SystemRandom().randrange(1_000_000)
    try:
        with workload.DemoRun(store_path) as run:
            readme = run.readme_example()
            out.print(Text("The Open edX README example", "bold"), "(name, context, data):")
            for event in readme:
                parts = [json.dumps(event[key], ensure_ascii=False) for key in ("context", "data")]
                out.print(Text(f"  {event['name']}  {parts[0]}  {parts[1]}"), soft_wrap=True)
            bar = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*bar, console=out) as progress:
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
    out.print(table)
    if span:
        out.print(f"time range (UTC): {clock(span[0])} … {clock(span[1])}   seed: {seed}")
    out.print(next_steps.render(next_steps.next_commands(store_path)), soft_wrap=True)


@cli.command()
@store_option
@name_globs("Event name or glob.")
@since_option
@until_option
@click.option(
    "--context",
    "contexts",
    multiple=True,
    callback=pairs_option,
    metavar="KEY=VALUE",
    help="A context field (a dotted path reaches nested ones) must equal VALUE.",
)
@click.option(
    "--data",
    "datas",
    multiple=True,
    callback=pairs_option,
    metavar="KEY=VALUE",
    help="A data field (a dotted path reaches nested ones) must equal VALUE.",
)
@click.option(
    "--columns",
    callback=columns_option,
    metavar="ctx.KEY,data.KEY",
    help="Show these context/data fields as columns (e.g. ctx.user_id,data.url).",
)
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
    columns: list[Column],
    limit: int,
    newest: bool,
    as_json: bool,
) -> None:
    """Show the events that match every filter; repeat --name for any of several.

    --context and --data KEY=VALUE (repeatable) require a field of the event's
    context or data to equal VALUE; KEY may be a dotted path into nested
    objects (--data user.id=7). Values match strings and the numbers they
    spell (user_id=10938 matches the integer); true, false and null match
    those JSON values. --columns picks the fields the table shows (with
    --json: the fields each line holds).
    """  # fmt: skip
    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            f"--since ({since:%Y-%m-%d %H:%M:%S}) must be before --until ({until:%H:%M:%S}); "
            "swap them or widen the range"
        )
    context_top, context_nested = split_nested(contexts)
    data_top, data_nested = split_nested(datas)
    request = Query(
        names=names,
        since=since,
        until=until,
        context=context_top,
        data=data_top,
        limit=limit or None,
        newest_first=newest,
    )
    with opened(store_path) as store:
        if context_nested or data_nested:
            events, matching = _scan(store, request, context_nested, data_nested)
        else:
            events = store.query(request)
            matching = store.count(request) if limit and len(events) == limit else len(events)
    if as_json:
        for event in events:
            click.echo(dumps_str(projected(event, columns) if columns else event))
        return
    if not events:
        click.echo("No events match.", err=True)
        return
    caption = f"{len(events)} of {matching} matching events"
    if matching > len(events):
        caption += " (--limit 0 shows all)"
    console().print(table(events, caption, columns))


def _scan(
    store: EventStore,
    request: Query,
    context: tuple[tuple[str, str], ...],
    data: tuple[tuple[str, str], ...],
) -> tuple[list[dict[str, Any]], int]:
    """(the first `request.limit` events also matching the dotted filters, how many match).

    The store narrows by name, time and top-level fields; the dotted paths
    are matched here, one page at a time, so memory stays bounded.
    """
    page, limit = 1000, request.limit
    kept: deque[dict[str, Any]] = deque(maxlen=limit)
    matching = 0
    seen: set[str] = set()  # ids of events at the page boundary's timestamp, already read
    since = request.since
    while True:
        batch = store.query(replace(request, since=since, limit=page, newest_first=False))
        fresh = [event for event in batch if _key(event) not in seen]
        for event in fresh:
            if matches(event, context, data):
                matching += 1
                if request.newest_first or limit is None or len(kept) < limit:
                    kept.append(event)
        if len(batch) < page or not fresh:
            break
        last = when(batch[-1])
        if last is None:
            break
        boundary = [event for event in batch if when(event) == last]
        seen = {_key(event) for event in boundary} | (seen if last == since else set())
        since = last
    events = list(kept)
    return (events[::-1] if request.newest_first else events), matching


def _key(event: dict[str, Any]) -> str:
    return str(event.get("id") or dumps_str(event))


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
    out = console()

    def show(event: dict[str, Any]) -> None:
        if as_json:
            click.echo(dumps_str(event))
        else:
            out.print(line(event), soft_wrap=True)

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


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line with `argv` (default: sys.argv[1:]); the console entry point."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="eventtracking")
    except BrokenPipeError:
        # The reader went away (eventtracking query --json | head): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
