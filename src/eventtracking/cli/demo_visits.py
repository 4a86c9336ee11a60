"""One simulated visit to the LMS for the demo: contexts entered and events, step by step.

A `Session` is a pure function of its `Plan` (who, when, a seed): `steps()`
enters the session, request and page contexts on the tracker and yields each
event to emit while they are entered.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from ..tracker import Tracker

HOST: Final = "courses.example.org"
_PAGES: Final = ("video", "problem", "sequence", "forum", "progress")
_PAGE_WEIGHTS: Final = (6, 4, 2, 1, 1)

Step = tuple[datetime, str, dict[str, Any]]


@dataclass(frozen=True)
class User:
    """A simulated learner: who, with which browser, enrolled where."""

    user_id: int
    username: str
    agent: str
    accept_language: str
    enrolled: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Plan:
    """One visit: who, when, its own random seed, an enrollment, and how many events to keep."""

    user: User
    start: datetime
    seed: int
    enroll: tuple[str, str] | None
    limit: int = 0


class _SessionOver(Exception):
    """The session ran past the end of the simulated window."""


class Session:
    """One user's visit to the LMS, a pure function of its `Plan`.

    `steps()` enters the session, request and page contexts on the tracker and
    yields each event to emit while they are entered; the caller emits it.
    """

    def __init__(self, tracker: Tracker, plan: Plan, end: datetime) -> None:
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
