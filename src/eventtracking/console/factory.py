"""Build a `Console` over a store location, the way ``serve`` and Django both need it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..registry.registry import Registry
from ..store import open_store
from .health import HealthSource
from .service import Console


def store_label(location: str) -> str:
    """`location` as the pages show it: a URL without its password."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sink_replay(target: str) -> Callable[[str], tuple[Any, bool]]:
    """Replay into `target` (a store path or URL, or a backend component; see `open_sink`)."""
    from ..consumer.sinks import SinkBackend, open_sink

    def make(backend_name: str) -> tuple[Any, bool]:
        return SinkBackend(open_sink(target)), True

    return make


def open_console(
    location: str,
    *,
    journal_dir: Path | None = None,
    dead_letters: Sequence[Path] = (),
    replay_backend: Callable[[str], tuple[Any, bool]] | None = None,
    tracker: Callable[[], Any] | None = None,
    registry: Callable[[], Registry | None] | None = None,
    stream_seconds: float = 60.0,
) -> Console:
    """A started console over the store at `location` (StoreError if it cannot be read).

    `replay_backend` turns replay on (see `Console`); `tracker` also reads
    the delivery workers of this process.
    """
    store = open_store(location)
    try:
        console = Console(
            store,
            lambda: open_store(location),
            store_label=store_label(location),
            health=HealthSource(journal_dir, dead_letters, tracker),
            replay_backend=replay_backend,
            registry=registry,
            stream_seconds=stream_seconds,
        )
    except BaseException:
        store.close()
        raise
    console.start()
    return console
