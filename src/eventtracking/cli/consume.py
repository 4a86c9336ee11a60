"""The ``eventtracking consume`` command: a consumer-group worker from Redis to a sink.

Kept apart from `cli` so that the command line loads without the redis
extra; the driver is imported only when the command runs.
"""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import Any

import click

from ..exceptions import ImproperlyConfigured, MissingExtraError, StoreError
from ..logsafe import without_password
from .progress import ConsumeBar

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
BAR_REFRESH = 1.0  # seconds between progress-bar updates when stderr is a terminal


@click.command("consume")
@click.argument("url", metavar="REDIS_URL")
@click.option("--stream", required=True, help="The stream to read.")
@click.option("--group", required=True, help="The consumer group (created if missing).")
@click.option("--consumer", metavar="NAME", help="This worker's name (default: HOST-PID).")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="SINK",
    help="A store path, a postgresql:// URL, a backend component as JSON, or a .toml file "
    "holding one (ENGINE and OPTIONS at top level).",
)
@click.option("--batch", default=500, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--block-ms",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="How long one read waits for new entries; also the longest wait to stop.",
)
@click.option(
    "--claim-idle-ms",
    default=60_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Claim entries other consumers left unacknowledged for this long.",
)
@click.option(
    "--forget-idle-ms",
    default=3_600_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Remove consumers idle this long with nothing pending from the group (0: never).",
)
@click.option(
    "--report-every",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="How often progress and lag go to stderr (on a terminal: a bar, updated every second).",
)
@click.option("--dead-letter", metavar="STREAM", help="Where rejected entries go (default S:dead).")
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON on stdout.")
def consume_command(
    url: str,
    stream: str,
    group: str,
    consumer: str | None,
    target: str,
    batch: int,
    block_ms: int,
    claim_idle_ms: int,
    forget_idle_ms: int,
    report_every: float,
    dead_letter: str | None,
    as_json: bool,
) -> None:
    """Move events from a Redis stream into a store or backend, as one consumer of a group.

    Entries are acknowledged only after the sink committed them; entries
    other consumers left unacknowledged (they died) are claimed after
    --claim-idle-ms, and consumers idle for --forget-idle-ms with nothing
    pending leave the group. Run more workers with the same --group to scale out.
    SIGTERM or Ctrl-C finishes the batches it read (the one in hand and the one read
    ahead), acknowledges them and exits 0.
    Progress and the group's lag go to stderr every --report-every seconds; on a
    terminal a progress bar (written against written + lag) stands in for them.
    """
    if not url.startswith(REDIS_SCHEMES):
        raise click.BadParameter(
            f"{without_password(url)!r} is not a Redis URL; write it like redis://localhost:6379/0",
            param_hint="URL",
        )
    try:
        import redis
    except ImportError:
        raise click.ClickException(str(MissingExtraError("redis", "redis"))) from None
    try:
        from ..consumer.consume import StreamConsumer, redis_client
        from ..consumer.sinks import open_sink

        client = redis_client(url)
        sink = open_sink(target)
    except (ImproperlyConfigured, StoreError, MissingExtraError) as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    bar = ConsumeBar(f"consume {stream}/{group}")
    try:
        worker = StreamConsumer(
            client,
            stream,
            group,
            sink,
            consumer=consumer,
            batch=batch,
            block_ms=block_ms,
            claim_idle_ms=claim_idle_ms,
            forget_idle_ms=forget_idle_ms or None,
            # On a terminal the bar is redrawn every second; the lines keep their pace.
            report_every=min(report_every, BAR_REFRESH) if bar.active else report_every,
            dead_letter=dead_letter,
            report=lambda line: _report(worker, bar, line),
        )
        with bar:
            stats = worker.run(stop)
        if bar.active:  # the bar stood in for the periodic lines; the last one stays
            click.echo(f"consume {stream}/{group}: stopped: {stats.line()}", err=True)
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis at {without_password(url)}: {exc}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sink.close()
        client.close()
    if as_json:
        click.echo(json.dumps(stats.as_dict()))


def _report(worker: Any, bar: ConsumeBar, line: str) -> None:
    """A progress report: the bar when stderr is a terminal, else the line on stderr."""
    if not bar.active:
        click.echo(line, err=True)
        return
    figures = worker.stats
    rate = figures.written / figures.seconds if figures.seconds > 0 else 0.0
    lag = "?" if figures.lag is None else figures.lag
    pending = "?" if figures.pending is None else figures.pending
    bar.update(figures.written, figures.lag, f"{rate:,.0f}/s  lag {lag}  pending {pending}")
