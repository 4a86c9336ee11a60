"""The delivery commands: ``deadletters list|show|replay``, ``replay`` and ``stats --delivery``.

A running process's delivery metrics live in memory; each delivery worker
with a journal writes them every few seconds to ``metrics-<pid>.json`` in
its journal directory, and ``stats --delivery --journal-dir DIR`` reads
every such file under DIR (a process that is gone shows as such). Errors end with a
one-line message and a non-zero status, never a traceback.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table

from ..delivery.deadletter import DEFAULT_FILENAME, DeadLetter, DeadLetterStore
from ..delivery.paths import ENV, journal_root
from ..delivery.replay import Replayer, read_events
from ..delivery.report import delivery_report, redeliver
from ..delivery.retry import RetryPolicy
from ..exceptions import ImproperlyConfigured, MissingExtraError, StoreError
from ..store import Query
from .progress import progress_bar, stderr_console, stored_total
from .store_option import open_for_command
from .times import since_option, until_option

DEAD_LETTERS_ENV: Final = "EVENTTRACKING_DEAD_LETTERS"
JOURNAL_ENV: Final = ENV


def _console() -> Console:
    return Console(highlight=False, markup=False)


def _stamp(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _dead_letters(location: str) -> AbstractContextManager[DeadLetterStore]:
    return open_for_command(lambda: DeadLetterStore(location, create=False))


def _replayer(target: str, retries: int, batch: int, rate: float | None) -> Replayer:
    """A replayer sending to `target` (a store, a JSON component or a TOML file)."""
    from ..consumer.sinks import SinkBackend, open_sink

    try:
        sink = open_sink(target)
    except (ImproperlyConfigured, StoreError, OSError, MissingExtraError) as exc:
        raise click.ClickException(f"--to: {exc}") from None
    policy = RetryPolicy(max_attempts=retries, initial_backoff=0.2, max_backoff=5.0)
    return Replayer(SinkBackend(sink), retry=policy, batch_size=batch, rate=rate)


dead_letters_option = click.option(
    "--dead-letters",
    "--store-dir",
    "location",
    envvar=DEAD_LETTERS_ENV,
    required=True,
    metavar="PATH",
    help=f"The dead-letter store: a file, or a journal directory holding {DEFAULT_FILENAME} "
    f"(default: ${DEAD_LETTERS_ENV}).",
)
filter_options = [
    click.option("--backend", metavar="NAME", help="Only dead letters of this delivery backend."),
    click.option("--name", "names", multiple=True, metavar="GLOB", help="Event name or glob."),
]
target_option = click.option(
    "--to",
    "target",
    required=True,
    metavar="TARGET",
    help="Where to send: a store path or postgresql:// URL, a backend component as JSON, "
    "or a .toml file holding one (ENGINE and OPTIONS at top level).",
)
rate_option = click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="At most N events per second (default: as fast as the target takes them).",
)
retries_option = click.option(
    "--retries",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Attempts per batch before its events count as failed.",
)


def _filters(func: Any) -> Any:
    for option in reversed(filter_options):
        func = option(func)
    return func


@click.group("deadletters")
def deadletters_command() -> None:
    """Inspect and re-deliver events that a backend rejected or that ran out of retries."""


@deadletters_command.command("list")
@dead_letters_option
@_filters
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter.")
def list_command(
    location: str, backend: str | None, names: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """List dead letters, oldest first (0 = no --limit)."""
    with _dead_letters(location) as store:
        letters = store.select(backend, names, limit=limit or None)
        total = store.count(backend, names)
    if as_json:
        for letter in letters:
            click.echo(json.dumps(letter.summary(), ensure_ascii=False))
        return
    if not letters:
        click.echo("No dead letters match.", err=True)
        return
    table = Table(caption=f"{len(letters)} of {total} dead letters", caption_justify="left")
    for column in ("id", "backend", "name", "attempts", "first failure", "last failure", "reason"):
        table.add_column(column, overflow="fold" if column == "reason" else "ellipsis")
    for letter in letters:
        table.add_row(
            str(letter.id),
            letter.backend,
            letter.name or "",
            str(letter.attempts),
            _stamp(letter.first_failure),
            _stamp(letter.last_failure),
            letter.reason,
        )
    _console().print(table)


@deadletters_command.command("show")
@dead_letters_option
@click.argument("letter_id", metavar="ID", type=int)
def show_command(location: str, letter_id: int) -> None:
    """Show one dead letter: why it failed and the whole event, as JSON."""
    with _dead_letters(location) as store:
        letter = store.get(letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id} in {location}")
    shown = letter.summary() | {"event": letter.event}
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2, default=str))


@deadletters_command.command("replay")
@dead_letters_option
@_filters
@target_option
@click.option("--dry-run", is_flag=True, help="Only say what would be sent.")
@rate_option
@retries_option
@click.option("--batch", default=500, show_default=True, type=click.IntRange(min=1))
def replay_dead_letters(
    location: str,
    backend: str | None,
    names: tuple[str, ...],
    target: str,
    dry_run: bool,
    rate: float | None,
    retries: int,
    batch: int,
) -> None:
    """Send dead letters to TARGET; delivered ones leave the store, failures stay (attempts +1)."""
    with _dead_letters(location) as store:
        count = store.count(backend, names)
        if dry_run or not count:
            verb = "would send" if dry_run else "nothing to send:"
            click.echo(f"{verb} {count} dead letter(s) to {target}")
            return
        replayer = _replayer(target, retries, batch, rate)
        sent = failed = 0
        bar = progress_bar("replaying dead letters", count)
        try:
            with bar as advance:
                pending: list[DeadLetter] = []
                for letter in store.each(backend, names, page=replayer.batch_size):
                    pending.append(letter)
                    if len(pending) >= replayer.batch_size:
                        ok, bad = redeliver(store, replayer, pending)
                        sent, failed, pending = sent + ok, failed + bad, []
                        advance(ok + bad)
                if pending:
                    ok, bad = redeliver(store, replayer, pending)
                    sent, failed = sent + ok, failed + bad
                    advance(ok + bad)
        finally:
            replayer_close(replayer)
    click.echo(f"sent {sent} dead letter(s) to {target}; {failed} failed again")
    if failed:
        raise SystemExit(1)


def replayer_close(replayer: Replayer) -> None:
    """Close the replayer's target, reporting (not raising) a failure."""
    try:
        replayer.close()
    except Exception as exc:
        click.echo(f"warning: closing the target failed: {exc}", err=True)


@click.command("replay")
@click.option(
    "--from",
    "sources",
    multiple=True,
    required=True,
    metavar="SOURCE",
    help="An event store (SQLite path or postgresql:// URL) or a JSON-lines file; repeatable.",
)
@target_option
@click.option("--name", "names", multiple=True, metavar="GLOB", help="Event name or glob.")
@since_option
@until_option
@click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
@rate_option
@retries_option
@click.option("--batch", default=500, show_default=True, type=click.IntRange(min=1))
def replay_command(
    sources: tuple[str, ...],
    target: str,
    names: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    rate: float | None,
    retries: int,
    batch: int,
) -> None:
    """Re-send stored events to one backend (stores de-duplicate on the event id)."""
    skipped: Counter[str] = Counter()
    events = read_events(sources, names, since, until, skipped)
    try:
        if dry_run:
            by_name = Counter(str(event.get("name")) for event in events)
            click.echo(f"would send {sum(by_name.values())} event(s) to {target}")
            for name, count in by_name.most_common():
                click.echo(f"  {count:>8}  {name}")
            return
        replayer = _replayer(target, retries, batch, rate)
        try:
            query = Query(names=names, since=since, until=until, limit=None)
            total = stored_total(sources, query) if stderr_console().is_terminal else None
            with progress_bar("replaying", total) as advance:
                result = replayer.run(events, progress=advance)
        finally:
            replayer_close(replayer)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        for path, count in skipped.items():
            click.echo(f"warning: {path}: {count} line(s) are not JSON events; skipped", err=True)
    click.echo(f"sent {result.sent} event(s) to {target}; {result.failed} failed")
    for reason, count in result.reasons.most_common(5):
        click.echo(f"  {count} failed: {reason}", err=True)
    if result.failed:
        raise SystemExit(1)


# -- stats --delivery ---------------------------------------------------------------------


def show_delivery_stats(journal_dir: str | None, as_json: bool) -> None:
    """Print `delivery_report` for `journal_dir` (default: the default journal root)."""
    root = Path(journal_dir) if journal_dir else journal_root()
    if not root.is_dir():
        raise click.ClickException(f"{root}: no such journal directory")
    report = delivery_report(root)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, default=str))
        return
    console = _console()
    if not report["workers"]:
        console.print(f"No delivery metrics under {root} (no worker has written any yet).")
    table = Table(title=f"Delivery workers under {root}")
    columns = ("backend", "pid", "mode", "circuit", "emitted", "delivered", "retried", "dropped")
    for column in (*columns, "journaled", "dead", "queue", "journal", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in columns[:4] else "right")
    for w in report["workers"]:
        state = "" if w["alive"] else " (gone)"
        drops = ", ".join(f"{k}={v}" for k, v in sorted(w.get("dropped", {}).items())) or "0"
        table.add_row(
            str(w.get("name")),
            f"{w.get('pid')}{state}",
            str(w.get("mode")),
            str(w.get("circuit")),
            *(str(w.get(key, 0)) for key in ("emitted", "delivered", "retried")),
            drops,
            *(str(w.get(key, 0)) for key in ("journaled", "dead_lettered", "queue_depth")),
            f"{w.get('journal_bytes', 0):,} B",
            *("" if w.get(key) is None else f"{w[key]:.1f}" for key in _LATENCY),
        )
    console.print(table)
    backlog = sum(report["lanes"].values())
    console.print(f"journal on disk: {backlog:,} bytes in {len(report['lanes'])} lane(s)")
    for path, counts in report["dead"].items():
        listed = ", ".join(f"{backend}: {count}" for backend, count in counts.items()) or "none"
        console.print(f"dead letters in {path}: {listed}", soft_wrap=True)


_LATENCY: Final = ("latency_p50_ms", "latency_p99_ms")
