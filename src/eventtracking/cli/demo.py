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
the demo twice on one store adds events.
"""

from __future__ import annotations

import contextvars
import heapq
import os
import random
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

from ..backends.sqlite import SQLiteBackend
from ..delivery import DeliveryBackend
from ..exceptions import StoreError
from ..locator import DefaultContextLocator
from ..tracker import Tracker
from .demo_types import register_demo_types

HOST: Final = "courses.example.org"
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
_PAGES: Final = ("video", "problem", "sequence", "forum", "progress")
_PAGE_WEIGHTS: Final = (6, 4, 2, 1, 1)

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


Step = tuple[datetime, str, dict[str, Any]]


@dataclass(frozen=True)
class _User:
    user_id: int
    username: str
    agent: str
    accept_language: str
    enrolled: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Plan:
    """One visit: who, when, its own random seed, an enrollment, and how many events to keep."""

    user: _User
    start: datetime
    seed: int
    enroll: tuple[str, str] | None
    limit: int = 0


class _SessionOver(Exception):
    """The session ran past the end of the simulated window."""


class _Session:
    """One user's visit to the LMS, a pure function of its `_Plan`.

    `steps()` enters the session, request and page contexts on the tracker and
    yields each event to emit while they are entered; the caller emits it.
    """

    def __init__(self, tracker: Tracker, plan: _Plan, end: datetime) -> None:
        self.tracker, self.plan, self.end = tracker, plan, end
        self.rng = random.Random(plan.seed)
        self.now = plan.start

    def step(self, name: str, data: dict[str, Any], gap: tuple[float, float] = (1, 20)) -> Step:
        self.now += timedelta(seconds=self.rng.uniform(*gap))
        if self.now >= self.end:
            raise _SessionOver
        return self.now, name, data

    def steps(self) -> Generator[Step, None, None]:
        rng, user = self.rng, self.plan.user
        self.tracker.enter_context(
            "session",
            {
                "user_id": user.user_id,
                "username": user.username,
                "session": f"{rng.getrandbits(128):032x}",
                "ip": ".".join(str(rng.randrange(1, 224 if i == 0 else 255)) for i in range(4)),
                "agent": user.agent,
                "accept_language": user.accept_language,
            },
        )
        try:
            yield from self.visit()
        except _SessionOver:
            return
        finally:
            self.tracker.exit_context("session")

    def visit(self) -> Iterator[Step]:
        rng, user, enroll = self.rng, self.plan.user, self.plan.enroll
        referer = rng.choice(("https://www.google.com/", f"https://{HOST}/", ""))
        with self.request("/dashboard", referer):
            yield self.step("navigation.request", {"url": f"https://{HOST}/dashboard"})
        referer = f"https://{HOST}/dashboard"
        courses = list(user.enrolled)
        if enroll is not None:
            path = f"/courses/{enroll[0]}/about"
            with self.request(path, referer, enroll):
                yield self.step("navigation.request", {"url": f"https://{HOST}{path}"})
                mode = rng.choice(("audit", "audit", "verified"))
                data = {"course_id": enroll[0], "user_id": user.user_id, "mode": mode}
                yield self.step("edx.course.enrollment.activated", data)
            courses.append(enroll)
            referer = f"https://{HOST}{path}"
        for _ in range(rng.randint(1, 10)):
            page = rng.choices(_PAGES, weights=_PAGE_WEIGHTS)[0]
            referer = yield from self.page(page, rng.choice(courses), referer)

    @contextmanager
    def request(
        self, path: str, referer: str, course: tuple[str, str] | None = None
    ) -> Iterator[None]:
        with ExitStack() as stack:
            request = {"host": HOST, "path": path, "referer": referer}
            stack.enter_context(self.tracker.context("request", request))
            if course is not None:
                page = {"course_id": course[0], "org_id": course[1]}
                stack.enter_context(self.tracker.context("page", page))
            yield

    def page(self, page: str, course: tuple[str, str], referer: str) -> Generator[Step, None, str]:
        rng, course_id = self.rng, course[0]
        week = rng.randint(1, 8)
        if page in ("forum", "progress"):
            path = f"/courses/{course_id}/{'discussion/forum' if page == 'forum' else 'progress'}"
        else:
            path = f"/courses/{course_id}/courseware/week_{week}/lesson_{rng.randint(1, 5)}/"
        block = f"block-v1:{course_id.removeprefix('course-v1:')}+type@{{}}+block@{{:032x}}"
        with self.request(path, referer, course):
            yield self.step("navigation.request", {"url": f"https://{HOST}{path}"})
            if page == "video":
                yield from self.video(block.format("video", rng.getrandbits(128)))
            elif page == "problem":
                yield from self.problem(block.format("problem", rng.getrandbits(128)))
            elif page == "sequence":
                data = {
                    "id": block.format("sequential", rng.getrandbits(128)),
                    "current_tab": rng.randint(1, 5),
                    "tab_count": 6,
                    "widget_placement": rng.choice(("top", "bottom")),
                }
                yield self.step("edx.ui.lms.sequence.next_selected", data, gap=(20, 300))
            elif page == "forum" and rng.random() < 0.3:
                data = {
                    "commentable_id": f"week_{week}",
                    "thread_type": rng.choice(("discussion", "question")),
                    "title": f"Question about week {week}",
                    "anonymous": False,
                }
                yield self.step("edx.forum.thread.created", data, gap=(60, 400))
        return f"https://{HOST}{path}"

    def video(self, video_id: str) -> Iterator[Step]:
        rng = self.rng
        duration = round(rng.uniform(120, 900), 1)
        base = {"id": video_id, "code": "html5"}
        yield self.step("edx.video.loaded", {**base, "duration": duration}, gap=(1, 4))
        position = 0.0
        for _ in range(rng.randint(1, 4)):
            data = {**base, "currentTime": round(position, 1)}
            yield self.step("edx.video.played", data, gap=(1, 5))
            watched = rng.uniform(10, 240)
            position = min(position + watched, duration)
            if position >= duration:
                data = {**base, "currentTime": duration}
                yield self.step("edx.video.stopped", data, gap=(watched, watched))
                return
            data = {**base, "currentTime": round(position, 1)}
            yield self.step("edx.video.paused", data, gap=(watched, watched + 1))
            if rng.random() < 0.3:
                target = round(rng.uniform(0, duration), 1)
                data = {**base, "old_time": round(position, 1), "new_time": target}
                data["type"] = "onSlideSeek"
                yield self.step("edx.video.position.changed", data, gap=(1, 3))
                position = target

    def problem(self, problem_id: str) -> Iterator[Step]:
        rng = self.rng
        max_grade = rng.choice((1, 2, 3, 5))
        for attempt in range(1, rng.randint(1, 3) + 1):
            grade = rng.randint(0, max_grade) if attempt == 1 else rng.randint(1, max_grade)
            data = {
                "problem_id": problem_id,
                "attempts": attempt,
                "grade": grade,
                "max_grade": max_grade,
                "success": "correct" if grade == max_grade else "incorrect",
            }
            yield self.step("problem_check", data, gap=(30, 240))
            if grade == max_grade:
                return
        if rng.random() < 0.5:
            yield self.step("showanswer", {"problem_id": problem_id}, gap=(5, 60))


def _users(rng: random.Random) -> list[_User]:
    ids = rng.sample(range(20_000, 100_000), len(_NAMES))
    users = []
    for name, user_id in zip(_NAMES, ids, strict=True):
        enrolled = tuple(c for c in COURSES if rng.random() < 0.4) or (rng.choice(COURSES),)
        agent, language = rng.choice(_AGENTS), rng.choice(_LANGUAGES)
        users.append(_User(user_id, f"{name}{user_id % 1000:03d}", agent, language, enrolled))
    return users


def _count(steps: Iterator[Step]) -> int:
    return sum(1 for _ in steps)


def _plan(tracker: Tracker, total: int, rng: random.Random, end: datetime) -> list[_Plan]:
    """Visits holding exactly `total` events, spread over the window, sorted by start."""
    users = _users(rng)
    to_enroll = {u.user_id: [c for c in COURSES if c not in u.enrolled] for u in users}
    start = end - WINDOW
    buckets = [start + timedelta(hours=h) for h in range(24)]
    weights = [_HOURLY[b.hour] for b in buckets]
    plans: list[_Plan] = []
    planned = 0
    while planned < total:
        user = rng.choice(users)
        bucket = rng.choices(buckets, weights=weights)[0]
        begin = bucket + timedelta(seconds=rng.uniform(0, 3600))
        pending = to_enroll[user.user_id]
        enroll = pending[0] if pending and rng.random() < 0.25 else None
        plan = _Plan(user, begin, rng.getrandbits(64), enroll)
        # A dry run in a throwaway context counts the visit's events.
        count = contextvars.Context().run(_count, _Session(tracker, plan, end).steps())
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
                steps = _Session(tracker, plans[index], end).steps()
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
