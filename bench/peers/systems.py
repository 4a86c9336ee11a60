"""Peer systems on the shared workload, each run from its own virtual environment.

    build/peers/et/bin/python bench/peers/systems.py eventtracking OUT [N]
    build/peers/structlog/bin/python bench/peers/systems.py structlog OUT [N]
    build/peers/structlog/bin/python bench/peers/systems.py logging OUT [N]

- ``eventtracking``: Open edX event-tracking 4.0.2 as Open edX sets it up: a
  tracker whose LoggerBackend writes to the ``tracking`` logger, which a
  FileHandler writes to OUT.
- ``structlog``: context variables bound with structlog, an ISO UTC
  timestamp, orjson rendering, bytes written to OUT.
- ``logging``: the standard library alone: a formatter that writes each
  record as JSON with ``json.dumps``.

`make bench-peers` builds the environments (bench/peers/requirements-*.txt).
Prints ``SYSTEM US us/event``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workload import INNER, NAME, OUTER, URL, arguments, count_lines, measure, report


def file_logger(name: str, out: Path, formatter: logging.Formatter | None) -> logging.Handler:
    handler = logging.FileHandler(out)
    if formatter is not None:
        handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def original(out: Path, n: int) -> float:
    from eventtracking import tracker  # the original 4.0.2, from its own environment
    from eventtracking.backends.logger import LoggerBackend

    handler = file_logger("tracking", out, None)
    emitter = tracker.Tracker({"log": LoggerBackend(name="tracking", max_event_size=None)})

    def run() -> None:
        emitter.enter_context("outer", OUTER)
        with emitter.context("inner", INNER):
            for i in range(n):
                emitter.emit(NAME, {"url": URL % i, "n": i})

    return measure(run, handler.close, n)


def with_structlog(out: Path, n: int) -> float:
    import orjson
    import structlog

    sink = open(out, "wb")  # noqa: SIM115 - closed by measure
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(sink),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()

    def run() -> None:
        structlog.contextvars.bind_contextvars(**OUTER)
        with structlog.contextvars.bound_contextvars(**INNER):
            for i in range(n):
                log.info(NAME, url=URL % i, n=i)

    return measure(run, sink.close, n)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: the event's name, time, context and data."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = record.__dict__
        return json.dumps(
            {
                "name": record.msg,
                "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "context": fields["context"],
                "data": fields["data"],
            }
        )


def with_logging(out: Path, n: int) -> float:
    handler = file_logger("bench.events", out, JSONFormatter())
    log = logging.getLogger("bench.events")

    def run() -> None:
        context = {**OUTER, **INNER}
        for i in range(n):
            log.info(NAME, extra={"context": context, "data": {"url": URL % i, "n": i}})

    return measure(run, handler.close, n)


SYSTEMS = {"eventtracking": original, "structlog": with_structlog, "logging": with_logging}

if __name__ == "__main__":
    system, out, n = arguments(f"systems.py {'|'.join(SYSTEMS)} OUT [N]")
    us = SYSTEMS[system](out, n)
    assert count_lines(out) == n, f"{system}: {count_lines(out)} lines, expected {n}"
    report(system, us)
