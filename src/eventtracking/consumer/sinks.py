"""Where ``eventtracking consume`` writes: sinks that commit before they return.

A sink's `write(events)` returns only once the events are durably stored, so
the consumer may acknowledge them. `open_sink` reads the ``--to`` option.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Protocol

from ..backends import close_backend, flush_backend
from ..exceptions import ImproperlyConfigured, RetryableError
from ..registry.registry import unseen_metadata
from ..store.sqlite import SQLiteStore


class Sink(Protocol):
    """Where consumed events go; `write` returns only once they are durably committed."""

    def write(self, events: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class StoreSink:
    """Write to a SQLite or PostgreSQL store: committed when its write transaction returns."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._seen_types: set[str] = set()

    def write(self, events: list[dict[str, Any]]) -> None:
        """Store `events` in one transaction (ids already stored are skipped).

        The documentation versions they refer to go in the same transaction,
        each once (the store skips one it already holds).
        """
        seen = set(self._seen_types)
        types = [v for event in events if "meta" in event for v in unseen_metadata(event, seen)]
        if isinstance(self.store, SQLiteStore):
            self.store.write_events(events, types)
        else:
            self.store.write(events, types)
        self._seen_types = seen  # only once written

    def close(self) -> None:
        """Close the store."""
        self.store.close()


class BackendSink:
    """Hand events to any backend: ``send_batch`` (or ``send``), then ``flush(timeout)``."""

    def __init__(self, backend: Any, timeout: float = 30.0) -> None:
        self.backend = backend
        self.timeout = timeout

    def write(self, events: list[dict[str, Any]]) -> None:
        """Send `events`; RetryableError when the backend did not flush them in time."""
        send_batch = getattr(self.backend, "send_batch", None)
        if send_batch is not None:
            send_batch(events)
        else:
            for event in events:
                self.backend.send(event)
        if not flush_backend(self.backend, self.timeout):
            raise RetryableError(f"the sink did not flush within {self.timeout} s")

    def close(self) -> None:
        """Close the backend."""
        close_backend(self.backend)


class SinkBackend:
    """A sink seen as a backend: what replay needs to send events to a ``--to`` target.

    Each `send_batch` returns once the sink has committed, so a replayer can
    count the batch as delivered.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def send(self, event: dict[str, Any]) -> None:
        """Write one event."""
        self.sink.write([event])

    def send_batch(self, events: list[dict[str, Any]]) -> None:
        """Write `events` in one commit."""
        self.sink.write(events)

    def close(self) -> None:
        """Close the sink."""
        self.sink.close()


def open_sink(target: str) -> Sink:
    """The sink `target` names: a store path or URL, a JSON component or a TOML file.

    ``postgresql://...`` and ``postgres://...`` are PostgreSQL stores, a
    string starting with ``{`` is an ``{"ENGINE": ..., "OPTIONS": ...}``
    component, a ``.toml`` file holds one (ENGINE and OPTIONS at top level),
    anything else is a SQLite store path. ImproperlyConfigured or StoreError
    say what is wrong.
    """
    from ..config import instantiate

    if target.startswith(("postgresql://", "postgres://")):
        from ..store.postgres import PostgresStore

        try:
            return StoreSink(PostgresStore(target, create=True))
        except ValueError as exc:  # a bad ?table= name
            raise ImproperlyConfigured(f"--to: {exc}") from exc
    if target.lstrip().startswith("{"):
        try:
            spec = json.loads(target)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"--to: not valid JSON: {exc}") from exc
        return BackendSink(instantiate(spec, "--to"))
    if target.endswith(".toml"):
        try:
            spec = tomllib.loads(Path(target).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ImproperlyConfigured(f"{target}: cannot read a component: {exc}") from exc
        return BackendSink(instantiate(spec, target))
    return StoreSink(SQLiteStore(target, create=True))
