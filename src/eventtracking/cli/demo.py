"""The workload behind ``eventtracking demo``: the Open edX README example and a simulated LMS.

`DemoRun(path)` builds a `Tracker` whose one backend is `SQLiteBackend(path)`
(written in batches by the emitting thread: the delivery worker's inline
mode), runs `run_readme_example` on it and then `simulate`, which emits a
realistic, seed-deterministic stream of Open edX events through the public API only
(`enter_context`, `context`, `emit`). A `SimulatedClock` processor rewrites
each workload event's timestamp to its simulated time, spread over the 24
hours before `end` with a daily rhythm (busy afternoons, quiet nights).
Visits by several users overlap, each in its own `contextvars` context like
concurrent requests, and events are emitted in timestamp order, so the
newest are also the last stored. Event ids are new on every run, so running
the demo twice on one store adds events. One visit's steps are in
`demo_visits`; the documentation of every type emitted is in `demo_types`.
"""

from __future__ import annotations

import contextvars
import heapq
import os
import random
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

from ..backends.sqlite import SQLiteBackend
from ..delivery import DeliveryBackend
from ..exceptions import StoreError
from ..locator import DefaultContextLocator
from ..tracker import Tracker
from .demo_types import register_demo_types
from .demo_visits import HOST, Plan, Session, Step, User

__all__ = [
    "COURSES",
    "HOST",
    "WINDOW",
    "DemoRun",
    "Recorder",
    "SimulatedClock",
    "run_readme_example",
    "simulate",
]

WINDOW: Final = timedelta(hours=24)

# (course_id, org_id); the README example's user ids (10938, 11111) never occur here.
COURSES: Final = (
    ("course-v1:edX+DemoX+Demo_Course", "edX"),
    ("course-v1:MITx+6.00.1x+2T2026", "MITx"),
    ("course-v1:HarvardX+CS50x+2026", "HarvardX"),
    ("course-v1:UQx+Think101x+1T2026", "UQx"),
)
_NAMES: Final = (
    "ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken",
    "radia", "linus", "frances", "john", "katherine", "tim", "hedy", "dennis",
)  # fmt: skip
_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148 edX/4.2",
)
_LANGUAGES: Final = (
    "en-US,en;q=0.9",
    "fr-FR,fr;q=0.8,en;q=0.5",
    "es-419,es;q=0.9",
    "de-DE,de;q=0.9,en;q=0.4",
    "hi-IN,hi;q=0.9,en;q=0.6",
)
# Relative activity per UTC hour of day: quiet at night, busy in the afternoon.
_HOURLY: Final = (2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 10, 10, 11, 12, 12, 11, 10, 9, 8, 7, 5, 4, 3)

Progress = Callable[[int], None]


def run_readme_example(tracker: Tracker) -> None:
    """Run the Open edX event-tracking README example verbatim on `tracker`.

    Leaves the ``outer`` context entered, exactly as the README does.
    """
    tracker.enter_context("outer", {"user_id": 10938})
    tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/1"})
    with tracker.context({"user_id": 11111, "session_id": "2987lkjdyoioey"}):
        tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/2"})
    tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/3"})


class SimulatedClock:
    """A processor that sets each event's ``timestamp`` to `now`, unless `now` is None."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.now is not None:
            event["timestamp"] = self.now
        return event


class Recorder:
    """A processor that keeps the events passing through while `recording` is True."""

    def __init__(self) -> None:
        self.recording = False
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if self.recording:
            self.events.append(event)


def _users(rng: random.Random) -> list[User]:
    ids = rng.sample(range(20_000, 100_000), len(_NAMES))
    users = []
    for name, user_id in zip(_NAMES, ids, strict=True):
        enrolled = tuple(c for c in COURSES if rng.random() < 0.4) or (rng.choice(COURSES),)
        agent, language = rng.choice(_AGENTS), rng.choice(_LANGUAGES)
        users.append(User(user_id, f"{name}{user_id % 1000:03d}", agent, language, enrolled))
    return users


def _count(steps: Iterator[Step]) -> int:
    return sum(1 for _ in steps)


def _plan(tracker: Tracker, total: int, rng: random.Random, end: datetime) -> list[Plan]:
    """Visits holding exactly `total` events, spread over the window, sorted by start."""
    users = _users(rng)
    to_enroll = {u.user_id: [c for c in COURSES if c not in u.enrolled] for u in users}
    start = end - WINDOW
    buckets = [start + timedelta(hours=h) for h in range(24)]
    weights = [_HOURLY[b.hour] for b in buckets]
    plans: list[Plan] = []
    planned = 0
    while planned < total:
        user = rng.choice(users)
        bucket = rng.choices(buckets, weights=weights)[0]
        begin = bucket + timedelta(seconds=rng.uniform(0, 3600))
        pending = to_enroll[user.user_id]
        enroll = pending[0] if pending and rng.random() < 0.25 else None
        plan = Plan(user, begin, rng.getrandbits(64), enroll)
        # A dry run in a throwaway context counts the visit's events.
        count = contextvars.Context().run(_count, Session(tracker, plan, end).steps())
        if count == 0:
            continue
        if enroll is not None:
            pending.remove(enroll)
        plans.append(replace(plan, limit=min(count, total - planned)))
        planned += plans[-1].limit
    plans.sort(key=lambda p: p.start)
    return plans


def simulate(
    tracker: Tracker,
    clock: SimulatedClock,
    events: int,
    seed: int,
    end: datetime | None = None,
    progress: Progress | None = None,
) -> Counter[str]:
    """Emit exactly `events` simulated LMS events on `tracker`, oldest first; count them by name.

    Visits by several users overlap in time, each in its own `contextvars`
    context (like concurrent requests), so the tracker must use a
    `DefaultContextLocator` (the default); `clock` must be one of its
    processors. Timestamps fall in the 24 hours before `end` (default: now;
    naive = UTC) and events are emitted in timestamp order. The same `seed`
    and `end` give the same events apart from their ids. `progress(n)` is
    called as events go out, with the number emitted since the last call.
    """
    if events < 0:
        raise ValueError(f"events must be >= 0, not {events}")
    if type(tracker.context_locator) is not DefaultContextLocator:
        raise ValueError("simulate() needs a tracker with a DefaultContextLocator")
    if end is None:
        end = datetime.now(UTC)
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    plans = _plan(tracker, events, random.Random(seed), end)
    # A heap of (time, visit, step): a visit not yet started waits at its start time.
    heap: list[tuple[datetime, int, Step | None]] = [
        (p.start, i, None) for i, p in enumerate(plans)
    ]
    running: dict[int, tuple[contextvars.Context, Generator[Step, None, None], int]] = {}
    counts: Counter[str] = Counter()
    unreported = 0

    def advance(index: int) -> None:
        context, steps, left = running[index]
        step = context.run(next, steps, None) if left else None
        if step is None:
            context.run(steps.close)  # a visit cut short leaves its contexts
            del running[index]
        else:
            heapq.heappush(heap, (step[0], index, step))

    try:
        while heap:
            _, index, step = heapq.heappop(heap)
            if step is None:
                steps = Session(tracker, plans[index], end).steps()
                running[index] = (contextvars.Context(), steps, plans[index].limit)
                advance(index)
                continue
            context, steps, left = running[index]
            clock.now = step[0]
            context.run(tracker.emit, step[1], step[2])
            running[index] = (context, steps, left - 1)
            counts[step[1]] += 1
            unreported += 1
            if progress is not None and unreported >= 100:
                progress(unreported)
                unreported = 0
            advance(index)
    finally:
        clock.now = None
        for context, steps, _ in running.values():
            context.run(steps.close)
        if progress is not None and unreported:
            progress(unreported)
    return counts


class DemoRun:
    """A tracker writing to the SQLite store at `path` through the demo's processors.

    StoreError if the store cannot be created or opened. Use as a context
    manager, or call `close()`: it flushes and raises StoreError if some
    events could not be written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.clock = SimulatedClock()
        self.recorder = Recorder()
        self.backend = SQLiteBackend(path)
        # Batched in this thread, as configuration does; a demo keeps no journal.
        delivery = DeliveryBackend(self.backend, name="store", mode="inline", journal_dir=None)
        self.tracker = Tracker(
            {"store": delivery},
            processors=[self.clock, self.recorder],
            envelope="full",  # ids and documentation versions: the store shows them
        )
        register_demo_types(self.tracker)  # so `catalog --store` shows a documented catalogue

    def readme_example(self) -> list[dict[str, Any]]:
        """Run the README example; return its three events as sent to the store."""
        self.recorder.recording = True
        try:
            run_readme_example(self.tracker)
        finally:
            self.recorder.recording = False
            self.tracker.exit_context("outer")
        events, self.recorder.events = self.recorder.events, []
        return events

    def simulate(
        self, events: int, seed: int, end: datetime | None = None, progress: Progress | None = None
    ) -> Counter[str]:
        """Run the simulated workload (see `simulate`)."""
        return simulate(self.tracker, self.clock, events, seed, end, progress)

    def close(self) -> None:
        """Write every buffered event and close the store; idempotent."""
        if self.tracker.closed:
            return
        flushed = self.tracker.flush()
        self.tracker.close()
        if not flushed:
            raise StoreError(f"{self.backend.path}: some events could not be written (see log)")

    def __enter__(self) -> DemoRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.tracker.close()
