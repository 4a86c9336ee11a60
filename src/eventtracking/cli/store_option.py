"""The ``--store`` option every reading command shares, and opening the store it names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import click

from ..exceptions import StoreError
from ..store import EventStore, open_store

DEFAULT_STORE: Final = "events.db"
STORE_ENV: Final = "EVENTTRACKING_STORE"

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
