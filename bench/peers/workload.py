"""The shared benchmark workload, for our code, the floors and the peers alike.

Two nested contexts (outer: three keys, inner: two), then N events named
``navigation.request`` with data ``{url, n}``. Every figure is microseconds
per event and includes the final flush/close, so work left to a background
thread or a buffer is still counted. This module needs nothing but the
standard library: the peers import it from their own virtual environments.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

NAME = "navigation.request"
OUTER = {"user_id": 10938, "org": "edX", "course_id": "course-v1:edX+DemoX+Demo"}
INNER = {"session_id": "2987lkjdyoioey", "path": "/some/path"}
URL = "http://www.edx.org/some/path/%d"


def arguments(usage: str) -> tuple[str, Path, int]:
    """(system, output path, N) from ``argv``: ``SCRIPT SYSTEM OUT [N]``."""
    if len(sys.argv) not in (3, 4):
        sys.exit(f"usage: {usage}")
    return sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 200_000


def measure(run: Callable[[], None], finish: Callable[[], None], n: int) -> float:
    """Microseconds per event for `run` (the N events) followed by `finish` (flush/close)."""
    start = time.perf_counter()
    run()
    finish()
    return (time.perf_counter() - start) / n * 1e6


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def report(system: str, us: float) -> None:
    """The one line `bench/run.py` reads: ``SYSTEM US us/event``."""
    print(f"{system} {us:.3f} us/event")
