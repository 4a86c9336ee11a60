"""`tail -f` for the PostgreSQL store, without missing events that commit out of order.

Sequence numbers are drawn when a row is inserted, not when its transaction
commits: a batch that drew seq 100 may commit after one that drew 101. A
reader that only asks for ``seq > last seen`` would skip 100 for ever.

So the follower keeps a *floor*: every seq at or below it is final (either
yielded or never to appear). Above the floor, it remembers which seqs it has
yielded, and each poll asks for those it has not. After each poll it notes
the transaction horizon (``txid_snapshot_xmax``) next to the highest seq seen.
Once every transaction that existed then has finished (the current
``txid_snapshot_xmin`` has passed that horizon), nothing at or below that seq
can still appear, and the floor moves up to it.

Two limits keep a stuck horizon from growing the work without end. A
transaction left open elsewhere holds the horizon back; after `PATIENCE`
seconds the floor moves on anyway and ``store.follow_gave_up`` is counted.
A short `GRACE` also covers the instant between a row drawing its seq and
its transaction getting an id.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final

from .. import diagnostics
from .postgres_rows import event_from_row

GRACE: Final = 0.2  # seconds a horizon is kept even once it has passed
PATIENCE: Final = 30.0  # seconds after which an open transaction is no longer waited for
START_WINDOW: Final = 1000  # seqs below the starting point that may still commit late
BATCH: Final = 1000  # new rows read per poll

Read = Callable[[str, list[Any]], list[Any]]


def follow(
    read: Read,
    select: str,
    table: str,
    n: int,
    poll_interval: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[dict[str, Any]]:
    """The last `n` events, then every event committed afterwards (see the module docs).

    `select` is the store's ``SELECT ... FROM table`` with ``seq`` in column 6.
    The starting point is fixed when this is called, not on the first `next()`.
    """
    rows = read(f"{select} ORDER BY seq DESC LIMIT %s", [n])
    if rows:
        last = int(rows[0][6])
    else:
        last = int(read(f"SELECT COALESCE(MAX(seq), 0) FROM {table}", [])[0][0])
    # Seqs just below the start that exist now are history; any others there may
    # still commit, and will be yielded when they do.
    floor = max(0, last - START_WINDOW)
    seen = {int(seq) for (seq,) in read(f"SELECT seq FROM {table} WHERE seq > %s", [floor])}
    history = [event_from_row(row) for row in reversed(rows)]
    state = _State(floor, last, seen, clock)
    state.mark(_horizon(read)[1])
    return _poll(read, select, table, history, state, poll_interval)


class _State:
    """Floor, highest seq seen, the seqs yielded above the floor, and pending horizons."""

    def __init__(self, floor: int, top: int, seen: set[int], clock: Callable[[], float]) -> None:
        self.floor, self.top, self.seen, self.clock = floor, top, seen, clock
        self.marks: deque[tuple[float, int, int]] = deque()  # (when, xmax, top then)

    def mark(self, xmax: int) -> None:
        self.marks.append((self.clock(), xmax, self.top))

    def advance(self, xmin: int) -> None:
        """Move the floor past every horizon that all transactions have left behind."""
        now = self.clock()
        while self.marks:
            when, xmax, top = self.marks[0]
            if now - when < GRACE:
                break
            if xmax > xmin:  # a transaction from back then may still commit
                if now - when < PATIENCE:
                    break
                diagnostics.increment("store.follow_gave_up")
            self.marks.popleft()
            if top > self.floor:
                self.floor = top
                self.seen = {seq for seq in self.seen if seq > top}


def _horizon(read: Read) -> tuple[int, int]:
    xmin, xmax = read(
        "SELECT txid_snapshot_xmin(s), txid_snapshot_xmax(s) FROM txid_current_snapshot() AS s",
        [],
    )[0]
    return int(xmin), int(xmax)


def _poll(
    read: Read,
    select: str,
    table: str,
    history: list[dict[str, Any]],
    state: _State,
    poll_interval: float,
) -> Iterator[dict[str, Any]]:
    yield from history
    checked = state.clock()
    while True:
        found: list[Any] = []
        # Late commits between the floor and the top: looked for once per poll
        # interval, not on every read of a busy table.
        if state.top > state.floor and state.clock() - checked >= poll_interval:
            checked = state.clock()
            seqs = read(
                f"SELECT seq FROM {table} WHERE seq > %s AND seq <= %s",
                [state.floor, state.top],
            )
            missing = [int(seq) for (seq,) in seqs if int(seq) not in state.seen]
            if missing:
                found = read(f"{select} WHERE seq = ANY(%s) ORDER BY seq", [missing])
        found += read(f"{select} WHERE seq > %s ORDER BY seq LIMIT {BATCH}", [state.top])
        # Taken after the reads, so the horizon can only be later than what they saw.
        xmin, xmax = _horizon(read)
        for row in found:
            seq = int(row[6])
            state.seen.add(seq)
            state.top = max(state.top, seq)
            yield event_from_row(row)
        state.mark(xmax)
        state.advance(xmin)
        if not found:
            time.sleep(poll_interval)
