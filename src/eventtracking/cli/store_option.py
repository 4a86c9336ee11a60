"""The ``--store`` option every reading command shares, and opening the store it names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Final, Protocol, TypeVar

import click

from ..exceptions import StoreError
from ..store import EventStore, open_store


class _Closes(Protocol):
    def close(self) -> None: ...


Closable = TypeVar("Closable", bound=_Closes)

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
def open_for_command(open_: Callable[[], Closable]) -> Iterator[Closable]:
    """Open with `open_` and close at the end; a StoreError becomes a ClickException."""
    try:
        store = open_()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield store
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def opened(location: str) -> AbstractContextManager[EventStore]:
    """Open the store at `location` for reading; StoreError becomes a ClickException."""
    return open_for_command(lambda: open_store(location))
