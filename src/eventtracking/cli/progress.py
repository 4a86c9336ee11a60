"""Progress bars for long commands (replay, consume), drawn only when stderr is a terminal.

Piped or redirected output (a log file, CI) gets no bar and no control
characters: the commands' own summary lines are all it sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..delivery.replay import is_store
from ..exceptions import StoreError
from ..store import Query, open_store

Advance = Callable[[int], None]


def stored_total(sources: Sequence[str], query: Query) -> int | None:
    """How many events the stores in `sources` hold for `query`; None if a source is a file.

    A file's lines are not counted (that would read it twice), nor a store
    that cannot be opened (reading it will say what is wrong).
    """
    total = 0
    for source in sources:
        if not is_store(source):
            return None
        try:
            store = open_store(source)
        except StoreError:
            return None
        try:
            total += store.count(query)
        finally:
            store.close()
    return total


def stderr_console() -> Console:
    """The console progress bars draw on (stderr; markup off for event text)."""
    return Console(stderr=True, highlight=False)


@contextmanager
def progress_bar(
    label: str, total: int | None, console: Console | None = None
) -> Iterator[Advance]:
    """Yield ``advance(n)``; a bar on stderr counts the n's when stderr is a terminal.

    `total` None draws a counter with a rate instead of a bar with an end.
    """
    console = console or stderr_console()
    if not console.is_terminal:
        yield lambda n: None
        return
    columns: list[ProgressColumn | str] = [SpinnerColumn(), TextColumn(label), BarColumn()]
    if total is None:
        columns += [TextColumn("{task.completed} events")]
    else:
        columns += [MofNCompleteColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    columns += [TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=total, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        yield advance


class ConsumeBar:
    """A live bar for ``consume``: written so far against written + the group's lag.

    `update(written, lag)` is called with each progress report; when stderr is
    not a terminal it does nothing and the plain report lines are printed instead.
    """

    def __init__(self, label: str, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self.active = self.console.is_terminal
        self._progress: Progress | None = None
        self._task = None
        if self.active:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._task = self._progress.add_task(label, total=None, detail="waiting for entries")

    def __enter__(self) -> ConsumeBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, written: int, lag: int | None, detail: str) -> None:
        """Show `written` of (written + lag) and the report's `detail`."""
        if self._progress is None or self._task is None:
            return
        total = None if lag is None else written + lag
        self._progress.update(self._task, completed=written, total=total, detail=detail)

    def print(self, line: str) -> None:
        """Print a line above the bar (or plainly, without one)."""
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
